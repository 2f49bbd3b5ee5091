"""The first reconstruction x1 = D(z1), z1 from E(x0), shared by every method that starts from it.

AEDR's first pass, AEROBLADE's reconstruction and LatentTracer's initial latent all come from the
same encoder call; :class:`ReconstructionCache` lets a benchmark compute it once per (model, image),
under the keys :func:`cache_keys` makes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Hashable, Sequence

import numpy as np

from .autoencoder import Autoencoder, LatentMode, Posterior
from .files import json_text
from .lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from .images import LoadedImage
    from .models import ModelPlugin
else:
    torch = lazy_import("torch")


@dataclass
class FirstPass:
    posterior: Posterior
    z1: torch.Tensor
    x1: torch.Tensor


def cache_keys(
    model: ModelPlugin, ae: Autoencoder, images: Sequence[LoadedImage], size: tuple[int, int]
) -> list[tuple]:
    """The key of each image's entries in a :class:`ReconstructionCache`: what its posterior and first
    reconstruction depend on (the model, the autoencoder's dtype, the image's pixels and the size it
    is brought to). Every batch's ``ScoreContext.keys`` are made here; a method that runs images
    through another model's autoencoder makes that model's keys here too."""
    return [(model.name, str(ae.dtype), im.content_hash, size) for im in images]


class ReconstructionCache:
    """A bounded in-memory LRU of per-image posteriors and first reconstructions (kept on the CPU)."""

    def __init__(self, max_items: int = 2048):
        self.max_items = max_items
        self._items: OrderedDict[Hashable, tuple] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable):
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: tuple) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def even_batch(fn: Callable[..., Any], *xs: torch.Tensor) -> Any:
    """``fn(*xs)`` on batches, run on an even number of images: an odd batch gets a copy of its last
    image, whose result is dropped.

    On the CPU, PyTorch's convolutions take other code paths for odd batch sizes than for even ones,
    with float32 results that differ in the last bits (measured on every zoo autoencoder, torch
    2.13: batches of 2, 4, ..., 16 agree bit for bit, batches of 1, 3, 5, ... do not). Running every
    batch at an even size makes a score the same bit for bit whatever batch its image is scored in,
    for at most one extra image per batch. ``fn`` returns a tensor or a :class:`Posterior`, batch first."""
    n = xs[0].shape[0]
    if n % 2 == 0:
        return fn(*xs)
    out = fn(*(torch.cat([x, x[-1:]]) for x in xs))
    if isinstance(out, Posterior):
        return Posterior(out.mean[:n], None if out.std is None else out.std[:n])
    return out[:n]


def encode_batch(ae: Autoencoder, x: torch.Tensor) -> Posterior:
    """``ae.encode(x)`` without gradients, independent of the batch's size (see :func:`even_batch`)."""
    with torch.no_grad():
        return even_batch(ae.encode, x)


