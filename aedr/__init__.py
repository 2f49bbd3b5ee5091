"""aedr: which latent diffusion model made this image?

The Python API mirrors the command line::

    import aedr
    model = aedr.get_model("zoo-kl-a")
    method = aedr.get_method("aedr")
    scores = method.score(model, [aedr.load_image("img.png")])
    card = aedr.calibrate(model, method, own_images)        # a CalibrationCard
    results, skipped = aedr.attribute(images, [card])
"""

from __future__ import annotations

from .autoencoder import Autoencoder, DiffusersAutoencoder, Posterior, SizePolicy
from .datasets import ImageSet
from .calibration import choose_alpha, kde_tail_probability, kde_threshold
from .glcm import homogeneity
from .hookspecs import hookimpl
from .images import ImageLoadError, LoadedImage, load_image
from .methods.base import CostHint, Method, MethodOptions, ScoreContext
from .models import Availability, CalibrationSource, ModelPlugin
from .plugins import get_method, get_model, get_plugins, load_plugins
from .registry import DuplicateNameError, UnknownNameError
from .card import CalibrationCard, calibrate
from .attribution import Attribution, Verdict, attribute
from .scoring import ScoreTable, score_files, score_images

__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "CalibrationCard",
    "ScoreTable",
    "Verdict",
    "attribute",
    "calibrate",
    "score_files",
    "score_images",
    "Autoencoder",
    "Availability",
    "CalibrationSource",
    "CostHint",
    "DiffusersAutoencoder",
    "DuplicateNameError",
    "ImageLoadError",
    "ImageSet",
    "LoadedImage",
    "Method",
    "MethodOptions",
    "ModelPlugin",
    "Posterior",
    "ScoreContext",
    "SizePolicy",
    "UnknownNameError",
    "choose_alpha",
    "get_method",
    "get_model",
    "get_plugins",
    "hookimpl",
    "homogeneity",
    "kde_tail_probability",
    "kde_threshold",
    "load_image",
    "load_plugins",
]
