"""The eight latent diffusion models of the AEDR paper, as the original implementation loads and runs them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aedr.autoencoder import SizePolicy

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ModelSpec:
    """Everything that differs between the paper's models.

    ``dtype``: the dtype the original runs the model in (the default; methods may override it),
    given by its torch name as ``dtype_name`` (so that listing the models needs no torch).
    ``upcast``: the autoencoder runs in float32 even when the pipeline runs in half precision
    (SDXL's VAE overflows in float16; the original calls ``pipe.upcast_vae()``).
    ``quantize_on_decode``: VQ autoencoders decode as ``VQModel.decode`` does by default (the
    latent is snapped to the codebook), which is how the original AEDR code calls them.
    ``steps`` / ``guidance``: the generation settings of the original (``gen_img.py``).
    ``former_ids``: ids the model was published under before; used only when found in the cache.
    ``generator_on_device``: the seeded generator lives on the pipeline's device (VQ-Diffusion's
    scheduler draws its noise with ``torch.rand(..., device=logits.device)``); otherwise on the CPU.
    ``native_size``: the side of the pipeline's default (square) output.
    """

    key: str
    hub_id: str
    subfolder: str
    family: str
    autoencoder_class: str
    pipeline_class: str
    description: str
    dtype_name: str = "float32"
    upcast: bool = False
    size_policy: SizePolicy = SizePolicy()
    quantize_on_decode: bool = True
    steps: int = 50
    guidance: float = 7.5
    gated: bool = False
    former_ids: tuple[str, ...] = ()
    pipeline_kwargs: tuple[tuple[str, object], ...] = ()
    generator_on_device: bool = False
    native_size: int = 512

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def latent_note(self) -> str:
        return {"kl": "KL, 4 ch", "kl16": "KL, 16 ch", "vq": "VQ", "movq": "MoVQ (VQ, spatial norm)"}.get(self.family, self.family)


# SD1.5's original id (runwayml/stable-diffusion-v1-5) was taken down; the weights moved to the
# stable-diffusion-v1-5 organisation. Its pipeline ships a safety checker that replaces flagged images
# with black ones (not decoder outputs), so it is not loaded for generation.
NO_SAFETY_CHECKER = (("safety_checker", None), ("requires_safety_checker", False))

PAPER_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "SD1.5", "stable-diffusion-v1-5/stable-diffusion-v1-5", "vae", "kl", "AutoencoderKL",
        "StableDiffusionPipeline", "Stable Diffusion 1.5 (512 px)",
        former_ids=("runwayml/stable-diffusion-v1-5",), pipeline_kwargs=NO_SAFETY_CHECKER,
    ),
    ModelSpec(
        "SD2base", "stabilityai/stable-diffusion-2-base", "vae", "kl", "AutoencoderKL",
        "StableDiffusionPipeline", "Stable Diffusion 2 base (512 px)", pipeline_kwargs=NO_SAFETY_CHECKER,
    ),
    ModelSpec(
        "SD2.1", "stabilityai/stable-diffusion-2-1", "vae", "kl", "AutoencoderKL",
        "StableDiffusionPipeline", "Stable Diffusion 2.1 (768 px)", pipeline_kwargs=NO_SAFETY_CHECKER, native_size=768,
    ),
    ModelSpec(
        "SDXL", "stabilityai/stable-diffusion-xl-base-1.0", "vae", "kl", "AutoencoderKL",
        "StableDiffusionXLPipeline", "Stable Diffusion XL base 1.0 (1024 px); VAE upcast to float32",
        upcast=True, native_size=1024,
    ),
    ModelSpec(
        "SD3.5", "stabilityai/stable-diffusion-3.5-large", "vae", "kl16", "AutoencoderKL",
        "StableDiffusion3Pipeline", "Stable Diffusion 3.5 Large (1024 px, bfloat16)",
        dtype_name="bfloat16", steps=35, gated=True, native_size=1024,
    ),
    ModelSpec(
        "FLUX", "black-forest-labs/FLUX.1-dev", "vae", "kl16", "AutoencoderKL",
        "FluxPipeline", "FLUX.1 [dev] (1024 px, bfloat16)",
        dtype_name="bfloat16", steps=35, gated=True, native_size=1024,
    ),
    ModelSpec(
        "KD2.1", "kandinsky-community/kandinsky-2-1", "movq", "movq", "VQModel",
        "AutoPipelineForText2Image", "Kandinsky 2.1 (MoVQ autoencoder; inputs resized to 512x512)",
        size_policy=SizePolicy(fixed=(512, 512)),
    ),
    ModelSpec(
        "VQDM", "microsoft/vq-diffusion-ithq", "vqvae", "vq", "VQModel",
        "VQDiffusionPipeline", "VQ-Diffusion ITHQ (VQ-VAE, 256 px)", generator_on_device=True, native_size=256,
    ),
)

SPECS: dict[str, ModelSpec] = {s.key: s for s in PAPER_MODELS}
