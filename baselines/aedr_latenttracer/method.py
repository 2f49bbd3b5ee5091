"""LatentTracer: how well the target's decoder can reproduce an image from a latent, starting at the
encoder's posterior mean.

1. x in [0, 1] at the size the autoencoder's size policy gives (``squash_512=True``: the original's
   preprocessing instead, an OpenCV area resize of the 8-bit image to 512x512, then a bilinear
   resize to the model's native square).
2. The optimised variable is the scaled latent s0 = c * (mean(E(2x - 1)) - b) with the
   autoencoder's ``scaling_factor`` c and ``shift_factor`` b (VQ: the quantised latent, c = 1).
3. G(s) = clamp(D(s / c + b) / 2 + 0.5, 0, 1), VQ latents decoded without quantising (not clamped
   for the ``movq`` family, as the original treats Kandinsky's MoVQ; ``clamp`` overrides).
4. Adam on s, loss = per-image MSE(G(s), x), lr 0.05, 100 iterations; after the step of every
   iteration i with ``i % 50 == 0`` the rate halves (steps 0 / 1-50 / 51-99 at 0.05 / 0.025 / 0.0125).
5. Score = the minimum loss measured before each step (lower = belonging).

The whole batch is inverted at once (:func:`aedr.inversion.invert`): the summed loss gives each latent
its single-image gradient and only the latent requires grad.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataclasses import dataclass

import numpy as np

import aedr
from aedr.inversion import InversionOptions, invert, unit_decoder
from aedr.reconstruction import encode
from aedr.lazy import lazy_import

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")


@dataclass
class LatentTracerOptions(InversionOptions):
    """``lr``/``iterations``/``halve_every``: the optimiser schedule (original: 0.05, 100, 50).
    ``squash_512``: the original's preprocessing (see :func:`squash_512`; needs OpenCV).
    ``clamp``, ``early_stop_patience``, ``pad_single``: see :class:`aedr.inversion.InversionOptions`."""

    lr: float = 0.05
    iterations: int = 100
    halve_every: int = 50
    squash_512: bool = False

    def validate(self) -> None:
        super().validate()
        if self.halve_every < 0:
            raise ValueError(f"halve_every must be >= 0 (0 = never), got {self.halve_every}")
        if self.squash_512:
            opencv()  # fail at set-up, before any scoring


def initial_latent(ae: aedr.Autoencoder, x0: torch.Tensor, keys=None, cache=None) -> torch.Tensor:
    """The encoder's posterior mean (VQ: snapped to the codebook), shared with other methods' cache."""
    z = encode(ae, x0, keys=keys, cache=cache).mean
    if ae.latent_kind == "vq":
        with torch.no_grad():
            z = ae.quantize(z)
    return z


def opencv():
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "latenttracer's squash_512 option reproduces the original's OpenCV area resize and needs OpenCV: "
            "pip install opencv-python-headless"
        ) from None
    return cv2


SQUASH_SIDE = 512


def squash_512(rgbs, native: int) -> torch.Tensor:
    """The original's preprocessing of each image: the 8-bit RGB image resized to 512x512 with OpenCV's
    area interpolation, divided by 255 (in float64, then float32, as NumPy and ``.float()`` do there),
    then resized bilinearly (torchvision's tensor ``Resize``: no antialiasing) to the model's native
    ``native`` x ``native``. Returns float32 NCHW in [0, 1]."""
    cv2 = opencv()
    squashed = [cv2.resize(np.ascontiguousarray(rgb), (SQUASH_SIDE, SQUASH_SIDE), interpolation=cv2.INTER_AREA) for rgb in rgbs]
    x = torch.from_numpy(np.stack(squashed) / 255).float().permute(0, 3, 1, 2).contiguous()
    if native != SQUASH_SIDE:
        x = F.interpolate(x, size=(native, native), mode="bilinear", align_corners=False, antialias=False)
    return x


class LatentTracer(aedr.Method):
    name = "latenttracer"
    description = "LatentTracer: min MSE of encoder-initialised latent inversion through the decoder (ICML 2024)."
    Options = LatentTracerOptions
    needs_grad = True
    probe_options = {"iterations": 2}  # batch_size="auto": the peak memory is that of one iteration
    cost = aedr.CostHint(encoder_passes=1, decoder_passes=100, iterations=100, relative=150.0)
    label_options = ("iterations",)  # the label always names the budget
    options: LatentTracerOptions

    def score_batch(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        o = self.options
        ae = ctx.autoencoder
        if o.squash_512:
            if not ctx.model.native_size:
                raise ValueError(
                    f"latenttracer(squash_512=true) resizes to the model's native square, and model "
                    f"{ctx.model.name!r} declares no native_size"
                )
            x = squash_512([im.rgb for im in ctx.images], ctx.model.native_size).to(ae.device)
            z0 = initial_latent(ae, x * 2 - 1)  # not the shared first-pass input
        else:
            x = (x0.float() + 1) / 2
            z0 = initial_latent(ae, x0, ctx.keys, ctx.cache)
        with torch.no_grad():
            s0 = ae.to_scaled(z0.float())
        result = invert(
            unit_decoder(ae, clamp=o.clamp_for(ctx.model)),
            x.to(s0.device),
            s0,
            lr=o.lr,
            iterations=o.iterations,
            halve_every=o.halve_every or None,
            early_stop_patience=o.early_stop_patience,
            pad_single=o.pad_single,
        )
        return result.best.numpy()
