"""Calibration cards: the saved, shareable result of calibrating a method on a model's own images.

A card holds everything needed to reproduce and apply a decision: model, method and its options,
alpha (and how it was chosen), threshold, the calibration scores themselves (for tail
probabilities), a score summary, where the images came from, package versions and the date.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import platform
from dataclasses import field
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Callable, ClassVar, Literal, Mapping, Sequence

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from .calibration import DEFAULT_ALPHA, belongs, choose_alpha, finite_scores, kde_tail_probability, kde_threshold
from .domain import CalibrationDomain, describe_images
from .images import ImageInput, LoadedImage, PathLike, as_loaded_image, image_inputs
from .methods.base import RUNTIME_OPTIONS, Method, MethodOptionsError, build_method
from .models import ModelPlugin
from .progress import api_progress
from .reconstruction import ReconstructionCache

CARD_FORMAT = "aedr-calibration-card/3"
# Why older formats cannot be checked: format 1 hashed the method's options without the model (a
# card's model could be renamed unnoticed), format 2 did not record the model's weights (a card
# calibrated on other weights of the model would be applied unnoticed).
OLD_FORMATS = {
    "aedr-calibration-card/1": "its hash does not cover the model",
    "aedr-calibration-card/2": "it does not record which weights of the model it was calibrated with",
}
SCORE_DIRECTION = "lower score = belonging; belongs iff score < threshold"
VERSIONED_PACKAGES = ("aedr", "torch", "diffusers", "numpy", "scipy", "scikit-image", "pillow")
# Options a card does not carry over to where it is applied: where and in what batches it runs.
NOT_CARRIED = ("device", "batch_size")


class CardError(ValueError):
    """A card that cannot be used: unreadable, invalid, edited after calibration, or for a model or
    method not installed. The message names the card (its file when it was loaded from one)."""


def package_versions(names: Sequence[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def summarize(scores: Sequence[float]) -> dict[str, float]:
    s = np.asarray(scores, dtype=np.float64)
    q = np.quantile(s, [0.05, 0.5, 0.95])
    return {
        "min": float(s.min()), "p05": float(q[0]), "median": float(q[1]), "p95": float(q[2]),
        "max": float(s.max()), "mean": float(s.mean()), "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
    }


def card_hash(model: str, method: str, options: Mapping[str, Any], weights: str) -> str:
    """The hash a card carries: the model's name and weights fingerprint, the method's name and every
    option that changes a score (not device or batch size), so that none can be changed in the file
    unnoticed."""
    scored = {k: v for k, v in options.items() if k not in RUNTIME_OPTIONS}
    blob = json.dumps({"model": model, "weights": weights, "method": method, "options": scored}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


Finite = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]


@dataclass(config=ConfigDict(strict=True))
class CalibrationCard:
    """A calibration card, validated field by field whenever one is made or loaded (strict types:
    no text for numbers, no NaN or infinity, at least two distinct calibration scores, and a hash
    that matches the card's model, method and options)."""

    model: Name
    # the model's autoencoder fingerprint when calibrated (aedr.ModelPlugin.autoencoder_fingerprint)
    weights: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    method: Name
    method_options: dict[str, Any]
    options_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{12}$")]
    alpha: Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]
    alpha_selection: str  # "fixed" or "auto (max accuracy on N non-belonging estimation images)"
    threshold: Finite
    n_images: Annotated[int, Field(ge=2)]
    scores: Annotated[list[Finite], Field(min_length=2)]
    summary: dict[str, Finite]
    source: str
    estimation_accuracy: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    score_direction: Literal[SCORE_DIRECTION] = SCORE_DIRECTION  # type: ignore[valid-type]
    format: Literal[CARD_FORMAT] = CARD_FORMAT  # type: ignore[valid-type]
    # The calibration images' sizes and formats (aedr.domain); absent in older cards: unknown, nothing marked.
    domain: CalibrationDomain | None = None

    @field_validator("domain", mode="before")
    @classmethod
    def _domain_from_json(cls, value: Any) -> Any:
        return CalibrationDomain(**value) if isinstance(value, dict) else value

    # The file the card was loaded from (set by :meth:`load`), for messages; not part of the card.
    origin: ClassVar[str | None] = None

    @model_validator(mode="after")
    def _consistent(self) -> "CalibrationCard":
        if len(self.scores) != self.n_images:
            raise ValueError(f"n_images is {self.n_images} but the card holds {len(self.scores)} scores")
        if min(self.scores) == max(self.scores):
            raise ValueError("scores are all equal; no threshold or tail probability can be fitted")
        expected = card_hash(self.model, self.method, self.method_options, self.weights)
        if expected != self.options_hash:
            raise ValueError(
                f"options_hash {self.options_hash} does not match the card's model {self.model!r}, weights, method "
                f"{self.method!r} and options (they give {expected}): the card was changed after calibration; "
                "re-calibrate with `aedr calibrate`"
            )
        return self

    @property
    def where(self) -> str:
        """The card's file, or what the card is for when it was not loaded from a file."""
        return f"card {self.origin}" if self.origin else f"card for {self.model!r} ({self.method})"

    def check_weights(self, model: ModelPlugin) -> None:
        """Raise :class:`CardError` unless ``model``'s autoencoder is the one the card was calibrated
        with (same fingerprint): a threshold fitted on other weights decides nothing."""
        actual = model.autoencoder_fingerprint()
        if actual != self.weights:
            raise CardError(
                f"{self.where}: calibrated with other weights of {self.model!r} (fingerprint {self.weights}; the installed "
                f"weights give {actual}); re-calibrate: aedr calibrate --model {self.model} --out NEW_CARD"
            )

    # -- decisions ----------------------------------------------------------------------------
    def belongs(self, scores: Sequence[float] | float) -> np.ndarray:
        return belongs(np.atleast_1d(scores), self.threshold)

    def band(self, fraction: float) -> tuple[float, float]:
        """(low, high): the threshold plus and minus ``fraction`` times the interquartile range of the
        card's calibration scores, where a verdict is too close to call (``aedr attribute --stability``)."""
        q1, q3 = np.quantile(np.asarray(self.scores, dtype=np.float64), [0.25, 0.75])
        half = float(fraction) * float(q3 - q1)
        return self.threshold - half, self.threshold + half

    def tail_probability(self, scores: Sequence[float] | float) -> np.ndarray:
        """P(S >= s) under the KDE of the card's calibration scores (comparable across cards)."""
        return kde_tail_probability(self.scores, scores)

    def build_method(self, plugins=None, **runtime: Any) -> Method:
        """The method with the card's options; ``runtime`` may change device, dtype or batch size only.
        Device and batch size default to the method's defaults, not to where the card was made. The
        method looks models up in ``plugins`` (default: the process's set).

        Raises :class:`CardError`, naming the card, if the method is not installed, the card's options
        are invalid for it, or the installed method would score differently (a different version).
        """
        from .plugins import get_plugins
        from .registry import RegistryError

        plugins = plugins or get_plugins()
        not_runtime = set(runtime) - {"device", "batch_size", "dtype"}
        if not_runtime:
            raise ValueError(f"only device, dtype and batch_size may differ from the card, not {sorted(not_runtime)}")
        try:
            cls = plugins.methods.get(self.method)
        except RegistryError as exc:
            raise CardError(f"{self.where}: {exc}") from None
        known = set(cls.Options.names())
        options = {k: v for k, v in self.method_options.items() if k in known and k not in NOT_CARRIED}
        try:
            method = build_method(cls, options, **runtime)
        except MethodOptionsError as exc:  # names the method
            raise CardError(f"{self.where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise CardError(f"{self.where}: method {self.method!r}: {exc}") from None
        method.plugins = plugins
        if card_hash(self.model, method.name, method.options_dict(), self.weights) != self.options_hash:
            changed = sorted(
                k for k in set(self.method_options) | set(method.options_dict())
                if k not in RUNTIME_OPTIONS and self.method_options.get(k, "<absent>") != method.options_dict().get(k, "<absent>")
            )
            raise CardError(
                f"{self.where}: the installed {self.method!r} gives other options than the card was made with "
                f"({', '.join(changed) or 'their hash differs'}); re-calibrate with this version"
            )
        return method

    # -- files ----------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, allow_nan=False)

    def save(self, path: PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: PathLike) -> "CalibrationCard":
        """Read and fully validate a card; :class:`CardError` names the file and the field at fault."""
        p = Path(path)
        try:
            data = json.loads(p.read_bytes())
        except OSError as exc:
            raise CardError(f"card {p}: cannot be read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CardError(f"card {p}: not a calibration card: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise CardError(f"card {p}: not a calibration card: a JSON object is needed, the file holds {_json_kind(data)}")
        fmt = data.get("format")
        if fmt in OLD_FORMATS:
            model = data.get("model") if isinstance(data.get("model"), str) else "MODEL"
            raise CardError(
                f"card {p}: format {fmt} is from an older aedr and {OLD_FORMATS[fmt]}, so the card "
                f"cannot be checked; re-calibrate: aedr calibrate --model {model} --out {p}"
            )
        if fmt != CARD_FORMAT:
            raise CardError(f"card {p}: not an aedr calibration card (format {fmt!r}, expected {CARD_FORMAT!r})")
        try:
            card = cls(**{k: v for k, v in data.items() if isinstance(k, str)})
        except ValidationError as exc:
            raise CardError(f"card {p}: invalid: {describe_errors(exc)}") from None
        card.origin = str(p)
        return card


def _json_kind(value: Any) -> str:
    return {list: "a list", type(None): "null", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """pydantic's errors as "field: what is wrong (got value)", joined; the first ``limit`` of them."""
    parts = []
    for e in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            parts.append(f"{loc}: required field missing")
            continue
        got = e.get("input")
        shown = f" (got {_shown(got)})" if loc and not isinstance(got, (dict, list)) else ""
        parts.append(f"{loc + ': ' if loc else ''}{msg}{shown}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _shown(value: Any) -> str:
    """A value as it reads in the JSON file (NaN, Infinity, null, "text")."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def calibrate(
    model: ModelPlugin,
    method: Method,
    images: "Sequence[ImageInput]",
    *,
    alpha: float | str = DEFAULT_ALPHA,
    non_belonging: "Sequence[ImageInput]" = (),
    source: str = "",
    progress: "bool | Callable[[int], None] | None" = None,
) -> CalibrationCard:
    """Score the model's own images and fit the threshold. Images as :meth:`aedr.Method.score` takes
    them (loaded images, PIL images, arrays, paths: a file that cannot be read is an
    :class:`~aedr.ImageLoadError`).

    ``progress``: a callable given each count of images scored, ``True``/``False`` to show a
    progress bar on standard error or not, or ``None``: shown where a person watches (a terminal, a
    notebook; see :mod:`aedr.progress`).

    ``alpha="auto"`` picks the alpha that maximises accuracy on an estimation split made of
    ``images`` (belonging) and ``non_belonging`` images, as the paper's Table 7 does; the threshold
    is then fitted on all of ``images`` with that alpha.
    """
    images = [as_loaded_image(im, i) for i, im in enumerate(image_inputs(images))]
    non_belonging = [as_loaded_image(im, i) for i, im in enumerate(image_inputs(non_belonging))]
    with api_progress(progress, f"calibrating {method.label} on {model.name}", len(images) + len(non_belonging)) as advance:
        return _calibrated(model, method, images, alpha, non_belonging, source, advance)


def _calibrated(model: ModelPlugin, method: Method, images: Sequence[LoadedImage], alpha: float | str,
                non_belonging: Sequence[LoadedImage], source: str, progress) -> CalibrationCard:
    cache = ReconstructionCache()
    scores = method.score(model, images, cache=cache, progress=progress)
    finite, _ = finite_scores(scores)
    if finite.size < 2:
        raise ValueError(f"calibration needs at least 2 scorable images, got {finite.size}")
    accuracy = None
    if alpha == "auto":
        if not non_belonging:
            raise ValueError("alpha='auto' needs non-belonging estimation images (e.g. real photographs)")
        nb, _ = finite_scores(method.score(model, non_belonging, progress=progress))
        choice = choose_alpha(finite, nb)
        alpha_value, accuracy = choice.alpha, choice.accuracy
        selection = f"auto (max accuracy on {len(finite)} belonging + {nb.size} non-belonging)"
    else:
        alpha_value, selection = float(alpha), "fixed"
    weights = model.autoencoder_fingerprint()
    return CalibrationCard(
        model=model.name,
        weights=weights,
        method=method.name,
        method_options=method.options_dict(),
        options_hash=card_hash(model.name, method.name, method.options_dict(), weights),
        alpha=alpha_value,
        alpha_selection=selection,
        threshold=kde_threshold(finite, alpha_value),
        n_images=int(finite.size),
        scores=[float(s) for s in finite],
        summary=summarize(finite),
        source=source,
        estimation_accuracy=accuracy,
        domain=describe_images(images),
    )
