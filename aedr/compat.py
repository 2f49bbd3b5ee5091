"""Reading and writing the original AEDR implementation's text files, so results can be compared.

- loss-ratio files (``Result/<target>_<source>_<distance>.txt``): one line ``L1 L2`` per image, 8 decimals;
- GLCM files (``GLCM/<model>.txt``): one homogeneity per line, 6 decimals;
both in the original's file order (image files sorted by name). The score is ``L1 * H / L2``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .calibration import DEFAULT_ALPHA, belongs, kde_threshold
from .images import PathLike


def read_loss_ratio(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path)
    rows = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{p}:{n}: expected 'L1 L2', got {line!r}")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError as exc:
            raise ValueError(f"{p}:{n}: not two numbers: {line!r}") from exc
    if not rows:
        raise ValueError(f"{p}: no loss lines")
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def read_glcm(path: PathLike) -> np.ndarray:
    p = Path(path)
    values = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(float(line))
        except ValueError as exc:
            raise ValueError(f"{p}:{n}: not a number: {line!r}") from exc
    if not values:
        raise ValueError(f"{p}: no homogeneity values")
    return np.array(values, dtype=np.float64)


def scores_from_files(loss_ratio: PathLike, glcm: PathLike) -> np.ndarray:
    """``L1 * H / L2`` per line, exactly the original's arithmetic."""
    l1, l2 = read_loss_ratio(loss_ratio)
    h = read_glcm(glcm)
    if len(h) != len(l1):
        raise ValueError(f"{loss_ratio} has {len(l1)} lines but {glcm} has {len(h)}: they must list the same images")
    return l1 * h / l2


def threshold_from_files(loss_ratio: PathLike, glcm: PathLike, alpha: float = DEFAULT_ALPHA) -> float:
    return kde_threshold(scores_from_files(loss_ratio, glcm), alpha)


def accuracy_from_files(loss_ratio: PathLike, glcm: PathLike, threshold: float) -> tuple[int, int]:
    """(belonging, non_belonging) counts under ``threshold``."""
    b = belongs(scores_from_files(loss_ratio, glcm), threshold)
    return int(b.sum()), int((~b).sum())


def format_loss_ratio(l1: Sequence[float], l2: Sequence[float]) -> str:
    return "".join(f"{a:.8f} {b:.8f}\n" for a, b in zip(l1, l2))


def format_glcm(values: Sequence[float]) -> str:
    return "".join(f"{v:.6f}\n" for v in values)
