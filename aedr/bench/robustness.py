"""The perturbation axis of a benchmark: how each method's figures change when every source's
evaluation images are perturbed (re-compressed, cropped, blurred, noised).

For every perturbation P of the run: the pairs (T, S) of the clean protocol, on the P-perturbed
evaluation images of T and of S, at the clean threshold tau_T (or, with ``calibrate_perturbed``, at
tau_T^P fitted on T's P-perturbed calibration images); per method the means over model pairs and
over real pairs; and intervals from one joint bootstrap per perturbation
(``aedr.bench.stats.bootstrap_bench`` on P's evaluation scores together with the calibration scores
P uses). Each bootstrap identifies an image by its *clean* content hash, so with the run's seed it
draws exactly the resamples of the clean bootstrap: intervals across perturbations (and with the
clean figures) are paired, and a method's **robust AUC**, the mean over the perturbations of its
mean pair AUC, gets an interval from the replicates averaged over the perturbations.

Scores: lower = belonging, as everywhere in the bench.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from .metrics import Evaluation, Metric, evaluate, pairs_columns
from .schema import ROBUST_METRICS, Scope, ScopedMetric, robust_name
from .tables import SHORT_DIRECTION, MethodSummary, Table, attach_intervals, summarize

if TYPE_CHECKING:
    from .plan import Plan
    from .stats import BenchBootstrap

SCOPES = (Scope.PAIR, Scope.REAL)
CURVE_METRICS = ROBUST_METRICS


@dataclass
class PerturbationResult:
    """One perturbation's evaluation: thresholds used, pairs (with intervals), per-method means."""

    info: dict[str, Any]  # aedr.perturbations.Chain.describe(): id, kind, level, parameter, ...
    evaluation: Evaluation
    summaries: list[MethodSummary]
    bootstrap: "BenchBootstrap | None" = None

    @property
    def id(self) -> str:
        return str(self.info["id"])

    def summary(self, method: str, options_hash: str) -> MethodSummary | None:
        return next((s for s in self.summaries if (s.method, s.options_hash) == (method, options_hash)), None)


@dataclass
class Robustness:
    """Every perturbation's result, in the run's order, and how thresholds were chosen."""

    results: list[PerturbationResult]
    calibrate_perturbed: bool = False
    confidence: float = 0.95
    robust: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = field(default_factory=dict)

    @property
    def perturbations(self) -> list[dict[str, Any]]:
        return [r.info for r in self.results]

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]

    def pairs_frame(self, metrics: Sequence[Metric]) -> pd.DataFrame:
        frames = [r.evaluation.pairs_frame() for r in self.results]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=pairs_columns(metrics))

    def thresholds(self) -> list:
        """The thresholds fitted on perturbed calibration images (none unless calibrate_perturbed)."""
        return [t for r in self.results for t in r.evaluation.thresholds if t.perturbation] if self.calibrate_perturbed else []

    def threshold_rule(self) -> str:
        if self.calibrate_perturbed:
            return "τ_T^P fitted on T's calibration images under the same perturbation"
        return "the clean τ_T (fitted on T's clean calibration images)"


def bootstrap_frame(scores: pd.DataFrame, perturbation: str, calibrate_perturbed: bool) -> pd.DataFrame:
    """The rows one perturbation's bootstrap resamples: its evaluation rows (and its calibration rows
    with ``calibrate_perturbed``), else the clean calibration rows; every image named by its clean
    content hash, so that the draws are those of the clean bootstrap."""
    pert = scores["perturbation"].fillna("")
    if calibrate_perturbed:
        keep = pert == perturbation
    else:
        keep = ((pert == perturbation) & (scores["split"] == "eval")) | ((pert == "") & (scores["split"] == "cal"))
    frame = scores[keep].copy()
    frame["image_hash"] = frame["clean_hash"]
    return frame


