"""From :class:`LoadedImage` to model-ready tensors: the size policy, grouping by size, batches
bounded by pixels as well as by count, per-image seeds."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
from PIL import Image

from .autoencoder import SizePolicy
from .images import ImageTooSmallError, LoadedImage
from .lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


def image_seed(image: LoadedImage, run_seed: int = 0) -> int:
    """A 63-bit seed that depends only on the image's pixels and the run seed, never on batch order."""
    digest = hashlib.sha256(f"{run_seed}:{image.content_hash}".encode()).hexdigest()
    return int(digest[:15], 16)


def target_size(image: LoadedImage, policy: SizePolicy) -> tuple[int, int]:
    """(width, height) the image is resized to, or a clear error when it is too small."""
    w, h = image.width, image.height
    if min(w, h) < policy.min_side:
        raise ImageTooSmallError(image.path, f"{image.id} is {w}x{h}; this autoencoder needs sides >= {policy.min_side}")
    tw, th = policy.target_size(w, h)
    if tw <= 0 or th <= 0:
        raise ImageTooSmallError(image.path, f"{image.id} is {w}x{h}; rounds to {tw}x{th}")
    return tw, th


def resized_rgb(image: LoadedImage, size: tuple[int, int]) -> np.ndarray:
    if (image.width, image.height) == size:
        return image.rgb
    return np.asarray(image.to_pil().resize(size, Image.BICUBIC), dtype=np.uint8)


def to_unit_tensor(rgbs: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 HxWx3 arrays -> float32 NCHW in [0, 1] (``ToTensor``'s arithmetic)."""
    arr = np.stack([np.asarray(r) for r in rgbs]).astype(np.float32) / 255.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def to_model_tensor(images: Sequence[LoadedImage], size: tuple[int, int]) -> torch.Tensor:
    """Images of one target size -> float32 NCHW in [-1, 1]."""
    return to_unit_tensor([resized_rgb(im, size) for im in images]) * 2.0 - 1.0


def group_by_size(images: Sequence[LoadedImage], policy: SizePolicy) -> dict[tuple[int, int], list[int]]:
    """Indices of the images grouped by their target size (images are never padded together)."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, im in enumerate(images):
        groups[target_size(im, policy)].append(i)
    return dict(groups)


# Pixels per forward batch: 8 images of 512x512 (a full default batch at Stable Diffusion's size);
# 1024x1024 images go two at a time, anything larger one at a time.
MAX_BATCH_PIXELS = 8 * 512 * 512


def split_batches(indices: Sequence[int], size: tuple[int, int], max_images: int, max_pixels: int = MAX_BATCH_PIXELS) -> Iterator[list[int]]:
    """Consecutive batches of ``indices`` (images of one target ``size``): at most ``max_images``
    each and at most ``max_pixels`` pixels in all, but never empty (one huge image is a batch)."""
    per_batch = max(1, min(max_images, max_pixels // max(1, size[0] * size[1])))
    for start in range(0, len(indices), per_batch):
        yield list(indices[start : start + per_batch])


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW -> uint8 NHWC, clamped and rounded (how images are saved)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
