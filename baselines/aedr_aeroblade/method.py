"""AEROBLADE: one reconstruction x1 = D(E(x0)) through the target's autoencoder (a posterior sample
drawn from the image's own seed, exactly AEDR's first pass, so a benchmark computes it once; VQ
latents decoded without quantising, as the original does for every VQ model), clamped to [0, 1] and
reduced to 8 bits as the original's ``to_pil_image`` does (``floor(255 u)``: truncation), then a
distance to x0. Lower = belonging.

- ``aeroblade``: LPIPS (VGG16, v0.1 heads) at layer 2 only (relu2_2), spatially averaged, as the
  original. Needs two weight files (see :mod:`aedr.lpips`); when they are missing it fails before
  scoring, naming the files and where to put them.
- ``aeroblade-mse`` / ``aeroblade-ssim``: the same reconstruction with MSE ([0, 1] scale) or
  1 - SSIM, for machines without the LPIPS weights. Separate names, so a table never mixes them up.

Detection mode (the original detector): ``detection_models=[...]`` scores each image by the minimum
distance over the target's autoencoder and those of the named models (each image resized by each
model's own size policy, each reconstruction cached under that model's name). The names are looked
up in the plugin set the method was built from (``Method.plugins``), else in the process's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Literal, Sequence

import numpy as np

import aedr
from aedr.distances import mse, ssim_loss
from aedr.preprocess import group_by_size, to_model_tensor
from aedr.reconstruction import cache_keys, first_pass, even_batch
from aedr.lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

WEIGHT_FREE_HINT = "Without them: methods aeroblade-mse / aeroblade-ssim (same reconstruction, no weights)."


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] image -> clamped to [0, 1] -> 8 bits as torchvision's ``to_pil_image`` makes them,
    ``floor(255 u)`` (``mul(255).byte()`` truncates) -> back to [-1, 1]."""
    u = ((x.float() + 1) / 2).clamp(0, 1)
    u = torch.floor(u * 255) / 255
    return u * 2 - 1


@dataclass
class ReconstructionOptions(aedr.MethodOptions):
    """``latent``: posterior ``sample`` (per-image seed; the original samples) or ``mean``.
    ``quantize``: clamp and truncate the reconstruction to 8 bits before the distance (the original).
    ``detection_models``: the original detector's mode: minimum over the target and these models."""

    latent: Literal["sample", "mean"] = "sample"
    quantize: bool = True
    detection_models: list[str] = field(default_factory=list)

    def validate(self) -> None:
        super().validate()
        if self.latent not in ("sample", "mean"):
            raise ValueError(f"latent must be 'sample' or 'mean', got {self.latent!r}")
        if isinstance(self.detection_models, str):
            self.detection_models = [m.strip() for m in self.detection_models.split(",") if m.strip()]
        self.detection_models = list(self.detection_models)


@dataclass
class AerobladeOptions(ReconstructionOptions):
    """``lpips_layer``: which VGG16 stage's LPIPS term (1..5; 2 = relu2_2 as the original), or 0 for
    standard LPIPS (all five layers summed)."""

    lpips_layer: int = 2

    def validate(self) -> None:
        from aedr.lpips import ALL_LAYERS  # aedr.lpips defines torch modules: imported on use

        super().validate()
        if self.lpips_layer not in (0, *ALL_LAYERS):
            raise ValueError(f"lpips_layer must be 0 (all) or one of {ALL_LAYERS}, got {self.lpips_layer}")


class _ReconstructionDistance(aedr.Method):
    """Shared by the AEROBLADE variants: distance(8-bit x1, x0) under one or several autoencoders."""

    Options: ClassVar[type[aedr.MethodOptions]] = ReconstructionOptions
    needs_grad = False
    cost = aedr.CostHint(encoder_passes=1, decoder_passes=1, relative=0.5)
    options: ReconstructionOptions

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Per-image distance of two [-1, 1] batches."""
        raise NotImplementedError

    def detection_model(self, name: str) -> aedr.ModelPlugin:
        """A detection model by name, from the plugin set the method was built from (else the process's)."""
        plugins = self.plugins if self.plugins is not None else aedr.get_plugins()
        return plugins.model(name)

    def _distances(
        self, model: aedr.ModelPlugin, ae: aedr.Autoencoder, x0: torch.Tensor, seeds: Sequence[int], keys, cache
    ) -> np.ndarray:
        fp = first_pass(ae, x0, mode=self.options.latent, seeds=seeds, keys=keys, cache=cache, quantize=False)
        x1 = fp.x1.float()
        if self.options.quantize:
            x1 = quantize_8bit(x1)
        with torch.no_grad():
            d = even_batch(self.distance(), x1, x0.to(x1.device).float())
        return d.double().cpu().numpy()

    def score_batch(self, ctx: aedr.ScoreContext, x0: torch.Tensor) -> np.ndarray:
        scores = self._distances(ctx.model, ctx.autoencoder, x0, ctx.seeds, ctx.keys, ctx.cache)
        for name in self.options.detection_models:
            if name == ctx.model.name:
                continue
            other = self.detection_model(name)
            ae = self.autoencoder(other)
            d = np.full(len(ctx.images), np.nan)
            for size, idx in group_by_size(ctx.images, ae.size_policy).items():
                batch = [ctx.images[i] for i in idx]
                keys = cache_keys(other, ae, batch, size)
                d[idx] = self._distances(other, ae, to_model_tensor(batch, size), [ctx.seeds[i] for i in idx], keys, ctx.cache)
            scores = np.minimum(scores, d)
        return scores


class Aeroblade(_ReconstructionDistance):
    name = "aeroblade"
    description = "AEROBLADE: LPIPS (VGG16 layer 2) between the image and its 8-bit autoencoder reconstruction (CVPR 2024)."
    Options = AerobladeOptions
    options: AerobladeOptions

    def __init__(self, options: aedr.MethodOptions | None = None, **overrides):
        from aedr.lpips import require_weights

        super().__init__(options, **overrides)
        require_weights(WEIGHT_FREE_HINT)  # fail at set-up, before any scoring

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        from aedr.lpips import ALL_LAYERS, load_lpips

        layers = ALL_LAYERS if self.options.lpips_layer == 0 else (self.options.lpips_layer,)
        return load_lpips(self.options.device, layers, alternative=WEIGHT_FREE_HINT)


class AerobladeMSE(_ReconstructionDistance):
    name = "aeroblade-mse"
    description = "AEROBLADE's 8-bit reconstruction with MSE ([0, 1] scale) instead of LPIPS: needs no weights."

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return lambda a, b: mse(a, b) / 4.0  # [-1, 1] -> [0, 1] scale


class AerobladeSSIM(_ReconstructionDistance):
    name = "aeroblade-ssim"
    description = "AEROBLADE's 8-bit reconstruction with 1 - SSIM instead of LPIPS: needs no weights."

    def distance(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return ssim_loss
