"""The TAESD family of tiny autoencoders as aedr model plugins (no generators)."""

from typing import TYPE_CHECKING

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


def __getattr__(name: str):
    """Exports are imported on first use: the plugin's hooks module (imported by every ``aedr``
    command) must not pay for torch."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
