"""The eight latent diffusion models of the AEDR paper as aedr model plugins, through diffusers.

Each model's autoencoder is loaded alone (its ``vae``, ``movq`` or ``vqvae`` subfolder) from a
Hugging Face hub id or a local folder (``AEDR_MODEL_<KEY>``, resolved by :mod:`aedr.weights`); its
generator is the model's text-to-image pipeline with the original implementation's settings.
"""

from typing import TYPE_CHECKING

from aedr.lazy import lazy_exports
from aedr.weights import WeightSource, WeightsUnavailableError, env_var_for  # the core's (aedr.weights)

if TYPE_CHECKING:
    from .model import DiffusersModel
    from .prompts import Prompt, parse_prompts, read_prompt_file, write_prompt_file
    from .specs import PAPER_MODELS, SPECS, ModelSpec

_EXPORTS = {
    "DiffusersModel": "model",
    **dict.fromkeys(("Prompt", "parse_prompts", "read_prompt_file", "write_prompt_file"), "prompts"),
    **dict.fromkeys(("PAPER_MODELS", "SPECS", "ModelSpec"), "specs"),
}

__all__ = [
    "PAPER_MODELS",
    "SPECS",
    "DiffusersModel",
    "ModelSpec",
    "Prompt",
    "WeightSource",
    "WeightsUnavailableError",
    "env_var_for",
    "parse_prompts",
    "read_prompt_file",
    "write_prompt_file",
]


# Exports are imported on first use: the plugin's hooks module (imported by every ``aedr`` command)
# must not pay for torch.
__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

