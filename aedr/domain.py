"""The calibration domain of a card: the sizes and formats of the images it was calibrated on, and
whether an image lies outside it.

A threshold is fitted on the scores of the calibration images; an image much larger or smaller than
any of them, or lossy (JPEG) where they were all lossless, or the reverse, is scored where the
threshold was never fitted, and its verdict is an extrapolation. :func:`outside` says why, in words
that ``aedr attribute`` prints beside the verdict. A card made before cards recorded their domain
has none: nothing is marked.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Sequence

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from .images import LoadedImage

# An image with more than SIZE_FACTOR times the pixels of the largest calibration image, or fewer
# than 1 / SIZE_FACTOR of the smallest, is outside the domain.
SIZE_FACTOR = 2.0
# A JPEG's estimated quality this far below the lowest calibration quality is outside the domain.
QUALITY_MARGIN = 10
LOSSY = ("JPEG",)
IN_MEMORY = "in memory"  # images handed over as pixels (a generator's): never compressed
MAX_SIZES = 8  # distinct sizes a card lists

Pixels = Annotated[int, Field(ge=1)]


@dataclass(config=ConfigDict(strict=True))
class CalibrationDomain:
    """The images a card was calibrated on: the range of their pixel counts, their distinct sizes
    ("WxH", smallest first; the smallest and largest :data:`MAX_SIZES` / 2 where there are more), how many of each format (``"in memory"``: pixels that
    were never a file) and the range of the JPEG qualities that could be estimated ([] if none)."""

    min_pixels: Pixels
    max_pixels: Pixels
    sizes: list[str]
    formats: dict[str, Annotated[int, Field(ge=1)]]
    jpeg_qualities: Annotated[list[Annotated[int, Field(ge=1, le=100)]], Field(max_length=2)] = Field(default_factory=list)

    @property
    def lossy(self) -> bool:
        return any(f in LOSSY for f in self.formats)

    @property
    def lossless(self) -> bool:
        return any(f not in LOSSY for f in self.formats)

    def describe(self) -> str:
        sizes = ", ".join(self.sizes)
        formats = ", ".join(f"{n} {f}" for f, n in sorted(self.formats.items()))
        q = f", JPEG quality {self.jpeg_qualities[0]}-{self.jpeg_qualities[-1]}" if self.jpeg_qualities else ""
        return f"{sizes} ({formats}{q})"


def image_format(image: LoadedImage) -> str:
    return image.format.upper() if image.format else IN_MEMORY


def jpeg_quality(image: LoadedImage) -> int | None:
    """A JPEG image's estimated quality, as :func:`aedr.images.load_image` read it from the file."""
    return image.meta.get("jpeg_quality")


def describe_images(images: Sequence[LoadedImage]) -> CalibrationDomain | None:
    """The domain of ``images`` (None for no images)."""
    if not images:
        return None
    pixels = [im.width * im.height for im in images]
    distinct = sorted({(im.width * im.height, im.width, im.height) for im in images})
    kept = distinct if len(distinct) <= MAX_SIZES else distinct[: MAX_SIZES // 2] + distinct[-MAX_SIZES // 2 :]
    sizes = [f"{w}x{h}" for _, w, h in kept]
    formats = Counter(image_format(im) for im in images)
    qualities = [q for im in images if image_format(im) == "JPEG" and (q := jpeg_quality(im)) is not None]
    return CalibrationDomain(min(pixels), max(pixels), sizes, dict(formats), [min(qualities), max(qualities)] if qualities else [])


def outside(domain: CalibrationDomain | None, image: LoadedImage) -> list[str]:
    """Why ``image`` lies outside ``domain``, one phrase per reason; [] inside it or when the domain is unknown."""
    if domain is None:
        return []
    reasons = []
    pixels = image.width * image.height
    if pixels > SIZE_FACTOR * domain.max_pixels:
        reasons.append(f"{image.width}x{image.height} has {pixels / domain.max_pixels:.0f}x the pixels of the largest calibration image ({domain.sizes[-1]})")
    elif pixels * SIZE_FACTOR < domain.min_pixels:
        reasons.append(f"{image.width}x{image.height} has 1/{domain.min_pixels / pixels:.0f} of the pixels of the smallest calibration image ({domain.sizes[0]})")
    fmt = image_format(image)
    if fmt in LOSSY and not domain.lossy:
        reasons.append("JPEG, calibrated on lossless images only")
    elif fmt not in LOSSY and not domain.lossless:
        reasons.append("lossless, calibrated on JPEG images only")
    elif fmt in LOSSY and domain.jpeg_qualities:
        q = jpeg_quality(image)
        if q is not None and q < domain.jpeg_qualities[0] - QUALITY_MARGIN:
            reasons.append(f"JPEG quality {q}, calibrated on {domain.jpeg_qualities[0]}-{domain.jpeg_qualities[-1]}")
    return reasons
