"""The TAESD family as aedr model plugins: tiny distilled autoencoders, real autoencoders on their own
and fast stand-ins for the big models' VAEs (same latent space, a fraction of the cost).

TAESD, TAESDXL, TAESD3 and TAEF1 are published in diffusers format (``AutoencoderTiny``) on the
Hugging Face hub; TAEF2 (FLUX.2) is published as two PyTorch state dicts and runs on this package's
own module (:mod:`aedr_taesd.tiny_ae`). None of them has a generator: calibrate them on a folder of
images (``AEDR_IMAGES_<KEY>`` or ``aedr calibrate --images``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aedr
from aedr import Availability, CalibrationSource, ModelPlugin
from aedr.lazy import lazy_import
from aedr.weights import WeightSource, WeightsUnavailableError, configured, env_var_for, images_folder

from .files import TAEF2_WEIGHTS, TinyAEWeights, default_taef2_dir

if TYPE_CHECKING:
    import torch

    from .tiny_ae import TinyAutoencoder
else:
    torch = lazy_import("torch")

FAMILY = "tiny"
TAESD_REPO = "https://github.com/madebyollin/taesd"


@dataclass(frozen=True)
class TinySpec:
    """One tiny autoencoder: its hub id (diffusers format) and the big model(s) it stands in for."""

    key: str
    hub_id: str
    stands_in_for: str
    latent_channels: int

    @property
    def description(self) -> str:
        return f"Tiny autoencoder ({self.latent_channels} ch), stand-in for {self.stands_in_for}"


TINY_MODELS: tuple[TinySpec, ...] = (
    TinySpec("taesd", "madebyollin/taesd", "SD1.5, SD2base, SD2.1 (SD1/SD2 VAE)", 4),
    TinySpec("taesdxl", "madebyollin/taesdxl", "SDXL", 4),
    TinySpec("taesd3", "madebyollin/taesd3", "SD3 / SD3.5", 16),
    TinySpec("taef1", "madebyollin/taef1", "FLUX.1", 16),
)


class _FolderCalibration:
    """Calibration images come from ``AEDR_IMAGES_<KEY>`` (or the ``images`` argument) when set."""

    name: str
    _images: str | os.PathLike | None

    @property
    def calibration(self) -> CalibrationSource:
        folder = images_folder(self.name, self._images)
        return CalibrationSource(folder=folder) if folder is not None else CalibrationSource()


class TinyDiffusersModel(_FolderCalibration, ModelPlugin):
    """TAESD / TAESDXL / TAESD3 / TAEF1 through diffusers' ``AutoencoderTiny`` (which takes [-1, 1])."""

    family = FAMILY

    def __init__(self, spec: TinySpec, *, source: str | os.PathLike | None = None, images: str | os.PathLike | None = None):
        super().__init__()
        self.spec = spec
        self.name = spec.key
        self.description = spec.description
        self._source = source
        self._images = images

    @property
    def source(self) -> WeightSource:
        return WeightSource.resolve(self.spec.key, self.spec.hub_id, None, override=self._source)

    def availability(self) -> Availability:
        return self.source.availability()

    def load_autoencoder(self, device: torch.device, dtype: torch.dtype | None) -> aedr.DiffusersAutoencoder:
        source = self.source
        path, subfolder = source.location()
        with source.loading():
            return aedr.DiffusersAutoencoder.from_pretrained(
                path, subfolder=subfolder, model_class="AutoencoderTiny",
                torch_dtype=dtype or torch.float32, device=device,
            )


class TAEF2Model(_FolderCalibration, ModelPlugin):
    """TAEF2, the FLUX.2 tiny autoencoder (32 latent channels), from its published ``.pth`` files.

    Folder: ``folder=`` argument, else ``AEDR_MODEL_TAEF2``, else torch's checkpoint cache
    (:func:`default_taef2_dir`). The files are loaded with ``weights_only=True``.
    """

    name = "taef2"
    family = FAMILY
    description = "Tiny autoencoder (32 ch) of FLUX.2, own module; stand-in for the FLUX.2 VAE"
    weights: TinyAEWeights = TAEF2_WEIGHTS

    def __init__(self, *, folder: str | os.PathLike | None = None, images: str | os.PathLike | None = None):
        super().__init__()
        self._folder = folder
        self._images = images

    @property
    def env_var(self) -> str:
        return env_var_for(self.name)

    def folder(self) -> tuple[Path, str]:
        """The weights folder and where that choice came from (``argument``, the variable's name, or
        ``default``)."""
        found = configured(self.name, self._folder)
        if found is None:
            return default_taef2_dir(), "default"
        value, origin = found
        return Path(value).expanduser(), self.env_var if origin == "environment" else origin

    def missing(self) -> list[Path]:
        return [p for p in self.weights.paths(self.folder()[0]) if not p.is_file()]

    def availability(self) -> Availability:
        folder, origin = self.folder()
        missing = self.missing()
        if missing:
            return Availability(False, f"{', '.join(p.name for p in missing)} not in {folder} ({origin})")
        return Availability(True, f"local folder {folder}")

    def load_autoencoder(self, device: torch.device, dtype: torch.dtype | None) -> TinyAutoencoder:
        folder, origin = self.folder()
        missing = self.missing()
        if missing:
            names = " and ".join(p.name for p in missing)
            raise WeightsUnavailableError(
                f"Cannot load model 'taef2': {names} not found in {folder} ({origin}).\n"
                f"How to provide the weights:\n"
                f"  - download {self.weights.encoder_file} and {self.weights.decoder_file} from {TAESD_REPO} "
                f"(MIT licence) into {default_taef2_dir()}, or\n"
                f"  - set {self.env_var}=/path/to/folder holding both files."
            )
        from .tiny_ae import TinyAutoencoder  # the torch modules

        return TinyAutoencoder.from_files(self.weights, folder, device=device, dtype=dtype or torch.float32)
