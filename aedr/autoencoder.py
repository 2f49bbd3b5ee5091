"""The autoencoder interface every method works against, and the diffusers-backed implementation.

Images enter and leave as float tensors in [-1, 1], NCHW. Encoding returns a :class:`Posterior`;
methods draw latents from it with one seed per image, so that a result never depends on which
other images share the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

LatentKind = Literal["kl", "vq", "deterministic"]
LatentMode = Literal["sample", "mean"]


@dataclass(frozen=True)
class SizePolicy:
    """How input images are brought to a size the autoencoder accepts.

    ``multiple``: each side is resized to ``round(side / multiple) * multiple`` (Python rounding),
    bicubic, when it is not already a multiple. ``fixed``: every image is resized to ``(width, height)``
    (Kandinsky 2.1 needs 512x512). ``min_side``: smaller inputs are rejected with a clear error.
    """

    multiple: int = 8
    fixed: tuple[int, int] | None = None
    min_side: int = 8

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        if self.fixed is not None:
            return self.fixed
        m = self.multiple
        return (round(width / m) * m, round(height / m) * m)


@dataclass
class Posterior:
    """The encoder's output for a batch. ``std is None`` for deterministic and VQ encoders."""

    mean: torch.Tensor
    std: torch.Tensor | None = None

    def latent(self, mode: LatentMode = "sample", seeds: Sequence[int] | None = None) -> torch.Tensor:
        """The posterior mean, or one sample per image with noise drawn from that image's seed."""
        if mode == "mean" or self.std is None:
            return self.mean
        if seeds is None or len(seeds) != self.mean.shape[0]:
            raise ValueError("sampling a posterior needs exactly one seed per image")
        noise = seeded_normal(self.mean.shape, seeds).to(self.mean.device, self.mean.dtype)
        return self.mean + self.std * noise


def seeded_normal(shape: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
    """N(0, I) noise of ``shape`` whose row i depends only on ``seeds[i]`` (drawn on the CPU)."""
    rows = []
    for seed in seeds:
        g = torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))
        rows.append(torch.randn(tuple(shape[1:]), generator=g, dtype=torch.float32))
    return torch.stack(rows)


class Autoencoder(ABC):
    """What a model plugin hands to methods. Subclasses set the class attributes and implement
    :meth:`encode` and :meth:`decode`; :meth:`quantize` matters for VQ models only."""

    latent_kind: LatentKind = "kl"
    size_policy: SizePolicy = SizePolicy()
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    @abstractmethod
    def encode(self, x: torch.Tensor) -> Posterior:
        """``x`` in [-1, 1], NCHW. VQ: the un-quantised encoder output as the mean."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> image in (approximately) [-1, 1], not clamped."""

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """VQ: snap a latent to the codebook. Identity for continuous latents."""
        return z

    def reconstruct(self, x: torch.Tensor, mode: LatentMode = "sample", seeds: Sequence[int] | None = None) -> torch.Tensor:
        return self.decode(self.encode(x).latent(mode, seeds))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype)


class DiffusersAutoencoder(Autoencoder):
    """Wraps diffusers' ``AutoencoderKL``, ``VQModel`` and ``AutoencoderTiny`` (and their relatives).

    ``quantize_on_decode`` (VQ only): decode the way ``VQModel.decode`` does by default, snapping the
    latent to the codebook first; set it False to decode the raw latent (``force_not_quantize``).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        size_policy: SizePolicy = SizePolicy(),
        quantize_on_decode: bool = True,
        upcast: bool = False,
    ):
        self.module = module.eval().requires_grad_(False)
        self.size_policy = size_policy
        self.quantize_on_decode = quantize_on_decode
        if upcast:
            self.module.to(torch.float32)
        p = next(self.module.parameters())
        self.device, self.dtype = p.device, p.dtype
        name = type(module).__name__
        if name == "VQModel" or hasattr(module, "quantize"):
            self.latent_kind = "vq"
        elif hasattr(module, "quant_conv") or name.startswith("AutoencoderKL"):
            self.latent_kind = "kl"
        else:
            self.latent_kind = "deterministic"

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str,
        *,
        subfolder: str | None = None,
        model_class: str | type | None = None,
        torch_dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        size_policy: SizePolicy = SizePolicy(),
        quantize_on_decode: bool = True,
        upcast: bool = False,
        **kwargs,
    ) -> "DiffusersAutoencoder":
        """Load from a hub id or a local folder exactly as diffusers does (cache and offline mode
        respected). ``model_class`` defaults to the class named in the folder's ``config.json``."""
        import diffusers

        if isinstance(model_class, str):
            model_class = getattr(diffusers, model_class)
        if model_class is None:
            config = diffusers.AutoencoderKL.load_config(path_or_id, subfolder=subfolder, **kwargs)  # any ModelMixin reads config.json
            model_class = getattr(diffusers, config["_class_name"])
        module = model_class.from_pretrained(path_or_id, subfolder=subfolder, torch_dtype=torch_dtype, **kwargs)
        module.to(device)
        return cls(module, size_policy=size_policy, quantize_on_decode=quantize_on_decode, upcast=upcast)

    def encode(self, x: torch.Tensor) -> Posterior:
        out = self.module.encode(self._input(x))
        if hasattr(out, "latent_dist"):
            dist = out.latent_dist
            return Posterior(dist.mean, dist.std)
        return Posterior(out.latents)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z.to(self.device, self.dtype)
        if self.latent_kind == "vq":
            return self.module.decode(z, force_not_quantize=not self.quantize_on_decode).sample
        return self.module.decode(z).sample

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_kind != "vq":
            return z
        quant, *_ = self.module.quantize(z.to(self.device, self.dtype))
        return quant
