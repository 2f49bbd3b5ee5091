"""The zoo's model plugin: a shipped diffusers autoencoder plus a latent denoiser sampled with DDIM."""

from __future__ import annotations

import json
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

import aedr
from aedr.autoencoder import Factor, seeded_normal
from aedr.lazy import lazy_import
from aedr.preprocess import tensor_to_uint8

from .latents import denormalise
from .data import RESOLUTION
from .models import ZOO, ZooSpec
from .store import DISTANCES_FILE, WEIGHTS_DIR, model_dir, sha256_file, verify_model, weights_in_use

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")  # imported when a model is used, not when the zoo is listed

GENERATION_CHUNK = 16
"""Latents are denoised in chunks of exactly this many (the last one padded with extra seeds), so that
every image is computed in a batch of the same shape and depends only on its own seed."""


class ZooModel(aedr.ModelPlugin):
    """One zoo model. Weights are verified against the checksum file before first use.

    Generation is unconditional: ``prompts`` are accepted for interface compatibility and ignored.
    """

    calibration = aedr.CalibrationSource(generate=500)

    def __init__(self, spec: ZooSpec, weights_dir: Path = WEIGHTS_DIR, *, verify: bool = True):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.family = spec.family
        self.description = spec.description
        self.native_size = RESOLUTION
        self.weights_dir = Path(weights_dir)
        self.verify = verify
        self._verified = False
        self._unets: dict[str, torch.nn.Module] = {}
        self._gen_lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return model_dir(self.name, self.weights_dir)

    @cached_property
    def meta(self) -> dict[str, Any]:
        """``zoo.json``: latent normalisation, documented PSNR, parameter counts, training record."""
        self._check()
        return json.loads((self.folder / "zoo.json").read_text())

    def _check(self) -> None:
        if self.verify and not self._verified:
            verify_model(self.name, self.weights_dir)
            self._verified = True

    def availability(self) -> aedr.Availability:
        if not (self.folder / "autoencoder" / "config.json").is_file():
            return aedr.Availability(False, f"weights missing in {self.folder}; run `aedr zoo train --only {self.name}`")
        return aedr.Availability(True, "shipped with aedr (zoo)")

    def latent_factors(self) -> tuple[Factor, Factor]:
        """(scaling_factor, shift_factor) of the autoencoder: the normalisation the denoiser was
        trained with, s = (z - latent_shift) * latent_scale (one number or one per channel); VQ
        models have 1 and 0, as the VQ models the zoo stands for (VQ-Diffusion, Kandinsky's MoVQ)."""
        if self.spec.ae.cls == "VQModel":
            return 1.0, 0.0

        def factor(value):
            return tuple(float(v) for v in value) if isinstance(value, list) else float(value)

        return factor(self.meta["latent_scale"]), factor(self.meta["latent_shift"])

    def load_autoencoder(self, device: torch.device, dtype: torch.dtype | None) -> aedr.Autoencoder:
        self._check()
        scaling_factor, shift_factor = self.latent_factors()
        return aedr.DiffusersAutoencoder.from_pretrained(
            str(self.folder / "autoencoder"),
            torch_dtype=dtype,
            device=device,
            size_policy=aedr.SizePolicy(multiple=self.spec.ae.downsample, min_side=self.spec.ae.downsample),
            quantize_on_decode=self.spec.quantize_on_decode,
            scaling_factor=scaling_factor,
            shift_factor=shift_factor,
        )

    def sample_distance(self, other: aedr.ModelPlugin) -> float | None:
        """Gate 3's MMD² between this model's gate samples and ``other``'s (``sample_distances.json``,
        written by ``aedr zoo distances`` and at the end of ``aedr zoo train``); None for a model
        outside the zoo or a zoo trained before the distances were recorded."""
        path = self.folder / DISTANCES_FILE
        if not path.is_file():
            return None
        value = json.loads(path.read_text()).get("mmd2", {}).get(other.name)
        return None if value is None else float(value)

    def generator_fingerprint(self) -> str:
        """The denoiser's and the scheduler's files, and ``zoo.json`` (latent normalisation, sampling
        steps), hashed: what the generator adds to the autoencoder."""
        from aedr.fingerprint import digest

        self._check()
        files = sorted(p for part in ("unet", "scheduler") for p in (self.folder / part).rglob("*") if p.is_file())
        files.append(self.folder / "zoo.json")
        return digest(*(f"{p.relative_to(self.folder).as_posix()}:{sha256_file(p)}" for p in files))

    def unet(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The latent denoiser (diffusers ``UNet2DModel``), loaded once per device."""
        from diffusers import UNet2DModel

        key = str(torch.device(device))
        with self._gen_lock:
            if key not in self._unets:
                self._check()
                unet = UNet2DModel.from_pretrained(str(self.folder / "unet"))
                self._unets[key] = unet.to(device).eval().requires_grad_(False)
            return self._unets[key]

    def scheduler(self):
        from diffusers import DDIMScheduler

        self._check()
        return DDIMScheduler.from_pretrained(str(self.folder / "scheduler"))

    def sample_latents(self, seeds: Sequence[int], device: str | torch.device = "cpu") -> torch.Tensor:
        """DDIM (eta = 0) from per-seed Gaussian noise; returns latents in the autoencoder's own scale."""
        with torch.no_grad():
            unet = self.unet(device)
            sched = self.scheduler()
            sched.set_timesteps(int(self.meta["sampling_steps"]))
            shape = (len(seeds), *self.meta["latent_shape"])
            z = seeded_normal(shape, list(seeds)).to(device)
            for t in sched.timesteps:
                eps = unet(z, t).sample
                z = sched.step(eps, t, z).prev_sample
            return denormalise(z, self.meta["latent_shift"], self.meta["latent_scale"])

    def generate_tensor(self, n: int, seed: int = 0, device: str | torch.device = "cpu") -> torch.Tensor:
        """``n`` generated images as float NCHW in [-1, 1] (not clamped): decoder(sampled latent)."""
        with torch.no_grad():
            ae = self.autoencoder(device)
            out = []
            for start in range(0, n, GENERATION_CHUNK):
                seeds = [seed + start + k for k in range(GENERATION_CHUNK)]
                x = ae.decode(self.sample_latents(seeds, device)).float().cpu()
                out.append(x[: min(GENERATION_CHUNK, n - start)])
            return torch.cat(out) if out else torch.empty(0, 3, *([self.meta["resolution"]] * 2))

    def generate(
        self,
        n: int,
        seed: int = 0,
        prompts: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> list[Image.Image]:
        """``n`` belonging images (RGB, zoo resolution); image ``i`` depends only on ``seed + i``."""
        arrays = tensor_to_uint8(self.generate_tensor(n, seed, device))
        return [Image.fromarray(a, "RGB") for a in arrays]


def zoo_models() -> list[ZooModel]:
    """Every zoo model, on the weights in use (:func:`~aedr_zoo.store.weights_in_use`)."""
    folder = weights_in_use()
    return [ZooModel(spec, folder) for spec in ZOO]