def decode_batch(ae: Autoencoder, z: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
    """``ae.decode(z, quantize)`` without gradients, independent of the batch's size."""
    with torch.no_grad():
        return even_batch(lambda t: ae.decode(t, quantize=quantize), z)


def _stack(rows: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor | None:
    if rows[0] is None:
        return None
    return torch.stack(list(rows)).to(like.device)


def encode(
    ae: Autoencoder, x0: torch.Tensor, *, keys: Sequence[Hashable] | None = None, cache: ReconstructionCache | None = None
) -> Posterior:
    """E(x0), reusing cached per-image posteriors where ``keys`` and ``cache`` are given."""
    if cache is None or keys is None:
        return encode_batch(ae, x0)
    found = [cache.get(("posterior", k)) for k in keys]
    if all(f is not None for f in found):
        return Posterior(_stack([f[0] for f in found], x0), _stack([f[1] for f in found], x0))
    post = encode_batch(ae, x0)
    for i, k in enumerate(keys):
        std = None if post.std is None else post.std[i].detach().cpu()
        cache.put(("posterior", k), (post.mean[i].detach().cpu(), std))
    return post


def first_pass(
    ae: Autoencoder,
    x0: torch.Tensor,
    *,
    mode: LatentMode,
    seeds: Sequence[int],
    keys: Sequence[Hashable] | None = None,
    cache: ReconstructionCache | None = None,
    quantize: bool | None = None,
) -> FirstPass:
    """z1 (posterior sample with per-image seeds, or mean) and x1 = D(z1), cached per image.

    ``quantize``: how VQ latents are decoded (see :meth:`Autoencoder.decode`; ``None``: the model's
    own rule). Methods that decode the same way share one cached reconstruction."""
    quantized = ae.quantizes(quantize)
    rkeys = None if keys is None else [("recon", k, mode, s if mode == "sample" else None, quantized) for k, s in zip(keys, seeds)]
    if cache is not None and rkeys is not None:
        found = [cache.get(k) for k in rkeys]
        if all(f is not None for f in found):
            post = encode(ae, x0, keys=keys, cache=cache)
            return FirstPass(post, _stack([f[0] for f in found], x0), _stack([f[1] for f in found], x0))
    post = encode(ae, x0, keys=keys, cache=cache)
    with torch.no_grad():
        z1 = post.latent(mode, seeds)
    # Contiguous, as a cached x1 (stacked) is: a decoder's channels-last output would send the next
    # convolution down another code path, and a score would depend on whether the cache was hit.
    x1 = decode_batch(ae, z1, quantize=quantized).contiguous()
    if cache is not None and rkeys is not None:
        for i, k in enumerate(rkeys):
            cache.put(k, (z1[i].detach().cpu(), x1[i].detach().cpu()))
    return FirstPass(post, z1, x1)


def reconstruct_images(
    model: "ModelPlugin",
    images: Sequence["LoadedImage"],
    *,
    device: str = "cpu",
    dtype: "torch.dtype | None" = None,
    batch_size: int = 16,
) -> list[np.ndarray]:
    """D(E(x)) of each image as 8-bit RGB (uint8 HxWx3): the model's autoencoder applied once,
    posterior mean (deterministic), at the size the autoencoder takes the image (its size policy).

    This is how an autoencoder without a generator gets "its own" images: its decoder's outputs for
    photographs (``aedr reconstruct``). Images of one size go through in batches; the result does not
    depend on the batching. Raises :class:`aedr.images.ImageTooSmallError` for an image the
    autoencoder cannot take."""
    from .preprocess import group_by_size, split_batches, tensor_to_uint8, to_model_tensor

    ae = model.autoencoder(device, dtype)
    out: list[np.ndarray | None] = [None] * len(images)
    for size, indices in group_by_size(images, ae.size_policy).items():
        for batch in split_batches(indices, size, batch_size):
            x = to_model_tensor([images[i] for i in batch], size).to(device=ae.device, dtype=ae.dtype)
            z = encode_batch(ae, x).latent("mean")
            for i, arr in zip(batch, tensor_to_uint8(decode_batch(ae, z))):
                out[i] = arr
    return [a for a in out if a is not None]


@dataclass(frozen=True)
class ReconstructionSettings:
    """What a folder of saved reconstructions (``aedr reconstruct``) is made with, recorded in its
    ``reconstruct.json``: the model, its weights, the dtype and the load options. A folder is resumed
    only with the same settings, so that reconstructions made otherwise are never mixed or relabelled."""

    model: str
    weights: str
    dtype: str
    max_side: int | None
    pixel_budget: int | None

    RECORD = "reconstruct.json"

    def differences(self, folder: Path) -> list[str]:
        """How the record in ``folder`` differs from these settings, a phrase per setting (none when
        the folder has no record yet; an unreadable record records nothing)."""
        record_file = folder / self.RECORD
        if not record_file.is_file():
            return []
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            record = {}
        record = record if isinstance(record, dict) else {}
        return [f"{k} {record.get(k, 'not recorded')!r} (now {v!r})" for k, v in asdict(self).items() if record.get(k) != v]

    def to_json(self, inputs: Sequence[str], images: int) -> str:
        """The folder's record: these settings, the inputs as given and how many images they hold."""
        return json_text({**asdict(self), "inputs": list(inputs), "images": images, "latent": "posterior mean", "format": "PNG"})
