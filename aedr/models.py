"""The model-plugin interface: one latent diffusion model, its autoencoder and (optionally) its generator."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from PIL import Image

from .autoencoder import Autoencoder
from .lazy import lazy_import
from .weights import Availability, WeightsUnavailableError

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

__all__ = ["Availability", "CalibrationSource", "ModelLookup", "ModelPlugin", "WeightsUnavailableError"]


@dataclass(frozen=True)
class CalibrationSource:
    """Where a model's own (belonging) calibration images come from: a folder, or its generator."""

    folder: Path | None = None
    generate: int | None = None

    def describe(self) -> str:
        if self.folder is not None:
            return f"folder {self.folder}"
        if self.generate:
            return f"generate {self.generate}"
        return "none"


HIGH_FIDELITY_FAMILIES = frozenset({"kl16"})
"""Autoencoder families with high-fidelity 16-channel latents (SD3, FLUX and the zoo's ``zoo-kl16``):
their reconstructions are several dB better than a 4-channel VAE's, the regime where the AEDR paper
says single-loss methods collapse. The bench reports their pairs as a summary scope of their own."""


class ModelPlugin(ABC):
    """Subclass, set ``name``, ``family`` and ``description``, implement :meth:`load_autoencoder`
    (and :meth:`generate` if the model can produce images), then register an instance::

        @aedr.hookimpl
        def register_models(register):
            register(MyModel())

    The autoencoder is loaded lazily, once per (device, dtype), on the first :meth:`autoencoder` call.
    ``family`` is a free-form autoencoder family used to group results (``kl``, ``kl16``, ``vq``,
    ``movq``, ``tiny``, ...). ``native_size``: the side of the square images the model's generator
    makes by default (SD1.5 512, SDXL 1024, ...), ``None`` when it has none.

    Weights that are missing or cannot be fetched raise :class:`aedr.WeightsUnavailableError`;
    :mod:`aedr.weights` locates them (argument, ``AEDR_MODEL_<KEY>``, the hub) and words that error.
    """

    name: str = ""
    family: str = ""
    description: str = ""
    native_size: int | None = None
    calibration: CalibrationSource = CalibrationSource(generate=500)

    def __init__(self) -> None:
        self._autoencoders: dict[tuple[str, torch.dtype | None], Autoencoder] = {}
        self._lock = threading.Lock()

    @abstractmethod
    def load_autoencoder(self, device: torch.device, dtype: torch.dtype | None) -> Autoencoder:
        """Build the autoencoder on ``device``; ``dtype=None`` means the model's own default."""

    def autoencoder(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> Autoencoder:
        key = (str(torch.device(device)), dtype)
        with self._lock:
            if key not in self._autoencoders:
                self._autoencoders[key] = self.load_autoencoder(torch.device(device), dtype)
            return self._autoencoders[key]

    # -- identity: what a cached result was made with ---------------------------------------------
    def autoencoder_fingerprint(self) -> str:
        """A fingerprint of the autoencoder's weights and settings (:mod:`aedr.fingerprint`), from the
        autoencoder on the CPU in its own dtype; computed once per plugin instance. Scores, cards and
        caches are keyed by it, and two models with the same one share an autoencoder."""
        cache = self.__dict__.setdefault("_fingerprints", {})
        if "autoencoder" not in cache:
            cache["autoencoder"] = self.autoencoder("cpu").fingerprint()
        return cache["autoencoder"]

    def generator_fingerprint(self) -> str:
        """A fingerprint of the weights the generator adds to the autoencoder's (its denoiser, its
        scheduler); "" for a model without a generator. Override it in a model that generates: the
        bench's cache of generated images is keyed by :meth:`fingerprint`, and a generator this does
        not describe is recognised by its autoencoder alone."""
        return ""

    def sample_distance(self, other: "ModelPlugin") -> float | None:
        """How close this model's generated images are to ``other``'s, by a distance that involves no
        attribution method (the zoo: gate 3's MMD² between the two models' samples, recorded in its
        ``zoo.json``); None when unknown (the default). The bench calls the third of its model pairs
        with the smallest distances its hard pairs and gives their mean a column of its own."""
        return None

    def fingerprint(self) -> str:
        """What the model's generated images depend on: its autoencoder and its generator."""
        from .fingerprint import combine

        return combine(autoencoder=self.autoencoder_fingerprint(), generator=self.generator_fingerprint())

    @property
    def can_generate(self) -> bool:
        return type(self).generate is not ModelPlugin.generate

    def generate(
        self,
        n: int,
        seed: int = 0,
        prompts: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
    ) -> list[Image.Image]:
        """``n`` belonging images (RGB). Image ``i`` depends only on ``seed + i`` (and its prompt)."""
        raise NotImplementedError(f"model {self.name!r} has no generator")

    def availability(self) -> Availability:
        """Whether the weights are present locally. Override for models that download."""
        return Availability(True, "shipped")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.family})>"


class ModelLookup(Protocol):
    """Where a method finds a model by name (AEROBLADE's detection models): a plugin set
    (:class:`aedr.plugins.Plugins`), or what stands in for one on a Ray worker."""

    def model(self, name: str) -> ModelPlugin: ...