def evaluate_robustness(
    scores: pd.DataFrame, plan: "Plan", clean: Evaluation, *, metrics: Sequence[Metric], clusters: dict[str, str] | None = None,
) -> Robustness:
    """Every perturbation of ``plan`` evaluated on the plan's ``scores`` (all rows, clean and perturbed,
    with the ``perturbation`` and ``clean_hash`` columns), at the clean thresholds of ``clean`` unless
    the config calibrates on perturbed images; with intervals when the config asks for them."""
    from .stats import bootstrap_bench

    config = plan.config
    sources = list(plan.sources)
    source_kinds = {name: src.kind for name, src in plan.sources.items()}
    clean_thresholds = None if config.calibrate_perturbed else {(t.method, t.options_hash, t.target): t for t in clean.thresholds}
    shared, hard = plan.shared_pairs(), plan.hard_pairs()
    results: list[PerturbationResult] = []
    for chain in plan.perturbations:
        ev = evaluate(scores, methods=plan.runnable, models=plan.models, sources=sources, source_kinds=source_kinds,
                      alpha=config.alpha, metrics=metrics, perturbation=chain.id, thresholds=clean_thresholds, shared_pairs=shared, hard_pairs=hard)
        summaries = summarize(ev.pairs_frame(), ev.timings_frame(), metrics)
        boot = None
        if config.bootstrap:
            alphas = {(t.method, t.options_hash, t.target): t.alpha for t in ev.thresholds if math.isfinite(t.alpha)}
            frame = bootstrap_frame(scores, chain.id, config.calibrate_perturbed)
            frame = frame[[(m, h, t) in alphas for m, h, t in zip(frame["method"], frame["options_hash"], frame["target"])]]
            if len(frame) and (frame["split"] == "eval").any():
                boot = bootstrap_bench(frame, alpha=alphas, n_resamples=config.bootstrap, seed=config.seed,
                                       confidence=config.confidence, clusters=clusters or None, metrics=metrics, shared_pairs=shared, hard_pairs=hard)
                ev.add_intervals(boot.pairs)
                attach_intervals(summaries, boot, SCOPES)
        results.append(PerturbationResult(chain.describe(), ev, summaries, boot))
    out = Robustness(results, config.calibrate_perturbed, config.confidence)
    out.robust = robust_figures(results, config.confidence)
    return out


def robust_figures(results: Sequence[PerturbationResult], confidence: float = 0.95) -> dict[tuple[str, str], dict[str, tuple[float, float, float]]]:
    """Per method: (estimate, low, high) of the mean over the perturbations of its mean accuracy and
    AUC over model pairs (keys "accuracy", "auc") and against real images ("real_accuracy",
    "real_auc"). The interval comes from the bootstrap replicates averaged over the perturbations
    (NaN ends without intervals)."""
    out: dict[tuple[str, str], dict[str, tuple[float, float, float]]] = {}
    keys = list(dict.fromkeys((s.method, s.options_hash) for r in results for s in r.summaries))
    tail = (1.0 - confidence) / 2.0
    for m, h in keys:
        figures: dict[str, tuple[float, float, float]] = {}
        for scope in SCOPES:
            for metric in CURVE_METRICS:
                values = [s.figure(scope, metric) for r in results if (s := r.summary(m, h)) is not None]
                finite = [v for v in values if math.isfinite(v)]
                est = float(np.mean(finite)) if finite else math.nan
                low = high = math.nan
                reps = []
                for r in results:
                    try:
                        reps.append(r.bootstrap.replicates(m, h, scope, metric) if r.bootstrap is not None else None)
                    except KeyError:
                        reps.append(None)
                if math.isfinite(est) and reps and all(x is not None for x in reps):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        mean = np.nanmean(np.vstack(reps), axis=0)
                        if np.isfinite(mean).any():
                            low, high = (float(x) for x in np.nanquantile(mean, [tail, 1.0 - tail]))
                figures[robust_name(scope, metric)] = (est, low, high)
        out[(m, h)] = figures
    return out


def apply_robustness(summaries: Sequence[MethodSummary], robustness: Robustness) -> None:
    """Each clean summary's robust figures (``robust`` and its ``robust:<metric>`` intervals)."""
    for s in summaries:
        figures = robustness.robust.get((s.method, s.options_hash))
        if not figures:
            continue
        for metric, (est, low, high) in figures.items():
            s.robust[metric] = est
            if math.isfinite(low) and math.isfinite(high):
                s.intervals[ScopedMetric(Scope.ROBUST, metric).key] = (low, high)


