"""One paper model as an :class:`aedr.ModelPlugin`: its autoencoder loaded alone from the hub or a
local folder, and its text-to-image pipeline as the generator."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

import aedr
from aedr import Availability, CalibrationSource, ModelPlugin
from aedr.lazy import lazy_import
from aedr.weights import WeightSource, WeightsUnavailableError, images_folder

from .prompts import resolve_prompts
from .specs import ModelSpec

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


class DiffusersModel(ModelPlugin):
    """A paper model backed by diffusers.

    ``source``: hub id or local folder (default: ``AEDR_MODEL_<KEY>``, else the spec's hub id).
    ``images``: a folder of this model's images used for calibration instead of generating
    (default: ``AEDR_IMAGES_<KEY>``). Both are read when used, so environment changes apply.
    """

    def __init__(self, spec: ModelSpec, *, source: str | os.PathLike | None = None, images: str | os.PathLike | None = None):
        super().__init__()
        self.spec = spec
        self.name = spec.key
        self.family = spec.family
        self.description = spec.description
        self.native_size = spec.native_size
        self._source = source
        self._images = images
        self._pipelines: dict[tuple[str, torch.dtype], Any] = {}
        self._pipeline_lock = threading.Lock()

    # -- where things come from ----------------------------------------------------------
    @property
    def source(self) -> WeightSource:
        s = self.spec
        return WeightSource.resolve(s.key, s.hub_id, s.subfolder, override=self._source, gated=s.gated, former_ids=s.former_ids)

    @property
    def images_folder(self) -> Path | None:
        return images_folder(self.spec.key, self._images)

    @property
    def calibration(self) -> CalibrationSource:  # type: ignore[override]
        folder = self.images_folder
        return CalibrationSource(folder=folder) if folder is not None else CalibrationSource(generate=500)

    @property
    def can_generate(self) -> bool:  # type: ignore[override]
        """False while an images folder is configured: runs then take the model's images from there
        (e.g. the paper's own generated images) instead of generating; :meth:`generate` still works."""
        return self.images_folder is None

    def availability(self) -> Availability:
        return self.source.availability()

    def default_dtype(self, dtype: torch.dtype | None) -> torch.dtype:
        """The dtype the autoencoder runs in: the request, else the original's; float16 is upcast to
        float32 for autoencoders that overflow in it (SDXL), as diffusers' pipelines do."""
        chosen = dtype if dtype is not None else self.spec.dtype
        if self.spec.upcast and chosen == torch.float16:
            return torch.float32
        return chosen

    # -- autoencoder ---------------------------------------------------------------------
    def load_autoencoder(self, device: torch.device, dtype: torch.dtype | None) -> aedr.DiffusersAutoencoder:
        source = self.source
        path, subfolder = source.location()
        with source.loading():
            return aedr.DiffusersAutoencoder.from_pretrained(
                path,
                subfolder=subfolder,
                model_class=self.spec.autoencoder_class,
                torch_dtype=self.default_dtype(dtype),
                device=device,
                size_policy=self.spec.size_policy,
                quantize_on_decode=self.spec.quantize_on_decode,
            )

    # -- generator -----------------------------------------------------------------------
    def pipeline(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Any:
        """The text-to-image pipeline on ``device`` (loaded once, kept until :meth:`release`)."""
        import diffusers

        dtype = dtype if dtype is not None else self.spec.dtype
        key = (str(torch.device(device)), dtype)
        with self._pipeline_lock:
            if key in self._pipelines:
                return self._pipelines[key]
            source = self.source
            if source.is_local and not (Path(source.value).expanduser() / "model_index.json").is_file():
                raise WeightsUnavailableError(source.message(
                    f"{source.value} has no model_index.json: generating needs the whole pipeline folder, "
                    "not only the autoencoder", pipeline=True))
            if importlib.util.find_spec("transformers") is None:
                raise ImportError(
                    f"generating with {self.name} needs the transformers package for its text encoders: "
                    "pip install transformers (SD3.5 and FLUX also use sentencepiece and protobuf for T5)"
                )
            cls = getattr(diffusers, self.spec.pipeline_class)
            with source.loading(pipeline=True):
                pipe = cls.from_pretrained(str(Path(source.value).expanduser()) if source.is_local else source.value,
                                           torch_dtype=dtype, **dict(self.spec.pipeline_kwargs))
            if self.spec.upcast and dtype == torch.float16 and hasattr(pipe, "upcast_vae"):
                pipe.upcast_vae()
            pipe = pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
            self._pipelines[key] = pipe
            return pipe

    def release(self) -> None:
        """Free the loaded pipelines (autoencoders stay cached)."""
        with self._pipeline_lock:
            self._pipelines.clear()

    def generate(
        self,
        n: int,
        seed: int = 0,
        prompts: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> list[Image.Image]:
        """``n`` images through the pipeline with the original's steps and guidance at the pipeline's
        default size, each from a generator seeded ``seed + i`` (on the CPU, or on the device for
        VQ-Diffusion). Image ``i`` uses ``prompts[i]`` (cycled when there are fewer); without
        ``prompts``, prompt ``(seed + i) mod N`` of the file named by ``AEDR_PROMPT_FILE``, so that an
        image depends only on its seed however the calls are batched."""
        texts = resolve_prompts(prompts)
        pick = (lambda i: texts[i % len(texts)]) if prompts is not None else (lambda i: texts[(seed + i) % len(texts)])
        pipe = self.pipeline(device)
        return [self.generate_one(pipe, pick(i), seed + i) for i in range(n)]

    def generate_one(self, pipe: Any, prompt: str, seed: int) -> Image.Image:
        device = pipe.device if self.spec.generator_on_device else "cpu"
        generator = torch.Generator(device=device).manual_seed(int(seed))
        with torch.no_grad():
            out = pipe(
                prompt,
                num_inference_steps=self.spec.steps,
                guidance_scale=self.spec.guidance,
                generator=generator,
                output_type="pil",
            )
        return out.images[0].convert("RGB")

    def __repr__(self) -> str:
        return f"<DiffusersModel {self.name!r} ({self.family}) from {self.source.describe()}>"
