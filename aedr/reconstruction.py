"""The first reconstruction x1 = D(z1), z1 from E(x0), shared by every method that starts from it.

AEDR's first pass, AEROBLADE's reconstruction and LatentTracer's initial latent all come from the
same encoder call; :class:`ReconstructionCache` lets a benchmark compute it once per (model, image).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Sequence

import torch

from .autoencoder import Autoencoder, LatentMode, Posterior


@dataclass
class FirstPass:
    posterior: Posterior
    z1: torch.Tensor
    x1: torch.Tensor


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


def _stack(rows: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor | None:
    if rows[0] is None:
        return None
    return torch.stack(list(rows)).to(like.device)


def encode(
    ae: Autoencoder, x0: torch.Tensor, *, keys: Sequence[Hashable] | None = None, cache: ReconstructionCache | None = None
) -> Posterior:
    """E(x0), reusing cached per-image posteriors where ``keys`` and ``cache`` are given."""
    if cache is None or keys is None:
        with torch.no_grad():
            return ae.encode(x0)
    found = [cache.get(("posterior", k)) for k in keys]
    if all(f is not None for f in found):
        return Posterior(_stack([f[0] for f in found], x0), _stack([f[1] for f in found], x0))
    with torch.no_grad():
        post = ae.encode(x0)
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
) -> FirstPass:
    """z1 (posterior sample with per-image seeds, or mean) and x1 = D(z1), cached per image."""
    rkeys = None if keys is None else [("recon", k, mode, s if mode == "sample" else None) for k, s in zip(keys, seeds)]
    if cache is not None and rkeys is not None:
        found = [cache.get(k) for k in rkeys]
        if all(f is not None for f in found):
            post = encode(ae, x0, keys=keys, cache=cache)
            return FirstPass(post, _stack([f[0] for f in found], x0), _stack([f[1] for f in found], x0))
    post = encode(ae, x0, keys=keys, cache=cache)
    with torch.no_grad():
        z1 = post.latent(mode, seeds)
        x1 = ae.decode(z1)
    if cache is not None and rkeys is not None:
        for i, k in enumerate(rkeys):
            cache.put(k, (z1[i].detach().cpu(), x1[i].detach().cpu()))
    return FirstPass(post, z1, x1)
