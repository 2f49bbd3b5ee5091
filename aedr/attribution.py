"""Attribution: apply one or more calibration cards to images and name the model(s) that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .card import CalibrationCard, CardError
from .images import LoadedImage
from .methods.base import Method
from .models import ModelPlugin
from .plugins import Plugins, get_plugins
from .reconstruction import ReconstructionCache
from .registry import RegistryError
from .scoring import Skip, usable_for
from .weights import WeightsUnavailableError


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


@dataclass
class PreparedCard:
    """A card checked against what is installed: its model, its method built with its options, and
    the model's autoencoder loaded."""

    card: CalibrationCard
    model: ModelPlugin
    method: Method


def prepare_cards(
    cards: Sequence[CalibrationCard | PreparedCard], *, plugins: Plugins | None = None, device: str | None = None
) -> list[PreparedCard]:
    """Check every card before any image is scored: its model and method are installed, its options
    are valid and give its hash, the device exists and the model's weights load. The first bad card
    raises :class:`~aedr.card.CardError` naming it (its file when loaded from one)."""
    if not cards:
        raise ValueError("attribution needs at least one calibration card")
    plugins = plugins or get_plugins()
    prepared = []
    for card in cards:
        if isinstance(card, PreparedCard):
            prepared.append(card)
            continue
        try:
            model = plugins.model(card.model)
        except RegistryError as exc:
            raise CardError(f"{card.where}: {exc}") from None
        method = card.build_method(plugins, **({"device": device} if device else {}))
        try:
            method.autoencoder(model)  # loaded once and kept: weight problems show before any scoring
        except WeightsUnavailableError as exc:
            raise CardError(f"{card.where}: {exc}") from None
        prepared.append(PreparedCard(card, model, method))
    return prepared


def attribute(
    images: Sequence[LoadedImage],
    cards: Sequence[CalibrationCard | PreparedCard],
    *,
    plugins: Plugins | None = None,
    device: str | None = None,
    progress=None,
) -> tuple[list[Attribution], list[Skip]]:
    """Score every image under every card's model and method; unusable images become skips.

    Every card is checked (:func:`prepare_cards`) before the first image is scored, so a bad card
    never costs the work done for the others."""
    prepared = prepare_cards(cards, plugins=plugins, device=device)
    results = {im.id: Attribution(im.id) for im in images}
    skipped: list[Skip] = []
    caches: dict[str, ReconstructionCache] = {}
    for p in prepared:
        card, model, method = p.card, p.model, p.method
        ok, bad = usable_for(model, method, images)
        for s in bad:
            results[s.id].errors.append(f"{card.model}: {s.error}")
        cache = caches.setdefault(card.model, ReconstructionCache())
        scores = method.score(model, ok, cache=cache, progress=progress)
        tails = card.tail_probability(scores)  # NaN where the score is not finite
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
