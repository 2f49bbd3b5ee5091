"""LatentTracer: how well the target's decoder can reproduce an image from a latent, starting at the
encoder's posterior mean.

1. x in [0, 1] at the size the autoencoder's size policy gives (the original first squashes every
   image to 512x512 with area interpolation: ``squash_512=True``).
2. z0 = posterior mean of E(2x - 1) (VQ: the quantised latent).
3. G(z) = clamp(D(z) / 2 + 0.5, 0, 1) (not clamped for the ``movq`` family, as the original treats
   Kandinsky's MoVQ; ``clamp`` overrides).
4. Adam on z, loss = per-image MSE(G(z), x), lr 0.05 halved whenever ``i % 50 == 0`` (i = 0 included),
   100 iterations.
5. Score = the minimum loss measured before each step (lower = belonging).

The whole batch is inverted at once (:func:`aedr.inversion.invert`): the summed loss gives each latent
its single-image gradient and only the latent requires grad.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import aedr
from aedr.inversion import InversionOptions, invert, unit_decoder
from aedr.reconstruction import encode


@dataclass
class LatentTracerOptions(InversionOptions):
    """``lr``/``iterations``/``halve_every``: the optimiser schedule (original: 0.05, 100, 50).
    ``squash_512``: resize to 512x512 (area) and back first, as the original's loader does.
    ``clamp``, ``early_stop_patience``, ``pad_single``: see :class:`aedr.inversion.InversionOptions`."""

    lr: float = 0.05
    iterations: int = 100
    halve_every: int = 50
    squash_512: bool = False

    def validate(self) -> None:
        super().validate()
        if self.halve_every < 0:
            raise ValueError(f"halve_every must be >= 0 (0 = never), got {self.halve_every}")


def initial_latent(ae: aedr.Autoencoder, x0: torch.Tensor, keys, cache, pad_single: bool = False) -> torch.Tensor:
    """The encoder's posterior mean (VQ: snapped to the codebook), shared with other methods' cache.
    ``pad_single``: a lone image not in the cache is encoded as two copies (see :mod:`aedr.inversion`)."""
    cached = cache is not None and keys is not None and all(cache.get(("posterior", k)) is not None for k in keys)
    if pad_single and x0.shape[0] == 1 and not cached:
        with torch.no_grad():
            z = ae.encode(torch.cat([x0, x0])).mean[:1]
    else:
        z = encode(ae, x0, keys=keys, cache=cache).mean
    if ae.latent_kind == "vq":
        with torch.no_grad():
            z = ae.quantize(z)
    return z


def squash_512(x_unit: torch.Tensor) -> torch.Tensor:
    """The original loader: every image to 512x512 (area), here followed by area resizing back to the
    autoencoder's size so that scores stay comparable across image sizes."""
    h, w = x_unit.shape[-2:]
    return F.interpolate(F.interpolate(x_unit, size=(512, 512), mode="area"), size=(h, w), mode="area")


class LatentTracer(aedr.Method):
    name = "latenttracer"
    description = "LatentTracer: min MSE of encoder-initialised latent inversion through the decoder (ICML 2024)."
    Options = LatentTracerOptions
    needs_grad = True
    cost = aedr.CostHint(encoder_passes=1, decoder_passes=100, iterations=100, relative=150.0)
    options: LatentTracerOptions

    def score_batch(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        o = self.options
        ae = ctx.autoencoder
        x = (x0.float() + 1) / 2
        if o.squash_512:
            x = squash_512(x)
            z0 = initial_latent(ae, x * 2 - 1, None, None, o.pad_single)  # not the shared first-pass input
        else:
            z0 = initial_latent(ae, x0, ctx.keys, ctx.cache, o.pad_single)
        result = invert(
            unit_decoder(ae, clamp=o.clamp_for(ctx.model)),
            x.to(z0.device),
            z0,
            lr=o.lr,
            iterations=o.iterations,
            halve_every=o.halve_every or None,
            early_stop_patience=o.early_stop_patience,
            pad_single=o.pad_single,
        )
        return result.best.numpy()
