"""The TAESD family of tiny autoencoders as aedr model plugins (no generators)."""

from typing import TYPE_CHECKING

from aedr.lazy import lazy_exports

if TYPE_CHECKING:
    from .models import TINY_MODELS, TAEF2Model, TinyDiffusersModel, TinySpec, default_taef2_dir
    from .tiny_ae import TAEF2_WEIGHTS, TinyAEWeights, TinyAutoencoder, decoder, encoder

_EXPORTS = {
    **dict.fromkeys(("TINY_MODELS", "TAEF2Model", "TinyDiffusersModel", "TinySpec", "default_taef2_dir"), "models"),
    **dict.fromkeys(("TAEF2_WEIGHTS", "TinyAEWeights", "TinyAutoencoder", "decoder", "encoder"), "tiny_ae"),
}

__all__ = [
    "TAEF2_WEIGHTS",
    "TINY_MODELS",
    "TAEF2Model",
    "TinyAEWeights",
    "TinyAutoencoder",
    "TinyDiffusersModel",
    "TinySpec",
    "decoder",
    "default_taef2_dir",
    "encoder",
]


# Exports are imported on first use: the plugin's hooks module (imported by every ``aedr`` command)
# must not pay for torch.
__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