def robustness_tables(summaries: Sequence[MethodSummary], robustness: Robustness) -> list[Table]:
    """Per method (leaderboard order), the clean figure and the figure under each perturbation: mean
    AUC and mean accuracy over model pairs, and accuracy and AUC against real images; in the last column
    their mean over the perturbations (the robust figures, with intervals)."""
    ids = robustness.ids
    rule = robustness.threshold_rule()
    specs = [
        ("robust_auc", "Robustness · AUC over model pairs under each perturbation", Scope.PAIR, "auc", "auc", "robust",
         "Mean AUC over the ordered model pairs, each pair on the perturbed evaluation images of both models. Robust: the mean over the perturbations."),
        ("robust_accuracy", "Robustness · accuracy (%) over model pairs under each perturbation", Scope.PAIR, "accuracy", "pct", "mean",
         f"Mean accuracy over the ordered model pairs at {rule}; mean: over the perturbations."),
        ("robust_real", "Robustness · accuracy (%) against real images under each perturbation", Scope.REAL, "accuracy", "pct", "mean",
         f"Target T's perturbed evaluation images against the equally perturbed real images, at {rule}; mean: over the perturbations."),
        ("robust_real_auc", "Robustness · AUC against real images under each perturbation", Scope.REAL, "auc", "auc", "mean",
         "Mean over targets T of the AUC of T's perturbed evaluation images against the equally perturbed real images (threshold-free); "
         "mean: over the perturbations."),
    ]
    tables = []
    for key, title, scope, metric, fmt, last, note in specs:
        rows = []
        for s in summaries:
            per = [(ps.cell(scope, metric) if (ps := r.summary(s.method, s.options_hash)) is not None else math.nan) for r in robustness.results]
            rows.append([s.label, s.cell(scope, metric), *per, s.cell(Scope.ROBUST, robust_name(scope, metric))])
        tables.append(Table(key, title, ["method", "clean", *ids, last], ["text", fmt, *[fmt] * len(ids), fmt], rows, note + " " + SHORT_DIRECTION))
    return [t for t in tables if t.has_figures]


CURVE_COLUMNS = ["method", "options_hash", "label", "perturbation", "kind", "level", "scope", "metric", "estimate", "low", "high"]


def curve_frame(summaries: Sequence[MethodSummary], robustness: Robustness) -> pd.DataFrame:
    """The figures the robustness curves draw: per method (leaderboard order), per perturbation (""
    the clean reference), scope ("pair", "real") and metric ("accuracy", "auc"): estimate and
    interval."""
    rows = []
    for s in summaries:
        entries: list[tuple[str, Any, Any, MethodSummary | None]] = [("", None, None, s)]
        entries += [(r.id, r.info.get("kind"), r.info.get("level"), r.summary(s.method, s.options_hash)) for r in robustness.results]
        for pid, kind, level, summary in entries:
            for scope in SCOPES:
                for metric in CURVE_METRICS:
                    if summary is None:
                        value, low, high = math.nan, math.nan, math.nan
                    else:
                        value = summary.figure(scope, metric)
                        low, high = summary.intervals.get(ScopedMetric(scope, metric).key, (math.nan, math.nan))
                    rows.append((s.method, s.options_hash, s.label, pid, kind, level, scope.key, metric, value, low, high))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def robustness_document(summaries: Sequence[MethodSummary], robustness: Robustness) -> dict[str, Any]:
    """What metrics.json records of the perturbation axis (the pairs are in its ``pairs``)."""
    from dataclasses import asdict

    return {
        "perturbations": robustness.perturbations,
        "calibrate_perturbed": robustness.calibrate_perturbed,
        "thresholds": robustness.threshold_rule(),
        "protocol": "every source's evaluation images (the target's own, the other models', the real ones) perturbed alike; "
        "each image's perturbation seeded by the run seed and the clean image's content hash; intervals from one joint "
        "bootstrap per perturbation that names images by their clean hash (the clean run's resamples); robust AUC: the "
        "mean over the perturbations of the mean AUC over model pairs",
        "robust": [
            {"method": m, "options_hash": h, **{f"{metric}{suffix}": v for metric, fig in figs.items() for suffix, v in zip(("", "_low", "_high"), fig)}}
            for (m, h), figs in robustness.robust.items()
        ],
        "summaries": [{"perturbation": r.id, **s.record()} for r in robustness.results for s in r.summaries],
        "perturbed_thresholds": [asdict(t) for t in robustness.thresholds()],
        "curves": curve_frame(summaries, robustness).to_dict("records"),
    }
