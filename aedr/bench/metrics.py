"""Thresholds and metrics, as the AEDR paper's evaluation protocol defines them.

For a method and a target model T, the threshold tau_T is fitted on T's calibration scores only
(``aedr.kde_threshold``; with alpha "auto", ``aedr.choose_alpha`` against the other sources'
calibration images scored under T). An image is attributed to T iff its score < tau_T.

Pair (T, S): TP / FN count T's evaluation images under tau_T, FP / TN count S's evaluation images.
Accuracy = (TP + TN) / (N_T + N_S). ROC AUC and TPR at a fixed FPR treat T's images as positives
and lower scores as more positive; they need no threshold.

Under a perturbation P the pairs are the same, on the P-perturbed evaluation images of T and S; the
threshold is the clean tau_T unless the run calibrates on perturbed images (then tau_T^P, fitted on
T's P-perturbed calibration images).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import AbstractSet, Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..calibration import DEFAULT_ALPHA, choose_alpha, finite_scores, kde_threshold
from ..metric import Metric, OpenSetMetric
from . import vectorised


# -- threshold-free figures -------------------------------------------------------------------------
def roc_auc(belonging: Sequence[float], other: Sequence[float]) -> float:
    """P(a belonging score < a non-belonging score), ties counted half (Mann-Whitney U)."""
    b = np.asarray(belonging, dtype=np.float64)
    o = np.asarray(other, dtype=np.float64)
    if b.size == 0 or o.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([b, o]))  # ascending, ties averaged
    u_other = ranks[b.size :].sum() - o.size * (o.size + 1) / 2.0  # pairs with other > belonging
    return float(u_other / (b.size * o.size))


def roc_curve(belonging: Sequence[float], other: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for the rule "belonging iff score <= t", t over every distinct score."""
    b = np.sort(np.asarray(belonging, dtype=np.float64))
    o = np.sort(np.asarray(other, dtype=np.float64))
    t = np.unique(np.concatenate([b, o]))
    tpr = np.searchsorted(b, t, side="right") / max(b.size, 1)
    fpr = np.searchsorted(o, t, side="right") / max(o.size, 1)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr]), np.concatenate([[-np.inf], t])


def tpr_at_fpr(belonging: Sequence[float], other: Sequence[float], max_fpr: float) -> float:
    """The highest true-positive rate of any threshold whose false-positive rate is <= ``max_fpr``."""
    if len(belonging) == 0 or len(other) == 0:
        return float("nan")
    fpr, tpr, _ = roc_curve(belonging, other)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


# -- thresholds -------------------------------------------------------------------------------------
@dataclass
class Threshold:
    """tau for one (method, target): fitted on ``n_cal`` belonging calibration scores."""

    method: str
    options_hash: str
    label: str
    target: str
    alpha: float
    alpha_selection: str
    threshold: float
    n_cal: int
    n_estimation: int = 0
    estimation_accuracy: float | None = None
    error: str = ""
    perturbation: str = ""  # the calibration images' perturbation ("" clean)


def fit_threshold(
    cal: np.ndarray, alpha: float | str, non_belonging: np.ndarray | None, *, method: str, options_hash: str, label: str, target: str
) -> Threshold:
    cal, _ = finite_scores(cal)
    base = dict(method=method, options_hash=options_hash, label=label, target=target, n_cal=int(cal.size))
    try:
        if alpha == "auto":
            nb, _ = finite_scores([] if non_belonging is None else non_belonging)
            if nb.size == 0:
                tau = kde_threshold(cal, DEFAULT_ALPHA)
                return Threshold(**base, alpha=DEFAULT_ALPHA, alpha_selection="default (no estimation images)", threshold=tau)
            choice = choose_alpha(cal, nb)
            return Threshold(
                **base, alpha=choice.alpha, alpha_selection="auto", threshold=choice.threshold,
                n_estimation=int(nb.size), estimation_accuracy=choice.accuracy,
            )
        return Threshold(**base, alpha=float(alpha), alpha_selection="fixed", threshold=kde_threshold(cal, float(alpha)))
    except ValueError as exc:
        return Threshold(**base, alpha=float("nan") if alpha == "auto" else float(alpha), alpha_selection=str(alpha), threshold=float("nan"), error=str(exc))


# -- metrics: the registry's entries ------------------------------------------------------------------
@dataclass(frozen=True)
class MetricInfo:
    """A metric as a results file describes it (no function: what rendering and merging need)."""

    name: str
    title: str
    format: str = "auc"
    description: str = ""
    uses_threshold: bool = False
    leaderboard: bool = False
    higher_is_better: bool = True
    kind: str = "pair"  # "pair": a figure per (target, source) pair; "openset": per method over every model (OpenSetMetric)

    @classmethod
    def of(cls, metric: "Metric | OpenSetMetric | MetricInfo | dict[str, Any]") -> "MetricInfo":
        if isinstance(metric, dict):
            return cls(**{k: metric[k] for k in cls.__dataclass_fields__ if k in metric})
        return cls(**{k: getattr(metric, k, f.default) for k, f in cls.__dataclass_fields__.items()})


