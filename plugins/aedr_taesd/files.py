"""Which weight files a tiny autoencoder needs, and where torch keeps downloaded checkpoints.

Apart from :mod:`.tiny_ae` (which defines the torch modules), so that registering the models and
checking whether their weights are here (``aedr models``) needs no torch.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinyAEWeights:
    """Where a published encoder/decoder state-dict pair lives and the architecture it needs."""

    encoder_file: str
    decoder_file: str
    latent_channels: int
    pool: bool

    def paths(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder).expanduser()
        return folder / self.encoder_file, folder / self.decoder_file


TAEF2_WEIGHTS = TinyAEWeights("taef2_encoder.pth", "taef2_decoder.pth", latent_channels=32, pool=True)


def default_taef2_dir() -> Path:
    """torch's checkpoint cache (``$TORCH_HOME/hub/checkpoints``), where ``torch.hub`` puts downloads.

    ``torch.hub.get_dir()`` when torch is loaded (it may have been moved with ``torch.hub.set_dir``),
    else the same rule without importing torch: ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else
    ``~/.cache/torch``, then ``hub``."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "hub"):
        return Path(torch.hub.get_dir()) / "checkpoints"
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    home = os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))
    return Path(home) / "hub" / "checkpoints"
