"""TRACE: triple reconstruction with the autocovariance of the residual, an AEDR meant to survive noise
and re-compression. Registered through the same ``register_methods`` hook that third-party plugins use.

Where it stands (docs/methods.md): on the embedded zoo's 32 px images it keeps AEDR's clean pair
AUC and raises the robust pair AUC (+0.057, paired); on TAEF2 at 256 px it fails (real AUC 0.59
clean, against AEDR's 1.00): there the error an autoencoder makes on a real photograph is less
correlated between neighbouring pixels than on its own images, and C discards it.

With x1 = D(E(x0)), x2 = D(E(x1)), x3 = D(E(x2)) (posterior means; VQ latents decoded as the model
decodes them), C the lag-1 autocovariance of a residual and L the mean squared error::

    TRACE(x0) = max(C(x0, x1), FLOOR) / L(x1, x2)  x  L(x2, x3) / L(x1, x2)  x  H(x0)

- **C instead of L for the first loss.** A model's own image is (nearly) a fixed point of its
  autoencoder, so its first loss is small; re-compression, noise and resampling add an error the
  autoencoder removes, and that error lands in the first loss and makes the image look foreign. C
  counts only the part of the residual that is correlated between neighbouring pixels: white noise
  contributes nothing to it in expectation, whereas the error of another model's image, made of
  textures the autoencoder cannot draw, is spatially structured.
- **The fixed-point factor L3 / L2.** The contraction of the autoencoder near the image: how fast
  successive reconstructions settle, measured on the image's own chain.
- **H**, the GLCM homogeneity, as AEDR (the original code's squared formula).

Lower = made by the model. Cost: 3 encoder and 3 decoder passes, the first shared with every other
method that reconstructs at the posterior mean. docs/methods.md: the design, its ablation and where
it fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..distances import mse, residual_autocovariance
from ..lazy import lazy_import
from ..reconstruction import decode_batch, encode_batch, even_batch, first_pass
from .base import CostHint, Method, MethodOptions, ScoreContext

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

FLOOR = 1e-7
"""The smallest first loss (images in [-1, 1]): an autocovariance at or below it (negative ones too)
counts as this value, so the score stays positive."""

TINY = 1e-20
"""The smallest second and third loss: an exact fixed point gives a large score, not a division by zero."""


@dataclass
class TRACEOptions(MethodOptions):
    """``first_loss``: ``autocovariance`` (the method) or ``l2`` (the mean squared error, as AEDR).
    ``fixed_point``: multiply by L3 / L2 (a third reconstruction). ``calibrate``: multiply by the
    image's GLCM homogeneity. With ``first_loss="l2"``, ``fixed_point=false`` TRACE is AEDR at the
    posterior mean (``aedr(latent=mean)``): the ablations are options."""

    first_loss: Literal["autocovariance", "l2"] = "autocovariance"
    fixed_point: bool = True
    calibrate: bool = True

    def validate(self) -> None:
        super().validate()
        if self.first_loss not in ("autocovariance", "l2"):
            raise ValueError(f"first_loss must be 'autocovariance' or 'l2', got {self.first_loss!r}")


def reconstruction_chain(ctx: ScoreContext, x0: torch.Tensor, passes: int) -> list[torch.Tensor]:
    """[x0, x1, ..., x_passes] in float32, each the posterior-mean reconstruction of the one before;
    x1 is the shared (cached) first reconstruction."""
    ae = ctx.autoencoder
    chain = [x0.float(), first_pass(ae, x0, mode="mean", seeds=ctx.seeds, keys=ctx.keys, cache=ctx.cache).x1.float()]
    while len(chain) <= passes:
        chain.append(decode_batch(ae, encode_batch(ae, chain[-1]).latent("mean")).float())
    return chain


def trace_losses(ctx: ScoreContext, x0: torch.Tensor, options: TRACEOptions) -> list[np.ndarray]:
    """Per image, float64: the first loss and L(x1, x2), then L(x2, x3) with ``fixed_point``."""
    chain = reconstruction_chain(ctx, x0, 3 if options.fixed_point else 2)
    first = residual_autocovariance if options.first_loss == "autocovariance" else mse
    chain[0] = chain[0].to(chain[1].device)
    with torch.no_grad():
        losses = [even_batch(first if i == 0 else mse, a, b) for i, (a, b) in enumerate(zip(chain, chain[1:]))]
    return [loss.double().cpu().numpy() for loss in losses]


class TRACE(Method):
    name = "trace"
    description = ("TRACE: AEDR with the residual's autocovariance as first loss, times L3/L2. More robust than AEDR to "
                   "noise and JPEG on the zoo's 32 px images; fails on TAEF2 at 256 px (docs/methods.md).")
    Options = TRACEOptions
    needs_grad = False
    cost = CostHint(encoder_passes=3, decoder_passes=3, relative=1.5)
    options: TRACEOptions

    def score_batch(self, ctx: ScoreContext, x0: torch.Tensor) -> np.ndarray:
        first, l2, *l3 = trace_losses(ctx, x0, self.options)
        if self.options.first_loss == "autocovariance":
            first = np.maximum(first, FLOOR)
        l2 = np.maximum(l2, TINY)
        score = first / l2
        if l3:  # the fixed-point factor
            score = score * np.maximum(l3[0], TINY) / l2
        if self.options.calibrate:
            score = score * ctx.homogeneity("squared")
        return score
