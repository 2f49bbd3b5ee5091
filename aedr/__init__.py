"""aedr: which latent diffusion model made this image?

The Python API mirrors the command line::

    import aedr
    model = aedr.get_model("zoo-kl-a")
    method = aedr.get_method("aedr")
    scores = method.score(model, [aedr.load_image("img.png")])
    own_images = aedr.generate(model, 32)                   # the model's own images (PIL)
    card = aedr.calibrate(model, method, own_images)        # a CalibrationCard
    results, skipped = aedr.attribute(images, [card])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hookspecs import hookimpl
from .lazy import lazy_exports

# Every other export is imported on first use (``aedr.get_model``), so that ``import aedr`` (and with
# it the CLI's listings and every plugin's registration) does not pay for torch, scipy or pandas.
_EXPORTS = {
    "Autoencoder": "autoencoder", "DiffusersAutoencoder": "autoencoder", "Posterior": "autoencoder",
    "SizePolicy": "autoencoder",
    "ImageSet": "datasets",
    "choose_alpha": "calibration", "kde_tail_probability": "calibration", "kde_threshold": "calibration",
    "homogeneity": "glcm",
    "ImageLoadError": "images", "LoadedImage": "images", "load_image": "images",
    "CostHint": "methods.base", "Method": "methods.base", "MethodOptions": "methods.base",
    "MethodOptionsError": "methods.base", "ScoreContext": "methods.base", "build_method": "methods.base",
    "CalibrationSource": "models", "ModelPlugin": "models", "generate": "generation",
    "get_method": "plugins", "get_model": "plugins", "get_perturbation": "plugins", "get_plugins": "plugins",
    "load_plugins": "plugins",
    "Perturbation": "perturbations", "PerturbationError": "perturbations",
    "DuplicateNameError": "registry", "UnknownNameError": "registry",
    "CalibrationCard": "card", "calibrate": "card",
    "Attribution": "attribution", "Verdict": "attribution", "attribute": "attribution",
    "ScoreTable": "scoring", "score_files": "scoring", "score_images": "scoring",
    "Availability": "weights", "WeightsUnavailableError": "weights",
}

if TYPE_CHECKING:
    from .attribution import Attribution, Verdict, attribute
    from .autoencoder import Autoencoder, DiffusersAutoencoder, Posterior, SizePolicy
    from .calibration import choose_alpha, kde_tail_probability, kde_threshold
    from .card import CalibrationCard, calibrate
    from .datasets import ImageSet
    from .generation import generate
    from .glcm import homogeneity
    from .images import ImageLoadError, LoadedImage, load_image
    from .methods.base import CostHint, Method, MethodOptions, MethodOptionsError, ScoreContext, build_method
    from .models import CalibrationSource, ModelPlugin
    from .perturbations import Perturbation, PerturbationError
    from .plugins import get_method, get_model, get_perturbation, get_plugins, load_plugins
    from .registry import DuplicateNameError, UnknownNameError
    from .scoring import ScoreTable, score_files, score_images
    from .weights import Availability, WeightsUnavailableError


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__version__ = "0.1.0"

__all__ = [
    "Attribution",
    "CalibrationCard",
    "ScoreTable",
    "Verdict",
    "attribute",
    "calibrate",
    "generate",
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
    "MethodOptionsError",
    "ModelPlugin",
    "Perturbation",
    "PerturbationError",
    "Posterior",
    "ScoreContext",
    "SizePolicy",
    "UnknownNameError",
    "WeightsUnavailableError",
    "build_method",
    "choose_alpha",
    "get_method",
    "get_model",
    "get_perturbation",
    "get_plugins",
    "hookimpl",
    "homogeneity",
    "kde_tail_probability",
    "kde_threshold",
    "load_image",
    "load_plugins",
]
