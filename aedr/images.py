"""One loader for every image that enters aedr.

Conversion to RGB (documented rule):
- ``RGB``: as is. ``L`` / ``1``: replicated to three channels. ``LA`` / ``RGBA`` / ``PA``: the alpha
  channel is dropped (not composited), as the original implementation's ``convert("RGB")`` does.
- ``P``: expanded through its palette. ``CMYK`` / ``YCbCr`` / ``LAB`` / ``HSV``: Pillow's conversion.
- 16-bit and 32-bit integer modes (``I;16``, ``I``) and float ``F``: scaled to 8 bits by keeping the
  top byte (``v >> 8`` for 16-bit, the same rule OpenCV applies), never clipped.
- EXIF orientation is *not* applied (the original does not); pass ``exif_transpose=True`` to apply it.

Bad input never escapes as a decoder's own exception: every failure of Pillow on a file (truncated
data, a text or ICC chunk that decompresses past Pillow's limits, a decompression bomb, a decoder
bug) becomes a specific :class:`ImageLoadError` subclass naming the file, which runs record as a
skip. ``pixel_budget`` refuses images too large to score in reasonable time and memory (the message
names ``--max-side``); ``max_side`` instead downscales them (Lanczos), recording the original size in
``LoadedImage.meta["downscaled_from"]``.

The grayscale image used for GLCM homogeneity is what OpenCV's ``imread(path, IMREAD_GRAYSCALE)``
returns for the *original file*: for PNG libpng's ``(9797 R + 19234 G + 3737 B) >> 15``, for JPEG the
decoder's own luminance channel, for other formats OpenCV's ``cvtColor`` rule
``(4899 R + 9617 G + 1868 B + 8192) >> 14``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .text import safe_str

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_PIXELS = 8192 * 8192  # the decompression-bomb limit: never decoded at all
DEFAULT_PIXEL_BUDGET = 2048 * 2048  # what the score commands accept per image unless told otherwise
PathLike = Union[str, os.PathLike]


class ImageLoadError(ValueError):
    """A single image could not be used. Runs record it and go on with the other images."""

    reason = "unusable image"

    def __init__(self, path: PathLike | None, detail: str = ""):
        self.path = None if path is None else Path(path)
        self.detail = detail
        where = f"{safe_str(self.path)}: " if self.path is not None else ""
        super().__init__(f"{where}{self.reason}{f' ({detail})' if detail else ''}")


class EmptyImageFileError(ImageLoadError):
    reason = "file is empty (0 bytes)"


class NotAnImageError(ImageLoadError):
    reason = "not a readable image file"


class TruncatedImageError(ImageLoadError):
    reason = "image file is truncated or corrupt"


class ImageTooLargeError(ImageLoadError):
    reason = "image exceeds the decompression-bomb limit"


class ImageOverBudgetError(ImageLoadError):
    reason = "image is larger than the pixel budget"


class MetadataTooLargeError(ImageLoadError):
    reason = "a metadata chunk (text or ICC profile) decompresses past Pillow's safety limit"


class UnreadableFileError(ImageLoadError):
    reason = "file cannot be read"


class ImageDecodeError(ImageLoadError):
    reason = "the image decoder failed on this file"


class ImageTooSmallError(ImageLoadError):
    reason = "image is too small"


class UnsupportedModeError(ImageLoadError):
    reason = "unsupported image mode"


def png_gray(rgb: np.ndarray) -> np.ndarray:
    """libpng's RGB -> gray conversion as OpenCV's IMREAD_GRAYSCALE applies it to PNG files."""
    a = rgb.astype(np.int64)
    return ((9797 * a[..., 0] + 19234 * a[..., 1] + 3737 * a[..., 2]) >> 15).astype(np.uint8)


def cv_gray(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's ``cvtColor(RGB2GRAY)`` fixed-point rule (used for BMP, WebP, TIFF)."""
    a = rgb.astype(np.int64)
    return ((4899 * a[..., 0] + 9617 * a[..., 1] + 1868 * a[..., 2] + 8192) >> 14).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An RGB image ready for scoring, with the grayscale view that homogeneity needs.

    ``id`` names the image in results (the path for files); ``content_hash`` identifies its pixels,
    so it is the same for a file and for the same pixels held in memory. ``pixel_budget``: the budget
    it was loaded under (``load_image``), which its perturbed copies obey too (None: none).
    """

    rgb: np.ndarray
    gray: np.ndarray
    id: str
    path: Path | None = None
    format: str | None = None
    meta: dict = field(default_factory=dict)
    pixel_budget: int | None = None

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"{self.id}: rgb must be uint8 HxWx3, got {self.rgb.dtype} {self.rgb.shape}")
        if self.gray.shape != self.rgb.shape[:2]:
            raise ValueError(f"{self.id}: gray shape {self.gray.shape} != image shape {self.rgb.shape[:2]}")

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @cached_property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(f"{self.height}x{self.width}:".encode())
        h.update(np.ascontiguousarray(self.rgb).tobytes())
        return h.hexdigest()

    @classmethod
    def from_array(cls, rgb: np.ndarray, id: str, **meta) -> "LoadedImage":
        """An in-memory image (e.g. a generator's output); gray as if it were saved as PNG."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.dtype != np.uint8:
            raise ValueError(f"{id}: expected uint8 pixels, got {rgb.dtype}")
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        return cls(rgb=rgb, gray=png_gray(rgb), id=id, meta=meta)

    @classmethod
    def from_pil(cls, image: Image.Image, id: str, **meta) -> "LoadedImage":
        return cls.from_array(_to_rgb_array(image, None), id=id, **meta)

    def to_pil(self) -> Image.Image:
        return Image.fromarray(self.rgb, "RGB")


def _high_bit_depth_to_8(arr: np.ndarray, mode: str) -> np.ndarray:
    if mode == "F":
        return np.clip(arr, 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if mode.startswith("I;16") or arr.max(initial=0) <= 65535:
        return (np.clip(arr, 0, 65535) >> 8).astype(np.uint8)
    return (np.clip(arr, 0, 2**32 - 1) >> 24).astype(np.uint8)


def _to_rgb_array(image: Image.Image, path: PathLike | None) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8).copy()
    if mode in ("L", "1"):
        g = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode.startswith("I") or mode == "F":
        g = _high_bit_depth_to_8(np.asarray(image), mode)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("LA", "La", "PA", "P", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode in ("P", "PA"):
            image = image.convert("RGBA")
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    raise UnsupportedModeError(path, f"mode {mode!r}")


def _opencv_gray(image: Image.Image, rgb: np.ndarray, fmt: str | None) -> np.ndarray:
    if fmt == "JPEG" and image.mode in ("L", "RGB", "YCbCr"):
        # The decoder's own luminance channel: what libjpeg hands OpenCV for IMREAD_GRAYSCALE.
        gray = image.copy() if image.mode == "L" else None
        if gray is None:
            with Image.open(image.filename) as again:  # type: ignore[attr-defined]
                again.draft("L", again.size)
                gray = again.convert("L")
        return np.asarray(gray, dtype=np.uint8)
    if image.mode in ("L", "LA", "1") or image.mode.startswith("I"):
        return rgb[..., 0].copy()
    if fmt == "PNG":
        return png_gray(rgb)
    return cv_gray(rgb)


def _decoder_error(p: Path, exc: BaseException) -> ImageLoadError:
    """The loader's own error for whatever Pillow (or the file system) raised on ``p``."""
    text = str(exc)
    if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
        return ImageTooLargeError(p, text)
    if isinstance(exc, MemoryError):
        return ImageTooLargeError(p, "out of memory while decoding")
    if isinstance(exc, ValueError) and "Decompressed data too large" in text:
        return MetadataTooLargeError(p, text)
    if isinstance(exc, UnidentifiedImageError):
        return NotAnImageError(p, "format not recognised")
    if isinstance(exc, (PermissionError, IsADirectoryError)):
        return UnreadableFileError(p, exc.strerror or text)
    if isinstance(exc, (OSError, SyntaxError, EOFError)):
        return TruncatedImageError(p, text)
    return ImageDecodeError(p, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _not_a_file(p: Path) -> str:
    if p.is_symlink() and not p.exists():
        return "a link that leads to no file (dangling, or a loop of links)"
    return "no such file" if not p.exists() else "not a regular file"


def downscaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(w, h) with the longer side at most ``max_side``, aspect ratio kept (sides >= 1)."""
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def budget_side(pixel_budget: int) -> int:
    """A ``--max-side`` that brings any image within ``pixel_budget`` (a multiple of 8)."""
    return max(8, math.isqrt(pixel_budget) // 8 * 8)


def load_image(
    path: PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = 8,
    exif_transpose: bool = False,
    pixel_budget: int | None = None,
    max_side: int | None = None,
) -> LoadedImage:
    """Read one image file. Raises a specific :class:`ImageLoadError` subclass on bad input, never
    anything else.

    ``max_pixels`` is the decompression-bomb limit (nothing larger is decoded). ``max_side``
    downscales larger images so that their longer side is ``max_side``; ``pixel_budget`` then
    refuses images with more pixels (after any downscale) with :class:`ImageOverBudgetError`.
    """
    p = Path(path)
    with _open_image(p) as image:
        w, h = image.size
        size = _checked_size(p, w, h, max_pixels=max_pixels, min_side=min_side, pixel_budget=pixel_budget, max_side=max_side)
        fmt = image.format
        quality = jpeg_quality(getattr(image, "quantization", None))
        rgb, gray = _decode(image, p, size, exif_transpose)
    meta = {"downscaled_from": f"{w}x{h}"} if size != (w, h) else {}
    if quality is not None:
        meta["jpeg_quality"] = quality
    return LoadedImage(rgb=rgb, gray=gray, id=safe_str(p), path=p, format=fmt, meta=meta, pixel_budget=pixel_budget)


def _open_image(p: Path) -> Image.Image:
    """``p`` opened by Pillow (its header read, no pixels decoded yet), or the loader's error for it."""
    try:
        if not p.is_file():
            raise NotAnImageError(p, _not_a_file(p))
        if p.stat().st_size == 0:
            raise EmptyImageFileError(p)
    except OSError as exc:  # e.g. a name too long, a folder that cannot be searched
        raise UnreadableFileError(p, exc.strerror or str(exc)) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(p)
    except Exception as exc:
        raise _decoder_error(p, exc) from exc


def _checked_size(
    p: Path, w: int, h: int, *, max_pixels: int, min_side: int, pixel_budget: int | None, max_side: int | None
) -> tuple[int, int]:
    """The size a ``w`` x ``h`` image is loaded at (downscaled to ``max_side``), or the error that
    refuses it: over the decompression-bomb limit, over the pixel budget, or too small."""
    if w * h > max_pixels:
        raise ImageTooLargeError(p, f"{w}x{h} = {w * h} pixels > limit {max_pixels}")
    if min(w, h) < min_side:
        raise ImageTooSmallError(p, f"{w}x{h}; at least {min_side} pixels per side are needed")
    size = downscaled_size(w, h, max_side) if max_side is not None else (w, h)
    if pixel_budget is not None and size[0] * size[1] > pixel_budget:
        raise ImageOverBudgetError(
            p, f"{w}x{h} = {w * h} pixels > budget {pixel_budget}; use --max-side {budget_side(pixel_budget)} "
            "to downscale it, or raise --pixel-budget"
        )
    if min(size) < min_side:
        raise ImageTooSmallError(p, f"{w}x{h} downscaled to {size[0]}x{size[1]}; at least {min_side} pixels per side are needed")
    return size


def _decode(image: Image.Image, p: Path, size: tuple[int, int], exif_transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    """An opened image's pixels as (RGB, grayscale), brought to ``size`` (Lanczos) when that is not
    its own. Truncated data is an error, never padded; whatever the decoder raises becomes the
    loader's error for ``p``."""
    fmt, original = image.format, image.size
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            if exif_transpose:
                image = ImageOps.exif_transpose(image)
            rgb = _to_rgb_array(image, p)
            if size != original:
                rgb = np.asarray(Image.fromarray(rgb, "RGB").resize(size, Image.LANCZOS), dtype=np.uint8)
                return rgb, png_gray(rgb) if fmt == "PNG" else cv_gray(rgb)
            return rgb, _opencv_gray(image, rgb, fmt) if not exif_transpose else png_gray(rgb)
    except ImageLoadError:
        raise
    except Exception as exc:
        raise _decoder_error(p, exc) from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def jpeg_quality(tables) -> int | None:
    """A JPEG file's quality (1-100) estimated from its luminance quantisation table (``tables``: PIL's
    ``quantization``), by the IJG scaling of the standard table; None without such a table."""
    table = (tables or {}).get(0)
    if not table or len(table) != 64:
        return None
    scale = 100 * sum(table) / sum(STANDARD_LUMINANCE)  # the IJG scale factor, in percent
    quality = (200 - scale) / 2 if scale <= 100 else 5000 / scale
    return int(min(100, max(1, round(quality))))


# The IJG's standard luminance quantisation table (quality 50); only its sum is used.
STANDARD_LUMINANCE = (
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60, 57, 51,
    56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
)


# What the Python API takes as an image (Method.score, score_images, attribute, calibrate).
ImageInput = Union[LoadedImage, Image.Image, str, os.PathLike, np.ndarray]
IMAGE_INPUT = "a LoadedImage, a PIL image, a path (str or Path) or a uint8 HxWx3 numpy array"


class UnusableImageWarning(UserWarning):
    """An image given to :meth:`aedr.Method.score` that cannot be scored: its score is NaN."""


def _is_one_image(item) -> bool:
    return isinstance(item, (LoadedImage, Image.Image, str, os.PathLike)) or (isinstance(item, np.ndarray) and item.ndim in (2, 3))


def image_inputs(images) -> list:
    """The images of an API call as a list: a sequence as it is, one image alone as a list of one
    (an N x H x W x 3 array is N images). The items are checked by :func:`as_loaded_image`."""
    if _is_one_image(images):
        return [images]
    if isinstance(images, (bytes, bytearray)) or not hasattr(images, "__iter__"):
        raise TypeError(f"expected an image or a sequence of images ({IMAGE_INPUT}), got {_described(images)}")
    return list(images)


def input_id(item, index: int) -> str:
    """The id of an API input in results: a path for a file (and for a PIL image read from one),
    ``image <index>`` for pixels held in memory."""
    if isinstance(item, LoadedImage):
        return item.id
    if isinstance(item, (str, os.PathLike)):
        return safe_str(Path(item))
    name = getattr(item, "filename", "") if isinstance(item, Image.Image) else ""
    return safe_str(Path(name)) if name else f"image {index}"


def as_loaded_image(item, index: int = 0, **load_options) -> LoadedImage:
    """The one conversion of an API input (``index``: its place in the call) to a
    :class:`LoadedImage`: a path through :func:`load_image` (with ``load_options``; the loader's
    checks and :class:`ImageLoadError`), a PIL image and a uint8 HxWx3 array as in-memory pixels
    (gray as for PNG). Anything else is a :class:`TypeError` saying what is expected."""
    if isinstance(item, LoadedImage):
        return item
    if isinstance(item, (str, os.PathLike)):
        return load_image(item, **load_options)
    if isinstance(item, Image.Image):
        return LoadedImage.from_array(_to_rgb_array(item, input_id(item, index)), input_id(item, index))
    if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 3 and item.shape[2] == 3:
        return LoadedImage.from_array(item, input_id(item, index))
    raise TypeError(f"image {index}: expected {IMAGE_INPUT}, got {_described(item)}")


def _described(item) -> str:
    if isinstance(item, np.ndarray):
        return f"a {item.dtype} array of shape {item.shape}"
    return type(item).__name__


def iter_image_files(inputs: Iterable[PathLike], *, recursive: bool = False) -> Iterator[Path]:
    """Expand files and folders into image paths, lazily: files as given, each folder's entries in
    name order (the original's order), a sub-folder's files (with ``recursive``) where its name falls.
    Hidden sub-folders and links to folders are not entered (no loops). An entry named like an image
    that cannot be followed (a dangling link, a loop of links) is yielded too, so that loading it
    records why it is unusable. Nothing is listed ahead: memory stays that of one folder's entries,
    so a folder of millions of files streams."""
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            yield from _walk(p, recursive)
        else:
            yield p


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive and not entry.name.startswith("."):
                yield from _walk(Path(entry.path), recursive)
        elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and _file_or_broken_link(entry):
            yield Path(entry.path)


def _file_or_broken_link(entry: os.DirEntry) -> bool:
    """A file, or a link that cannot be followed to anything (dangling, or a loop); not a link to a
    folder, a FIFO or a device."""
    try:
        if entry.is_file():
            return True
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:  # a loop of links: too many levels to follow
        return True


def list_image_files(inputs: Iterable[PathLike], *, recursive: bool = False) -> list[Path]:
    """Like :func:`iter_image_files` but raises when a folder holds no images at all."""
    out: list[Path] = []
    for item in inputs:
        found = list(iter_image_files([item], recursive=recursive))
        if Path(item).is_dir() and not found:
            raise FileNotFoundError(f"{item}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        out.extend(found)
    return out