def accuracy(belonging: np.ndarray, other: np.ndarray, threshold: float) -> float:
    """(TP + TN) / (N_T + N_S) under tau_T; for the target's own pair, TP / N_T."""
    n = belonging.size + other.size
    if not np.isfinite(threshold) or n == 0:
        return float("nan")
    return float((np.sum(belonging < threshold) + np.sum(other >= threshold)) / n)


# -- per pair -----------------------------------------------------------------------------------------
@dataclass
class PairMetrics:
    """One (method, target, source) cell. ``pair_kind``: "self" (S = T), "model", "real" or
    "shared" (two models on one and the same autoencoder: see :func:`pair_kind`).
    ``values``: every metric's value, by metric name."""

    method: str
    options_hash: str
    label: str
    target: str
    target_family: str
    source: str
    pair_kind: str
    threshold: float
    alpha: float
    n_target: int
    n_source: int
    tp: int
    fn: int
    fp: int
    tn: int
    values: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # metric -> (low, high)
    perturbation: str = ""  # the evaluation images' perturbation ("" clean)
    hard: bool = False  # one of the run's hard pairs (``aedr.bench.plan.Plan.hard_pairs``)

    def record(self) -> dict[str, Any]:
        """The flat row of metrics.csv and metrics.json: the fields, then per metric its value and
        its interval's ends (``<metric>_low``, ``<metric>_high``; NaN without an interval)."""
        d = asdict(self)
        row = {k: d[k] for k in PAIR_COLUMNS}
        nan = (float("nan"), float("nan"))
        for name, value in self.values.items():
            low, high = self.intervals.get(name, nan)
            row.update({name: value, f"{name}_low": low, f"{name}_high": high})
        return row




BUILTIN_METRICS = (
    Metric("accuracy", "acc %", accuracy, "pct", "(TP + TN) / (N_T + N_S); belonging iff score < tau_T", uses_threshold=True, leaderboard=True,
           replicates=vectorised.accuracy),
    Metric("auc", "AUC", lambda b, o, _t: roc_auc(b, o), "auc", "ROC AUC: P(a belonging score < a non-belonging score), ties half", leaderboard=True,
           replicates=lambda b, o, _t, **counts: vectorised.auc(b, o, **counts)),
    Metric("tpr_at_1pct_fpr", "TPR@1%FPR", lambda b, o, _t: tpr_at_fpr(b, o, 0.01), "pct", "best TPR of any threshold whose FPR <= 1 %",
           replicates=lambda b, o, _t, **counts: vectorised.tpr_at_fpr(b, o, 0.01, **counts)),
    Metric("tpr_at_5pct_fpr", "TPR@5%FPR", lambda b, o, _t: tpr_at_fpr(b, o, 0.05), "pct", "best TPR of any threshold whose FPR <= 5 %",
           replicates=lambda b, o, _t, **counts: vectorised.tpr_at_fpr(b, o, 0.05, **counts)),
)


SHARED = "shared"


def pair_kind(target: str, source: str, source_kind: str, shared_pairs: AbstractSet[tuple[str, str]] = frozenset()) -> str:
    """What a (target, source) pair is: "self" (the target's own images), "shared" (a model on the
    target's very autoencoder: ``(target, source)`` in ``shared_pairs``; no autoencoder-based method
    can separate them, so such pairs are reported apart and left out of every mean), or the
    source's kind ("model", "real")."""
    if source == target:
        return "self"
    return SHARED if (target, source) in shared_pairs else source_kind


def pair_metrics(
    belonging: np.ndarray, other: np.ndarray | None, threshold: Threshold, metrics: Sequence[Metric] = BUILTIN_METRICS, **ids
) -> PairMetrics:
    """Confusion counts under tau_T and every metric's value. ``other`` None: the target's own pair."""
    b, _ = finite_scores(belonging)
    o, _ = finite_scores(np.array([]) if other is None else other)
    tau = threshold.threshold
    has_tau = np.isfinite(tau)
    tp = int(np.sum(b < tau)) if has_tau else 0
    fn = int(b.size - tp) if has_tau else 0
    fp = int(np.sum(o < tau)) if has_tau else 0
    tn = int(o.size - fp) if has_tau else 0
    n_source = b.size if other is None else o.size
    values = {m.name: float(m.compute(b, o, tau)) for m in metrics}
    return PairMetrics(**ids, threshold=tau, alpha=threshold.alpha, n_target=int(b.size), n_source=int(n_source),
                       tp=tp, fn=fn, fp=fp, tn=tn, values=values)


@dataclass
class Timing:
    """Measured scoring time of one method under one target (seconds per image over its scored images)."""

    method: str
    options_hash: str
    label: str
    target: str
    images: int
    seconds: float

    @property
    def per_image(self) -> float:
        return self.seconds / self.images if self.images else float("nan")


TIMING_COLUMNS = [*Timing.__dataclass_fields__, "seconds_per_image"]  # a timings frame's columns


