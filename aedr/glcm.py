"""GLCM homogeneity, as the original AEDR computes it (verified on the published reference values).

Grayscale exactly as OpenCV's ``IMREAD_GRAYSCALE`` (see :mod:`aedr.images`), quantised to 32 levels
as ``floor(gray / 8)``, co-occurrences at distance 1 and angle 0 (each pixel with its right-hand
neighbour), symmetric, normalised; H = sum P(i, j) / (1 + (i - j)^2), scikit-image's ``homogeneity``.
``formula="absolute"`` gives the paper's printed 1 + |i - j| instead.
"""

from __future__ import annotations

from typing import Literal, Union

import numpy as np

from .images import LoadedImage, PathLike, load_image

HomogeneityFormula = Literal["squared", "absolute"]
LEVELS = 32


def glcm(gray: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Symmetric, normalised co-occurrence matrix at distance 1, angle 0, of ``floor(gray * levels / 256)``."""
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 grayscale image, got {gray.dtype} {gray.shape}")
    if gray.shape[1] < 2:
        raise ValueError("homogeneity needs an image at least 2 pixels wide")
    q = (gray.astype(np.int64) * levels) >> 8
    left, right = q[:, :-1].ravel(), q[:, 1:].ravel()
    counts = np.bincount(left * levels + right, minlength=levels * levels).reshape(levels, levels).astype(np.float64)
    counts = counts + counts.T
    return counts / counts.sum()


def homogeneity_of_gray(gray: np.ndarray, formula: HomogeneityFormula = "squared", levels: int = LEVELS) -> float:
    p = glcm(gray, levels)
    i, j = np.indices(p.shape)
    if formula == "squared":
        weights = 1.0 / (1.0 + (i - j) ** 2)
    elif formula == "absolute":
        weights = 1.0 / (1.0 + np.abs(i - j))
    else:
        raise ValueError(f"formula must be 'squared' or 'absolute', got {formula!r}")
    return float((p * weights).sum())


def homogeneity(
    image: Union[PathLike, np.ndarray, LoadedImage], formula: HomogeneityFormula = "squared"
) -> float:
    """GLCM homogeneity of an image file, a :class:`LoadedImage`, or an array.

    A 2-D uint8 array is taken as the grayscale image itself; an HxWx3 uint8 array as RGB pixels of a
    PNG (libpng's grayscale rule). For files the grayscale is OpenCV's for that file's format.
    """
    if isinstance(image, LoadedImage):
        return homogeneity_of_gray(image.gray, formula)
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            return homogeneity_of_gray(image, formula)
        return homogeneity_of_gray(LoadedImage.from_array(image, "<array>").gray, formula)
    return homogeneity_of_gray(load_image(image).gray, formula)
