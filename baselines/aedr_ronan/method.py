"""RONAN: how well the target's decoder can reproduce an image from a latent that starts at random.

The optimised variable is the scaled latent s of the autoencoder (s = c * (z - b), its
``scaling_factor`` c and ``shift_factor`` b), started at s0 ~ N(0, I) with the shape of the encoder's
latent, drawn from the image's own seed (so a score never depends on the batch); Adam on s with a
constant learning rate; loss = per-image MSE between G(s) = clamp(D(s / c + b) / 2 + 0.5, 0, 1) (VQ
latents decoded without quantising, like LatentTracer) and the image in [0, 1]; score = the minimum
loss measured before each step (lower = belonging).

Budget: the paper reports lr 0.1 with 1,500 iterations, the released code defaults to lr 0.01 with
2,000. The defaults here follow the code (the project's rule where the two disagree: published
numbers were produced with the code); ``lr=0.1, iterations=1500`` gives the paper's setting. The
label always shows the budget.

Complexity calibration (``complexity="png"``): the paper divides the reconstruction loss by the
image's complexity before its hypothesis test. Complexity here is the image's lossless PNG size in bits
per sub-pixel (zlib level 9), measured on the image at the size it is inverted at. The hypothesis
test against the belonging set's statistics is the threshold step, which aedr's calibration does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

import aedr
from aedr.autoencoder import seeded_normal
from aedr.inversion import InversionOptions, invert, unit_decoder
from aedr.preprocess import tensor_to_uint8
from aedr.reconstruction import encode
from aedr.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

# Mixes an image's seed into a stream of its own, so RONAN's start never reuses the posterior noise
# that AEDR and AEROBLADE draw from the same seed.
_STREAM = 0x52_4F_4E_41_4E  # "RONAN"


def init_seed(seed: int) -> int:
    return (int(seed) * 6364136223846793005 + _STREAM) % (2**63)


def png_complexity(rgb: np.ndarray) -> float:
    """Lossless PNG size of an HxWx3 uint8 image in bits per sub-pixel (higher = more complex)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=9)
    return 8.0 * buf.tell() / rgb.size


@dataclass
class RonanOptions(InversionOptions):
    """``lr``/``iterations``: constant learning rate and budget (defaults: the released code's 0.01 and
    2000; the paper's: 0.1 and 1500). ``complexity``: ``none`` or ``png`` (divide the loss by the PNG
    complexity). ``clamp``, ``early_stop_patience``, ``pad_single``: see
    :class:`aedr.inversion.InversionOptions`."""

    lr: float = 0.01
    iterations: int = 2000
    complexity: Literal["none", "png"] = "none"

    def validate(self) -> None:
        super().validate()
        if self.complexity not in ("none", "png"):
            raise ValueError(f"complexity must be 'none' or 'png', got {self.complexity!r}")


class RONAN(aedr.Method):
    name = "ronan"
    description = "RONAN: min MSE of random-init latent inversion through the decoder (NeurIPS 2023)."
    Options = RonanOptions
    needs_grad = True
    probe_options = {"iterations": 2}  # batch_size="auto": the peak memory is that of one iteration
    cost = aedr.CostHint(encoder_passes=1, decoder_passes=2000, iterations=2000, relative=3000.0)
    label_options = ("lr", "iterations")  # the label always names the budget
    options: RonanOptions

    def score_batch(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        o = self.options
        ae = ctx.autoencoder
        shape = encode(ae, x0, keys=ctx.keys, cache=ctx.cache).mean.shape
        s0 = seeded_normal(shape, [init_seed(s) for s in ctx.seeds]).to(ae.device)  # in the scaled space
        x = (x0.float() + 1) / 2
        result = invert(
            unit_decoder(ae, clamp=o.clamp_for(ctx.model)),
            x.to(s0.device),
            s0,
            lr=o.lr,
            iterations=o.iterations,
            early_stop_patience=o.early_stop_patience,
            pad_single=o.pad_single,
        )
        scores = result.best.numpy()
        if o.complexity == "png":
            scores = scores / np.array([png_complexity(rgb) for rgb in tensor_to_uint8(x0)])
        return scores
