"""Attribution: apply one or more calibration cards to images and name the model(s) that made them.

With ``stability=True`` every image is also scored under a few mild perturbations (by default
``jpeg:95``, ``resize:0.9``, ``crop:0.95``: what an image goes through when it is shared). A card is
*uncertain* about an image when the verdict of a perturbed copy differs from the clean one, when no
perturbed copy could be scored (every copy too small, say: no evidence of stability), or when the
clean score lies within the card's band around its threshold: ``|score - threshold| < band x IQR``
of the card's calibration scores (``band`` 0.1 by default; 0 turns the band off). The
final decision is ``attributed`` (some card accepts the image and no card is uncertain), ``none`` (no
card accepts it and none is uncertain) or ``uncertain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .calibration import typicality_order
from .card import CalibrationCard, CardError
from .domain import outside
from .methods.base import Method
from .models import ModelPlugin
from .plugins import Plugins, get_plugins
from .progress import api_progress
from .reconstruction import ReconstructionCache
from .registry import RegistryError
from .kernel import Perturbed, Pixels
from .scoring import Skip, load_images, score_results
from .weights import WeightsUnavailableError

if TYPE_CHECKING:
    from .images import ImageInput
    from .perturbations import Chain

# The stability check's defaults: mild, everyday perturbations, and the band's half-width as a
# fraction of the interquartile range of the card's calibration scores.
STABILITY_PERTURBATIONS = ("jpeg:95", "resize:0.9", "crop:0.95")
STABILITY_BAND = 0.1
DECISIONS = ("attributed", "none", "uncertain")


@dataclass
class PerturbedScore:
    """One perturbed copy of an image under one card."""

    perturbation: str
    score: float
    belongs: bool


@dataclass
class Stability:
    """How stable one card's verdict on one image is. ``perturbed``: the copies that could be scored
    (``errors``: why the others could not); ``agree``: how many of them get the clean verdict;
    ``band``: (low, high) around the threshold; ``in_band``: the clean score lies inside it. With no
    copy scored there is no evidence of stability: the card is uncertain (:attr:`reasons`)."""

    perturbed: list[PerturbedScore] = field(default_factory=list)
    agree: int = 0
    band: tuple[float, float] = (float("nan"), float("nan"))
    in_band: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def disagree(self) -> bool:
        """Some perturbed copy's verdict differs from the clean one."""
        return self.agree < len(self.perturbed)

    @property
    def reasons(self) -> list[str]:
        """Why the card is uncertain (empty when it is not): the clean score in the band, a copy
        that disagrees, or no copy to go on (every perturbed copy failed: no evidence of stability)."""
        out = ["the score lies in the band around the threshold"] if self.in_band else []
        if self.disagree:
            out.append(f"{len(self.perturbed) - self.agree} of {len(self.perturbed)} perturbed copies disagree")
        if not self.perturbed:
            out.append("no perturbed copy could be scored")
        return out

    @property
    def uncertain(self) -> bool:
        return bool(self.reasons)

    @property
    def agreeing(self) -> str:
        """"k/n": k of the n scored copies get the clean verdict."""
        return f"{self.agree}/{len(self.perturbed)}"


@dataclass
class Verdict:
    """One image under one card."""

    model: str
    method: str
    score: float
    threshold: float
    belongs: bool
    tail_probability: float
    stability: Stability | None = None  # with the stability check
    outside_domain: list[str] = field(default_factory=list)  # why the image lies outside the card's calibration domain (aedr.domain)

    @property
    def uncertain(self) -> bool:
        return self.stability is not None and self.stability.uncertain

    @property
    def decision(self) -> str:
        """This card's answer: "belongs", "no" or "uncertain"."""
        return "uncertain" if self.uncertain else ("belongs" if self.belongs else "no")

    @property
    def status(self) -> str:
        """"ok", or which of the verdict's numbers are not finite (strict JSON writes those as null)."""
        bad = [k for k in ("score", "threshold", "tail_probability") if not np.isfinite(getattr(self, k))]
        return "ok" if not bad else "not finite: " + ", ".join(bad)

    def stability_columns(self) -> dict:
        """The stability check's columns of this verdict's row in a table (none without the check):
        the card's own answer, the band, the agreeing copies and the score of each perturbed copy."""
        st = self.stability
        if st is None:
            return {}
        return {"card_decision": self.decision, "uncertain": self.uncertain, "in_band": st.in_band, "band_low": st.band[0],
                "band_high": st.band[1], "perturbed_agree": st.agreeing, "uncertain_reasons": "; ".join(st.reasons),
                **{f"score[{p.perturbation}]": p.score for p in st.perturbed}}

    def to_dict(self) -> dict:
        """The verdict as nested JSON-ready values (its fields, its status; with the stability check,
        the card's decision and why it is uncertain)."""
        from dataclasses import asdict

        d = asdict(self) | {"status": self.status}
        if self.stability is None:
            d.pop("stability")
        else:
            d |= {"decision": self.decision, "uncertain": self.uncertain}
            d["stability"] |= {"disagree": self.stability.disagree, "reasons": self.stability.reasons}
        return d


