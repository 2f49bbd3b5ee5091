"""The TAESD family of tiny autoencoders as aedr model plugins (no generators)."""

from .models import TINY_MODELS, TAEF2Model, TinyDiffusersModel, TinySpec, default_taef2_dir
from .tiny_ae import TAEF2_WEIGHTS, TinyAEWeights, TinyAutoencoder, decoder, encoder

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
