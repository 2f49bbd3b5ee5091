"""The zoo's real-image corpus: crops of the colour photographs bundled with scikit-image and
scikit-learn, split by source photograph.

Nothing is downloaded: every source ships inside an installed wheel. Crops are deterministic
(a seeded generator per split and source) with deterministic augmentation (random crop side,
random position, horizontal flip); near-flat crops (pixel standard deviation below
:data:`MIN_STD`) are redrawn, since they carry no image content to attribute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

import aedr

RESOLUTION = 32
"""Side of every zoo image, in pixels (see docs/zoo.md for why)."""

MIN_STD = 6.0
"""Crops whose pixel standard deviation (0-255 scale) is below this are redrawn."""

Split = Literal["train", "cal", "eval"]
SPLITS: tuple[Split, ...] = ("train", "cal", "eval")


@dataclass(frozen=True)
class Source:
    """One photograph (or a stereo pair counted as one photograph) of the corpus."""

    name: str
    package: Literal["skimage", "sklearn"]
    files: tuple[str, ...]
    split: Split


SOURCES: tuple[Source, ...] = (
    Source("astronaut", "skimage", ("astronaut.png",), "train"),
    Source("coffee", "skimage", ("coffee.png",), "train"),
    Source("china", "sklearn", ("china.jpg",), "train"),
    Source("motorcycle", "skimage", ("motorcycle_left.png", "motorcycle_right.png"), "train"),
    Source("ihc", "skimage", ("ihc.png",), "train"),
    Source("hubble_deep_field", "skimage", ("hubble_deep_field.jpg",), "train"),
    Source("rocket", "skimage", ("rocket.jpg",), "cal"),
    Source("retina", "skimage", ("retina.jpg",), "cal"),
    Source("chelsea", "skimage", ("chelsea.png",), "eval"),
    Source("flower", "sklearn", ("flower.jpg",), "eval"),
)

CROPS_PER_SOURCE: dict[Split, int] = {"train": 1024, "cal": 128, "eval": 128}
"""Crops cut from each source photograph (a stereo pair shares its source's count)."""

CROP_SIDE_RANGE = (32, 128)
"""Crop sides (pixels of the original photograph) are drawn log-uniformly from this range, then the
crop is resized to :data:`RESOLUTION`, so a zoo image shows between 1x and 4x downscaled detail."""

SPLIT_SEEDS: dict[Split, int] = {"train": 1001, "cal": 2002, "eval": 3003}


def package_file(package: str, name: str) -> Path:
    """Path of an image bundled inside an installed package."""
    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data" / name
    if package == "sklearn":
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images" / name
    raise ValueError(f"unknown package {package!r}")


@lru_cache(maxsize=None)
def load_photo(package: str, name: str) -> np.ndarray:
    """A bundled photograph as uint8 HxWx3 RGB."""
    path = package_file(package, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: bundled photograph missing; reinstall {package}")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def _source_seed(split: Split, source: Source) -> int:
    digest = hashlib.sha256(f"{SPLIT_SEEDS[split]}:{source.name}".encode()).hexdigest()
    return int(digest[:15], 16)


def crop_source(source: Source, n: int, resolution: int = RESOLUTION) -> np.ndarray:
    """``n`` deterministic augmented crops of one source: uint8 array n x res x res x 3."""
    rng = np.random.default_rng(_source_seed(source.split, source))
    photos = [load_photo(source.package, f) for f in source.files]
    lo, hi = CROP_SIDE_RANGE
    out = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        for _attempt in range(100):
            side = int(round(np.exp(rng.uniform(np.log(lo), np.log(min(hi, h, w))))))
            y = int(rng.integers(0, h - side + 1))
            x = int(rng.integers(0, w - side + 1))
            flip = bool(rng.integers(0, 2))
            crop = photo[y : y + side, x : x + side]
            if crop.std() >= MIN_STD:
                break
        img = Image.fromarray(np.ascontiguousarray(crop))
        if side != resolution:
            img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        arr = np.asarray(img, dtype=np.uint8)
        out[i] = arr[:, ::-1] if flip else arr
    return out


@dataclass(frozen=True)
class SplitData:
    """The crops of one split and the source photograph each crop came from."""

    split: Split
    images: np.ndarray  # uint8 N x H x W x 3
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def tensor(self) -> "torch.Tensor":  # noqa: F821
        """float32 NCHW in [-1, 1]."""
        import torch

        return torch.from_numpy(self.images.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()

    def loaded(self) -> list[aedr.LoadedImage]:
        """The crops as :class:`aedr.LoadedImage` (grayscale as if saved as PNG)."""
        counters: dict[str, int] = {}
        out = []
        for arr, src in zip(self.images, self.sources):
            k = counters.get(src, 0)
            counters[src] = k + 1
            # cluster: crops of one photograph are not independent samples (the bench resamples photographs)
            out.append(aedr.LoadedImage.from_array(arr, f"zoo-real-{self.split}/{src}-{k:04d}", source=src, cluster=src))
        return out


@lru_cache(maxsize=None)
def split_data(split: Split, resolution: int = RESOLUTION) -> SplitData:
    """All crops of a split, sources in corpus order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    chunks, names = [], []
    for source in SOURCES:
        if source.split != split:
            continue
        n = CROPS_PER_SOURCE[split]
        chunks.append(crop_source(source, n, resolution))
        names.extend([source.name] * n)
    return SplitData(split, np.concatenate(chunks), tuple(names))


def corpus_summary() -> list[dict]:
    """One row per source: package, files, split, size of each file, crops cut."""
    rows = []
    for s in SOURCES:
        shapes = [load_photo(s.package, f).shape for f in s.files]
        rows.append(
            {
                "source": s.name,
                "package": s.package,
                "files": list(s.files),
                "size": ", ".join(f"{sh[1]}x{sh[0]}" for sh in shapes),
                "split": s.split,
                "crops": CROPS_PER_SOURCE[s.split],
            }
        )
    return rows


def image_set(split: Split) -> aedr.ImageSet:
    """The split as a registered :class:`aedr.ImageSet` named ``zoo-real-<split>``."""
    counts = {s: sum(1 for src in SOURCES if src.split == s) for s in SPLITS}
    names = ", ".join(src.name for src in SOURCES if src.split == split)
    return aedr.ImageSet(
        name=f"zoo-real-{split}",
        description=(
            f"{counts[split] * CROPS_PER_SOURCE[split]} real {RESOLUTION}x{RESOLUTION} crops of bundled photographs "
            f"({names}, taking turns); zoo {split} split"
        ),
        load=lambda: interleaved(split_data(split).loaded()),
        kind="real",
    )


def interleaved(images: list[aedr.LoadedImage]) -> list[aedr.LoadedImage]:
    """The crops with their source photographs taking turns (first crop of each, then the second of
    each, ...), so that the first n images of a set, as a run takes them, come from every photograph."""
    from aedr.datasets import take_turns

    return take_turns(images, lambda im: im.meta.get("cluster"))
