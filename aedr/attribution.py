"""Attribution: apply one or more calibration cards to images and name the model(s) that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .card import CalibrationCard
from .images import LoadedImage
from .plugins import Plugins, get_plugins
from .reconstruction import ReconstructionCache
from .scoring import Skip, usable_for


@dataclass
class Verdict:
    """One image under one card."""

    model: str
    method: str
    score: float
    threshold: float
    belongs: bool
    tail_probability: float


@dataclass
class Attribution:
    """One image under every card. ``attributed_to`` lists the models whose card accepts the image,
    most typical first (highest tail probability); empty means "none of these models"."""

    image: str
    verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def attributed_to(self) -> list[str]:
        accepted = [v for v in self.verdicts if v.belongs]
        return [v.model for v in sorted(accepted, key=lambda v: -v.tail_probability)]

    @property
    def verdict(self) -> str:
        models = self.attributed_to
        return ", ".join(models) if models else "none"


def attribute(
    images: Sequence[LoadedImage],
    cards: Sequence[CalibrationCard],
    *,
    plugins: Plugins | None = None,
    device: str | None = None,
    progress=None,
) -> tuple[list[Attribution], list[Skip]]:
    """Score every image under every card's model and method; unusable images become skips."""
    if not cards:
        raise ValueError("attribution needs at least one calibration card")
    plugins = plugins or get_plugins()
    results = {im.id: Attribution(im.id) for im in images}
    skipped: list[Skip] = []
    caches: dict[str, ReconstructionCache] = {}
    for card in cards:
        model = plugins.model(card.model)
        method = card.build_method(plugins, **({"device": device} if device else {}))
        ok, bad = usable_for(model, method, images)
        for s in bad:
            results[s.id].errors.append(f"{card.model}: {s.error}")
        cache = caches.setdefault(card.model, ReconstructionCache())
        scores = method.score(model, ok, cache=cache, progress=progress)
        tails = np.full(len(ok), np.nan)
        finite = np.isfinite(scores)
        if finite.any():
            tails[finite] = card.tail_probability(scores[finite])
        for im, s, t in zip(ok, scores, tails):
            if not np.isfinite(s):
                results[im.id].errors.append(f"{card.model}: non-finite score")
                continue
            results[im.id].verdicts.append(
                Verdict(card.model, card.method, float(s), card.threshold, bool(s < card.threshold), float(t))
            )
    out = []
    for a in results.values():
        if a.verdicts:
            out.append(a)
        else:
            skipped.append(Skip(a.image, "; ".join(a.errors) or "no card could score it"))
    return out, skipped
