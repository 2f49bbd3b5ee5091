"""AEDR (AAAI 2026): the ratio of two successive reconstruction losses, times GLCM homogeneity.

Registered through the same ``register_methods`` hook that third-party plugins use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..distances import DISTANCES, get_distance
from ..reconstruction import decode_batch, encode_batch, first_pass, even_batch
from .base import CostHint, Method, MethodOptions, ScoreContext
from ..lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


@dataclass
class AEDROptions(MethodOptions):
    """``distance``: loss for both reconstructions (l2 as the paper). ``calibrate``: multiply the
    ratio by the image's homogeneity. ``homogeneity_formula``: ``squared`` = 1 + (i - j)^2 (the
    original code), ``absolute`` = 1 + |i - j| (the paper's text). ``latent``: posterior ``sample``
    (per-image seed, as the original samples) or ``mean``."""

    distance: Literal["l2", "l1", "ssim", "psnr", "lpips"] = "l2"
    calibrate: bool = True
    homogeneity_formula: Literal["squared", "absolute"] = "squared"
    latent: Literal["sample", "mean"] = "sample"

    def validate(self) -> None:
        super().validate()
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        if self.homogeneity_formula not in ("squared", "absolute"):
            raise ValueError(f"homogeneity_formula must be 'squared' or 'absolute', got {self.homogeneity_formula!r}")
        if self.latent not in ("sample", "mean"):
            raise ValueError(f"latent must be 'sample' or 'mean', got {self.latent!r}")


def double_reconstruction_losses(ctx: ScoreContext, x0: torch.Tensor, options: AEDROptions) -> tuple[np.ndarray, np.ndarray]:
    """L1 = d(x1, x0) and L2 = d(x2, x1), x1 = D(E(x0)), x2 = D(E(x1)) (x1 neither clamped nor quantised)."""
    ae = ctx.autoencoder
    distance = get_distance(options.distance, ae.device)
    fp = first_pass(ae, x0, mode=options.latent, seeds=ctx.seeds, keys=ctx.keys, cache=ctx.cache)
    x1 = fp.x1
    # The second pass draws its own noise: a different stream of the same per-image seed.
    second_seeds = [(s * 6364136223846793005 + 1442695040888963407) % (2**63) for s in ctx.seeds]
    with torch.no_grad():
        z2 = encode_batch(ae, x1).latent(options.latent, second_seeds)
    x2 = decode_batch(ae, z2)
    with torch.no_grad():  # every pass runs an even batch, so scores never depend on the batch
        l1 = even_batch(distance, x1.float(), x0.to(x1.device).float())
        l2 = even_batch(distance, x2.float(), x1.float())
    return l1.double().cpu().numpy(), l2.double().cpu().numpy()


class AEDR(Method):
    name = "aedr"
    description = "Autoencoder double reconstruction: (L1 / L2) x GLCM homogeneity (AAAI 2026)."
    Options = AEDROptions
    needs_grad = False
    cost = CostHint(encoder_passes=2, decoder_passes=2, relative=1.0)
    options: AEDROptions

    def losses(self, model, images, *, cache=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """The two reconstruction losses (L1, L2) per image, as the original's ``Result/*.txt`` files hold."""

        def both(ctx: ScoreContext, x0: torch.Tensor) -> np.ndarray:
            return np.stack(double_reconstruction_losses(ctx, x0, self.options), axis=1)

        out = self.map_batches(model, images, both, cache=cache, progress=progress)
        return out[:, 0], out[:, 1]

    def score_batch(self, ctx: ScoreContext, x0: torch.Tensor) -> np.ndarray:
        l1, l2 = double_reconstruction_losses(ctx, x0, self.options)
        if not self.options.calibrate:
            return l1 / l2
        h = ctx.homogeneity(self.options.homogeneity_formula)
        return l1 * h / l2  # the original's order of operations