@dataclass
class Attribution:
    """One image under every card. ``attributed_to`` lists the models whose card accepts the image,
    each once, most typical first (highest tail probability of its cards); empty means "none of these
    models".
    ``decision``: "attributed", "none" or, when a card is uncertain (stability check), "uncertain"."""

    image: str
    verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def attributed_to(self) -> list[str]:
        """Each accepting model once (several of its cards may accept), ranked by its most typical card."""
        accepted = [v for v in self.verdicts if v.belongs and not v.uncertain]
        order = typicality_order([v.tail_probability for v in accepted])
        return _once([accepted[i].model for i in order])

    @property
    def uncertain_about(self) -> list[str]:
        """The models whose card is uncertain about the image (each once)."""
        return _once([v.model for v in self.verdicts if v.uncertain])

    @property
    def decision(self) -> str:
        if self.uncertain_about:
            return "uncertain"
        return "attributed" if self.attributed_to else "none"

    @property
    def verdict(self) -> str:
        """The accepting models (most typical first), "none", or "uncertain"."""
        if self.uncertain_about:
            return "uncertain"
        models = self.attributed_to
        return ", ".join(models) if models else "none"

    def to_rows(self, stability: bool, downscaled_from: str = "") -> list[dict]:
        """One flat row per card (a table's rows); ``stability``: the check was made (the image's
        decision and each card's stability columns are added); ``downscaled_from``: the image's size
        before ``--max-side`` ("" when it was not downscaled)."""
        return [
            {"image": self.image, "model": v.model, "method": v.method, "score": v.score, "threshold": v.threshold,
             "belongs": v.belongs, "tail_probability": v.tail_probability, "verdict": self.verdict, "status": v.status,
             "downscaled_from": downscaled_from, "outside_domain": "; ".join(v.outside_domain),
             **({"decision": self.decision} if stability else {}), **v.stability_columns()}
            for v in self.verdicts
        ]

    def to_dict(self, stability: bool, downscaled_from: str = "") -> dict:
        """The image's attribution as nested JSON-ready values, its verdicts in full (arguments as for
        :meth:`to_rows`)."""
        return {"image": self.image, "status": "ok", "attributed_to": self.attributed_to,
                **({"decision": self.decision, "uncertain_about": self.uncertain_about} if stability else {}),
                "verdicts": [v.to_dict() for v in self.verdicts], "errors": self.errors, "downscaled_from": downscaled_from}


def _once(models: list[str]) -> list[str]:
    """``models`` without repeats, each where it first appears."""
    return list(dict.fromkeys(models))


@dataclass
class PreparedCard:
    """A card checked against what is installed: its model, its method built with its options, and
    the model's autoencoder loaded."""

    card: CalibrationCard
    model: ModelPlugin
    method: Method


def shared_autoencoders(cards: Sequence[CalibrationCard | PreparedCard]) -> list[list[str]]:
    """The groups of two or more candidate models whose cards were calibrated on one and the same
    autoencoder (equal fingerprints: a fine-tuned checkpoint that kept its base model's VAE, say).
    No method that reads an image through the autoencoder can tell such models' images apart, so a
    verdict for one of them holds for the others; ``aedr attribute`` warns about each group."""
    models: dict[str, list[str]] = {}
    for c in cards:
        card = c.card if isinstance(c, PreparedCard) else c
        names = models.setdefault(card.weights, [])
        if card.model not in names:
            names.append(card.model)
    return [names for names in models.values() if len(names) > 1]


