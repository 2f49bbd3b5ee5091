"""The eight latent diffusion models of the AEDR paper as aedr model plugins, through diffusers.

Each model's autoencoder is loaded alone (its ``vae``, ``movq`` or ``vqvae`` subfolder) from a
Hugging Face hub id or a local folder (``AEDR_MODEL_<KEY>``); its generator is the model's
text-to-image pipeline with the original implementation's settings.
"""

from .model import DiffusersModel
from .prompts import Prompt, parse_prompts, read_prompt_file, write_prompt_file
from .specs import PAPER_MODELS, SPECS, ModelSpec
from .weights import WeightSource, WeightsUnavailableError, env_var_for

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
