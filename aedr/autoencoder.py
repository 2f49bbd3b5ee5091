"""The autoencoder interface every method works against, and the diffusers-backed implementation.

Images enter and leave as float tensors in [-1, 1], NCHW. Encoding returns a :class:`Posterior`;
methods draw latents from it with one seed per image, so that a result never depends on which
other images share the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence, Tuple, Union

from .lazy import lazy_default, lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

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


Factor = Union[float, Tuple[float, ...]]
"""A latent scale or shift: one number, or one per latent channel."""


class Autoencoder(ABC):
    """What a model plugin hands to methods. Subclasses set the class attributes and implement
    :meth:`encode` and :meth:`decode`; :meth:`quantize` matters for VQ models only.

    ``scaling_factor`` (c) and ``shift_factor`` (b) map the raw latent z to the space the model's
    generator works in, s = c * (z - b), as diffusers' ``vae.config.scaling_factor`` and
    ``shift_factor`` do (SD1/2: c = 0.18215; SD3: c = 1.5305, b = 0.0609). Continuous autoencoders
    whose latents the generator uses as they are (TAESD family), and VQ models, have c = 1, b = 0.
    Either may be one number per latent channel.

    ``quantize_on_decode`` (VQ only): the model's own rule for :meth:`decode`: snap the latent to the
    codebook first (``VQModel.decode``'s default) or decode it as it is (``force_not_quantize``).
    """

    latent_kind: LatentKind = "kl"
    size_policy: SizePolicy = SizePolicy()
    device: torch.device = lazy_default(lambda: torch.device("cpu"))  # (made on first read: no torch import here)
    dtype: torch.dtype = lazy_default(lambda: torch.float32)
    scaling_factor: Factor = 1.0
    shift_factor: Factor = 0.0
    quantize_on_decode: bool = True

    @abstractmethod
    def encode(self, x: torch.Tensor) -> Posterior:
        """``x`` in [-1, 1], NCHW. VQ: the un-quantised encoder output as the mean."""

    @abstractmethod
    def decode(self, z: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        """Latent -> image in (approximately) [-1, 1], not clamped.

        ``quantize`` (VQ only; ignored by continuous latents): ``None`` follows the model's own rule
        (``quantize_on_decode``), ``True`` snaps the latent to the codebook first, ``False`` decodes
        it as it is (diffusers' ``force_not_quantize=True``)."""

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """VQ: snap a latent to the codebook. Identity for continuous latents."""
        return z

    def quantizes(self, quantize: bool | None = None) -> bool:
        """Whether :meth:`decode` with this ``quantize`` argument snaps the latent to the codebook."""
        if self.latent_kind != "vq":
            return False
        return self.quantize_on_decode if quantize is None else bool(quantize)

    def reconstruct(self, x: torch.Tensor, mode: LatentMode = "sample", seeds: Sequence[int] | None = None) -> torch.Tensor:
        return self.decode(self.encode(x).latent(mode, seeds))

    # -- the generator's latent space ----------------------------------------------------------
    def _factor(self, value: Factor, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
        if t.ndim == 0:
            return t
        if t.ndim != 1 or t.numel() != like.shape[1]:
            raise ValueError(f"a per-channel latent factor needs {like.shape[1]} values, got {tuple(t.shape)}")
        return t.view(1, -1, *([1] * (like.ndim - 2)))

    def to_scaled(self, z: torch.Tensor) -> torch.Tensor:
        """s = c * (z - b): the raw latent in the generator's (scaled) latent space."""
        return (z - self._factor(self.shift_factor, z)) * self._factor(self.scaling_factor, z)

    def from_scaled(self, s: torch.Tensor) -> torch.Tensor:
        """z = s / c + b, the inverse of :meth:`to_scaled`."""
        return s / self._factor(self.scaling_factor, s) + self._factor(self.shift_factor, s)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, self.dtype)

    # -- identity ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """What identifies this autoencoder's computation (:mod:`aedr.fingerprint`): every tensor of
        every torch module it holds as an attribute, and the settings that change its output.
        Override when the weights live where :func:`aedr.fingerprint.module_tensors` does not look."""
        from .fingerprint import module_tensors, tensors_fingerprint

        kind = type(self)
        settings = (f"{kind.__module__}.{kind.__qualname__}", self.latent_kind, repr(self.scaling_factor), repr(self.shift_factor),
                    repr(self.size_policy), repr(self.quantize_on_decode))
        return tensors_fingerprint(module_tensors(self), *settings)


class DiffusersAutoencoder(Autoencoder):
    """Wraps diffusers' ``AutoencoderKL``, ``VQModel`` and ``AutoencoderTiny`` and their relatives (``AutoencoderKLHunyuanImage``, ...).

    ``quantize_on_decode`` (VQ only): decode the way ``VQModel.decode`` does by default, snapping the
    latent to the codebook first; set it False to decode the raw latent (``force_not_quantize``).
    ``scaling_factor`` / ``shift_factor``: ``None`` takes them from the module's config for KL
    autoencoders (``shift_factor`` 0 where the config has none) and 1 / 0 for VQ and tiny ones.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        size_policy: SizePolicy = SizePolicy(),
        quantize_on_decode: bool = True,
        upcast: bool = False,
        scaling_factor: Factor | None = None,
        shift_factor: Factor | None = None,
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
        config = getattr(module, "config", {})
        from_config = self.latent_kind == "kl"
        if scaling_factor is None:
            scaling_factor = float(config.get("scaling_factor") or 1.0) if from_config else 1.0
        if shift_factor is None:
            shift_factor = float(config.get("shift_factor") or 0.0) if from_config else 0.0
        self.scaling_factor, self.shift_factor = scaling_factor, shift_factor

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
        scaling_factor: Factor | None = None,
        shift_factor: Factor | None = None,
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
        return cls(module, size_policy=size_policy, quantize_on_decode=quantize_on_decode, upcast=upcast,
                   scaling_factor=scaling_factor, shift_factor=shift_factor)

    # Latents are made contiguous on the way in and out: some encoders return channels-last views,
    # and a convolution rounds differently on another memory layout, so a latent taken from the
    # shared cache (stored per image, stacked back contiguous) must decode to the same bits.
    def encode(self, x: torch.Tensor) -> Posterior:
        out = self.module.encode(self._input(x))
        if hasattr(out, "latent_dist"):
            dist = out.latent_dist
            return Posterior(dist.mean.contiguous(), dist.std.contiguous())
        return Posterior(out.latents.contiguous())

    def decode(self, z: torch.Tensor, quantize: bool | None = None) -> torch.Tensor:
        z = z.to(self.device, self.dtype).contiguous()
        if self.latent_kind == "vq":
            return self.module.decode(z, force_not_quantize=not self.quantizes(quantize)).sample
        return self.module.decode(z).sample

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        if self.latent_kind != "vq":
            return z
        quant, *_ = self.module.quantize(z.to(self.device, self.dtype))
        return quant