def prepare_cards(
    cards: Sequence[CalibrationCard | PreparedCard], *, plugins: Plugins | None = None, device: str | None = None
) -> list[PreparedCard]:
    """Check every card before any image is scored: its model and method are installed, its options
    are valid and give its hash, the device exists and the model's weights load and are the ones the card was calibrated with. The first bad card
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
            card.check_weights(model)
        except WeightsUnavailableError as exc:
            raise CardError(f"{card.where}: {exc}") from None
        prepared.append(PreparedCard(card, model, method))
    return prepared


def attribute(
    images: "Sequence[ImageInput] | ImageInput",
    cards: Sequence[CalibrationCard | PreparedCard],
    *,
    plugins: Plugins | None = None,
    device: str | None = None,
    progress: "bool | Callable[[int], None] | None" = None,
    stability: bool = False,
    stability_perturbations: "Sequence[str | Chain] | str | None" = None,
    band: float = STABILITY_BAND,
    seed: int = 0,
) -> tuple[list[Attribution], list[Skip]]:
    """Score every image under every card's model and method; unusable images become skips.
    ``images`` as :meth:`aedr.Method.score` takes them (PIL images, paths, arrays, loaded images).

    Every card is checked (:func:`prepare_cards`) before the first image is scored, so a bad card
    never costs the work done for the others.

    ``stability``: also score each image's perturbed copies (``stability_perturbations``: specs or
    parsed perturbations; default :data:`STABILITY_PERTURBATIONS`), seeded by ``seed`` and the image's
    content, and mark a card uncertain as the module's docstring says; ``band``: the half-width of
    the band around each threshold, as a fraction of the IQR of the card's calibration scores."""
    if band < 0 or band != band:
        raise ValueError(f"band must be a fraction >= 0 of the calibration scores' interquartile range, got {band}")
    prepared = prepare_cards(cards, plugins=plugins, device=device)
    chains: list[Chain] = []
    if stability:
        chains = stability_chains(stability_perturbations, plugins)
    loaded = load_images(images)
    images = loaded.images
    results = {im.id: Attribution(im.id) for im in images}
    skipped: list[Skip] = loaded.skipped
    caches: dict[str, ReconstructionCache] = {}
    with api_progress(progress, "attributing", len(images) * len(prepared) * (1 + len(chains))) as advance:
        for p in prepared:
            cache = caches.setdefault(p.card.model, ReconstructionCache())
            _apply_card(p, images, results, chains, seed, band if stability else None, cache, advance)
    out = []
    for a in results.values():
        if a.verdicts:
            out.append(a)
        else:
            skipped.append(Skip(a.image, "; ".join(a.errors) or "no card could score it"))
    return out, skipped


def _apply_card(p: "PreparedCard", images: list, results: dict[str, Attribution], chains: list, seed: int,
                band: float | None, cache: ReconstructionCache, progress) -> None:
    """One card's verdict on each image (or why it has none) added to ``results``; ``band``: the
    stability check's band (None: no check)."""
    card, model, method = p.card, p.model, p.method
    scored = score_results(model, method, [Pixels(im) for im in images], cache=cache, progress=progress)
    for r in (r for r in scored if not r.ok):
        results[r.id].errors.append(f"{card.model}: {r.error}")
    ok = [(im, r.score) for im, r in zip(images, scored) if r.ok]
    tails = card.tail_probability([s for _, s in ok])
    perturbed = _perturbed_scores(model, method, [im for im, _ in ok], chains, seed, cache, progress) if chains else {}
    low, high = card.band(band) if band is not None else (float("nan"), float("nan"))
    for (im, s), t in zip(ok, tails):
        belongs = bool(s < card.threshold)
        check = None
        if band is not None:
            copies, errors = perturbed.get(im.id, ([], []))
            copies = [PerturbedScore(pid, float(x), bool(x < card.threshold)) for pid, x in copies]
            check = Stability(copies, sum(c.belongs == belongs for c in copies), (low, high), bool(low < s < high), list(errors))
        results[im.id].verdicts.append(
            Verdict(card.model, card.method, float(s), card.threshold, belongs, float(t), check, outside(card.domain, im))
        )


def stability_chains(specs: "Sequence[str | Chain] | str | None", plugins: Plugins | None = None) -> list["Chain"]:
    """The stability check's perturbations: ``specs`` parsed (default :data:`STABILITY_PERTURBATIONS`)."""
    from .perturbations import Chain

    plugins = plugins or get_plugins()
    specs = STABILITY_PERTURBATIONS if specs is None else ([specs] if isinstance(specs, str) else list(specs))
    chains: dict[str, Chain] = {}
    for spec in specs:
        for chain in [spec] if isinstance(spec, Chain) else plugins.perturbations_for(spec):
            chains.setdefault(chain.id, chain)
    if not chains:
        raise ValueError("the stability check needs at least one perturbation")
    return list(chains.values())


def _perturbed_scores(model, method, images, chains, seed: int, cache, progress) -> dict[str, tuple[list[tuple[str, float]], list[str]]]:
    """image id -> ([(perturbation, score)] of the copies that could be scored, [why the others could not])."""
    out: dict[str, tuple[list[tuple[str, float]], list[str]]] = {im.id: ([], []) for im in images}
    for chain in chains:  # a copy over the image's pixel budget is never made: its result says why
        copies = score_results(model, method, [Perturbed(Pixels(im), chain, seed) for im in images], cache=cache, progress=progress)
        for im, r in zip(images, copies):
            if r.ok:
                out[im.id][0].append((chain.id, r.score))
            else:
                out[im.id][1].append(f"{chain.id}: {r.error}")
    return out
