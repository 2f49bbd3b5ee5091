"""Calibration cards: the saved, shareable result of calibrating a method on a model's own images.

A card holds everything needed to reproduce and apply a decision: model, method and its options,
alpha (and how it was chosen), threshold, the calibration scores themselves (for tail
probabilities), a score summary, where the images came from, package versions and the date.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .calibration import DEFAULT_ALPHA, belongs, choose_alpha, kde_tail_probability, kde_threshold
from .images import LoadedImage, PathLike
from .methods.base import Method
from .models import ModelPlugin
from .reconstruction import ReconstructionCache

CARD_FORMAT = "aedr-calibration-card/1"
SCORE_DIRECTION = "lower score = belonging; belongs iff score < threshold"
VERSIONED_PACKAGES = ("aedr", "torch", "diffusers", "numpy", "scipy", "scikit-image", "pillow")


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


@dataclass
class CalibrationCard:
    model: str
    method: str
    method_options: dict[str, Any]
    options_hash: str
    alpha: float
    alpha_selection: str  # "fixed" or "auto (max accuracy on N non-belonging estimation images)"
    threshold: float
    n_images: int
    scores: list[float]
    summary: dict[str, float]
    source: str
    estimation_accuracy: float | None = None
    versions: dict[str, str] = field(default_factory=package_versions)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    score_direction: str = SCORE_DIRECTION
    format: str = CARD_FORMAT

    # -- decisions ----------------------------------------------------------------------------
    def belongs(self, scores: Sequence[float] | float) -> np.ndarray:
        return belongs(np.atleast_1d(scores), self.threshold)

    def tail_probability(self, scores: Sequence[float] | float) -> np.ndarray:
        """P(S >= s) under the KDE of the card's calibration scores (comparable across cards)."""
        return kde_tail_probability(self.scores, scores)

    def build_method(self, plugins=None, **runtime: Any) -> Method:
        """The method with the card's options; ``runtime`` may change device, dtype or batch size only."""
        from .plugins import get_plugins

        plugins = plugins or get_plugins()
        not_runtime = set(runtime) - {"device", "batch_size", "dtype"}
        if not_runtime:
            raise ValueError(f"only device, dtype and batch_size may differ from the card, not {sorted(not_runtime)}")
        cls = plugins.methods.get(self.method)
        known = {f.name for f in dataclasses.fields(cls.Options)}
        options = {k: v for k, v in self.method_options.items() if k in known}
        method = cls(**{**options, **runtime})
        if method.options_hash() != self.options_hash:
            raise ValueError(
                f"card for {self.method!r} was made with options {self.options_hash} but the installed method "
                f"gives {method.options_hash()}; recalibrate with this version"
            )
        return method

    # -- files ----------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def save(self, path: PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: PathLike) -> "CalibrationCard":
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: not a readable calibration card ({exc})") from exc
        if data.get("format") != CARD_FORMAT:
            raise ValueError(f"{p}: not an aedr calibration card (format {data.get('format')!r})")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def calibrate(
    model: ModelPlugin,
    method: Method,
    images: Sequence[LoadedImage],
    *,
    alpha: float | str = DEFAULT_ALPHA,
    non_belonging: Sequence[LoadedImage] = (),
    source: str = "",
    progress=None,
) -> CalibrationCard:
    """Score the model's own images and fit the threshold.

    ``alpha="auto"`` picks the alpha that maximises accuracy on an estimation split made of
    ``images`` (belonging) and ``non_belonging`` images, as the paper's Table 7 does; the threshold
    is then fitted on all of ``images`` with that alpha.
    """
    cache = ReconstructionCache()
    scores = method.score(model, images, cache=cache, progress=progress)
    finite = scores[np.isfinite(scores)]
    if finite.size < 2:
        raise ValueError(f"calibration needs at least 2 scorable images, got {finite.size}")
    accuracy = None
    if alpha == "auto":
        if not non_belonging:
            raise ValueError("alpha='auto' needs non-belonging estimation images (e.g. real photographs)")
        nb = method.score(model, non_belonging, progress=progress)
        choice = choose_alpha(finite, nb[np.isfinite(nb)])
        alpha_value, accuracy = choice.alpha, choice.accuracy
        selection = f"auto (max accuracy on {len(finite)} belonging + {int(np.isfinite(nb).sum())} non-belonging)"
    else:
        alpha_value, selection = float(alpha), "fixed"
    return CalibrationCard(
        model=model.name,
        method=method.name,
        method_options=method.options_dict(),
        options_hash=method.options_hash(),
        alpha=alpha_value,
        alpha_selection=selection,
        threshold=kde_threshold(finite, alpha_value),
        n_images=int(finite.size),
        scores=[float(s) for s in finite],
        summary=summarize(finite),
        source=source,
        estimation_accuracy=accuracy,
    )