_FIELDS = [f for f in PairMetrics.__dataclass_fields__ if f not in ("values", "intervals", "perturbation")]
PAIR_COLUMNS = [*_FIELDS[: _FIELDS.index("pair_kind") + 1], "perturbation", *_FIELDS[_FIELDS.index("pair_kind") + 1 :]]


def pairs_columns(metrics: Sequence[Metric | MetricInfo]) -> list[str]:
    return [*PAIR_COLUMNS, *(c for m in metrics for c in (m.name, f"{m.name}_low", f"{m.name}_high"))]


@dataclass
class Evaluation:
    thresholds: list[Threshold] = field(default_factory=list)
    pairs: list[PairMetrics] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    metrics: list[Metric] = field(default_factory=lambda: list(BUILTIN_METRICS))

    def pairs_frame(self) -> pd.DataFrame:
        return pd.DataFrame([p.record() for p in self.pairs], columns=pairs_columns(self.metrics))

    def add_intervals(self, intervals: pd.DataFrame) -> None:
        """Attach per-pair intervals (rows: method, options_hash, target, source, metric, low, high,
        as ``aedr.bench.stats.bootstrap_bench`` gives them) to the pairs they belong to."""
        by_key = {
            (r.method, r.options_hash, r.target, r.source, r.metric): (float(r.low), float(r.high))
            for r in intervals.itertuples(index=False)
        }
        for p in self.pairs:
            for name in p.values:
                hit = by_key.get((p.method, p.options_hash, p.target, p.source, name))
                if hit is not None:
                    p.intervals[name] = hit

    def timings_frame(self) -> pd.DataFrame:
        rows = [{**asdict(t), "seconds_per_image": t.per_image} for t in self.timings]
        return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def evaluate(
    scores: pd.DataFrame, *, methods, models, sources: Sequence[str], source_kinds: dict[str, str], alpha: float | str,
    metrics: Sequence[Metric] = BUILTIN_METRICS, perturbation: str = "",
    thresholds: Mapping[tuple[str, str, str], Threshold] | None = None, shared_pairs: AbstractSet[tuple[str, str]] = frozenset(),
    hard_pairs: AbstractSet[tuple[str, str]] = frozenset(),
) -> Evaluation:
    """Thresholds, pair metrics (every metric in ``metrics``) and timings from the plan's scores.

    ``scores``: the plan's rows (one per method, target, source, split and image) with columns
    method, options_hash, target, source, split, score, seconds, status (and ``perturbation``: only
    the rows of ``perturbation`` are used, "" the clean ones; a frame without the column is clean).
    ``methods``: MethodSpec-like objects (name, options_hash, label); ``models``: ModelPlugin-like
    (name, family). ``thresholds``: (method, options_hash, target) -> the threshold to use instead of
    fitting one on the rows' calibration scores (a perturbation evaluated at the clean thresholds).
    ``shared_pairs``: the (target, source) pairs of models on one autoencoder (:func:`pair_kind`);
    ``hard_pairs``: the model pairs marked ``hard`` (their mean is the leaderboard's hard-pair figure).
    """
    ev = Evaluation(metrics=list(metrics))
    if "perturbation" in scores.columns:
        scores = scores[scores["perturbation"].fillna("") == perturbation]
    elif perturbation:
        scores = scores.iloc[0:0]
    ok = scores[(scores["status"] == "ok")]
    grouped = {k: g for k, g in ok.groupby(["method", "options_hash", "target", "source", "split"], sort=False)}

    def values(spec, target: str, source: str, split: str) -> np.ndarray:
        g = grouped.get((spec.name, spec.options_hash, target, source, split))
        return np.array([]) if g is None else g["score"].to_numpy(dtype=np.float64)

    for spec in methods:
        for model in models:
            t = model.name
            ids = dict(method=spec.name, options_hash=spec.options_hash, label=spec.label, target=t)
            given = None if thresholds is None else thresholds.get((spec.name, spec.options_hash, t))
            if given is not None:
                th = given
            else:
                nb_est = None
                if alpha == "auto":
                    parts = [values(spec, t, s, "cal") for s in sources if s != t]
                    nb_est = np.concatenate(parts) if parts else np.array([])
                th = fit_threshold(values(spec, t, t, "cal"), alpha, nb_est, **ids)
                th.perturbation = perturbation
            ev.thresholds.append(th)
            belonging = values(spec, t, t, "eval")
            for s in sources:
                kind = pair_kind(t, s, source_kinds[s], shared_pairs)
                other = None if s == t else values(spec, t, s, "eval")
                pair = pair_metrics(belonging, other, th, ev.metrics, **ids, target_family=model.family, source=s, pair_kind=kind)
                pair.perturbation = perturbation
                pair.hard = kind == "model" and (t, s) in hard_pairs
                ev.pairs.append(pair)
            mine = ok[(ok["method"] == spec.name) & (ok["options_hash"] == spec.options_hash) & (ok["target"] == t)]
            ev.timings.append(Timing(**ids, images=int(len(mine)), seconds=float(mine["seconds"].sum())))
    return ev
