"""HFI, high-frequency influence (Choi et al., arXiv 2412.20704), for attribution to one target model:

    HFI(x) = d(x, D(E(x))) - d(L(x), D(E(L(x))))

L is a Gaussian blur (``kernel_size`` x ``kernel_size`` taps, standard deviation ``sigma``, reflected
borders), E(.) the posterior mean (deterministic; VQ: the un-quantised encoder output, decoded
without quantising), and the reconstructions are compared unclamped and at full precision, as the
original does. The image and its blurred copy both go through the target's autoencoder (2 encoder +
2 decoder passes); the image's own pass is the shared first reconstruction (``latent="mean"``), so a
benchmark that runs another mean-latent method computes it once.

- ``hfi``: d = LPIPS (VGG16, v0.1 heads) summed over all five layers, as the original. Needs two
  weight files (see :mod:`aedr.lpips`); when they are missing it fails before scoring, naming the
  files and where to put them.
- ``hfi-mse``: the same with d = per-image MSE ([0, 1] scale), for machines without the weights.

Orientation: the score is ``BELONGING_SIGN * HFI(x)``, so that, as for every aedr method, a lower
score means "made by this model". The sign was chosen on calibration images only (docs/baselines.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np

import aedr
from aedr.distances import mse
from aedr.lazy import lazy_import
from aedr.reconstruction import decode_batch, encode, even_batch, first_pass

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

WEIGHT_FREE_HINT = "Without them: method hfi-mse (same reconstructions and blur, MSE instead of LPIPS; no weights)."

BELONGING_SIGN: int = 1
"""The score is ``BELONGING_SIGN * HFI(x)``: HFI itself, not negated. Chosen on the zoo's calibration
images only: under each of the six zoo models, the model's own images (generator seeds 0..7, the
default bench's calibration split) had a *smaller* HFI-MSE than the real calibration crops
(``zoo-real-cal``; own above real in 7.6 % of pairs on average) and than the other models' images
(0.2 %); seeds 0..15 gave the same. See docs/baselines.md."""


def gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    """The normalised 1-D Gaussian taps at offsets -(k // 2) .. k // 2 (odd ``kernel_size``), float64."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size}")
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    taps = torch.exp(-(offsets**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def gaussian_blur(x: torch.Tensor, kernel_size: int = 3, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of an NCHW batch, each channel alone, borders reflected (the edge pixel
    is not repeated: ``a b c | b a``), the same shape out; computed in float32."""
    taps = gaussian_kernel1d(kernel_size, sigma).to(device=x.device, dtype=torch.float32)
    pad = kernel_size // 2
    if pad == 0:
        return x.float().clone()
    if min(x.shape[-2:]) <= pad:
        raise ValueError(f"a {kernel_size}x{kernel_size} blur with reflected borders needs images larger than {pad} px a side, got {tuple(x.shape[-2:])}")
    c = x.shape[1]
    y = F.pad(x.float(), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, taps.view(1, 1, 1, -1).expand(c, 1, 1, kernel_size), groups=c)  # along the width
    return F.conv2d(y, taps.view(1, 1, -1, 1).expand(c, 1, kernel_size, 1), groups=c)  # along the height


@dataclass
class HFIOptions(aedr.MethodOptions):
    """``kernel_size``: side of the blur's square kernel (odd). ``sigma``: its standard deviation in
    pixels. Both as the original's defaults (3, 1.0)."""

    kernel_size: int = 3
    sigma: float = 1.0

    def validate(self) -> None:
        super().validate()
        gaussian_kernel1d(self.kernel_size, self.sigma)  # raises ValueError for a bad pair


class _HFIBase(aedr.Method):
    """Shared by the HFI variants: the two reconstructions, the blur and the difference of distances."""

    Options: ClassVar[type[aedr.MethodOptions]] = HFIOptions
    needs_grad = False
    cost = aedr.CostHint(encoder_passes=2, decoder_passes=2, relative=1.0)
    options: HFIOptions

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Per-image distance of two [-1, 1] batches."""
        raise NotImplementedError

    def hfi(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        """HFI(x) itself (not oriented), one float64 per image."""
        ae = ctx.autoencoder
        x0 = x0.float()
        # the image: the shared first reconstruction at the posterior mean, VQ decoded unquantised
        x1 = first_pass(ae, x0, mode="mean", seeds=ctx.seeds, keys=ctx.keys, cache=ctx.cache, quantize=False).x1
        # its blurred copy: its own posterior, cached under keys derived from the image's
        blurred = gaussian_blur(x0, self.options.kernel_size, self.options.sigma)
        tag = ("gaussian-blur", self.options.kernel_size, float(self.options.sigma))
        keys = None if ctx.keys is None else [(*k, tag) for k in ctx.keys]
        z = encode(ae, blurred, keys=keys, cache=ctx.cache).latent("mean")
        b1 = decode_batch(ae, z, quantize=False)
        dist = self.distance()
        with torch.no_grad():
            d_image = even_batch(dist, x1.float(), x0.to(x1.device))
            d_blurred = even_batch(dist, b1.float(), blurred.to(b1.device))
        return (d_image.double() - d_blurred.double()).cpu().numpy()

    def score_batch(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        return BELONGING_SIGN * self.hfi(ctx, x0)


class HFI(_HFIBase):
    name = "hfi"
    description = "HFI: LPIPS-VGG (all layers) reconstruction distance of the image minus that of its Gaussian blur (arXiv 2412.20704)."

    def __init__(self, options: aedr.MethodOptions | None = None, **overrides):
        from aedr.lpips import require_weights

        super().__init__(options, **overrides)
        require_weights(WEIGHT_FREE_HINT)  # fail at set-up, before any scoring

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        from aedr.lpips import ALL_LAYERS, load_lpips

        return load_lpips(self.options.device, ALL_LAYERS, alternative=WEIGHT_FREE_HINT)


class HFIMSE(_HFIBase):
    name = "hfi-mse"
    description = "HFI with a per-image MSE ([0, 1] scale) instead of LPIPS: needs no weights."

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return lambda a, b: mse(a, b) / 4.0  # [-1, 1] -> [0, 1] scale
