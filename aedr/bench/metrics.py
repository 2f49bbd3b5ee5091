"""Thresholds and metrics, as the AEDR paper's evaluation protocol defines them.

For a method and a target model T, the threshold tau_T is fitted on T's calibration scores only
(``aedr.kde_threshold``; with alpha "auto", ``aedr.choose_alpha`` against the other sources'
calibration images scored under T). An image is attributed to T iff its score < tau_T.

Pair (T, S): TP / FN count T's evaluation images under tau_T, FP / TN count S's evaluation images.
Accuracy = (TP + TN) / (N_T + N_S). ROC AUC and TPR at a fixed FPR treat T's images as positives
and lower scores as more positive; they need no threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..calibration import DEFAULT_ALPHA, choose_alpha, kde_threshold


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


def fit_threshold(
    cal: np.ndarray, alpha: float | str, non_belonging: np.ndarray | None, *, method: str, options_hash: str, label: str, target: str
) -> Threshold:
    cal = cal[np.isfinite(cal)]
    base = dict(method=method, options_hash=options_hash, label=label, target=target, n_cal=int(cal.size))
    try:
        if alpha == "auto":
            nb = np.asarray([] if non_belonging is None else non_belonging, dtype=np.float64)
            nb = nb[np.isfinite(nb)]
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


# -- per pair -----------------------------------------------------------------------------------------
@dataclass
class PairMetrics:
    """One (method, target, source) cell. ``pair_kind``: "self" (S = T), "model" or "real"."""

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
    accuracy: float
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_5pct_fpr: float


def pair_metrics(belonging: np.ndarray, other: np.ndarray | None, threshold: Threshold, **ids) -> PairMetrics:
    """Confusion counts and accuracy under tau_T, plus AUC and TPR at 1 % / 5 % FPR."""
    b = belonging[np.isfinite(belonging)]
    tau = threshold.threshold
    has_tau = np.isfinite(tau)
    tp = int(np.sum(b < tau)) if has_tau else 0
    fn = int(b.size - tp) if has_tau else 0
    if other is None:  # S = T: only the belonging side
        acc = tp / b.size if has_tau and b.size else float("nan")
        return PairMetrics(**ids, threshold=tau, alpha=threshold.alpha, n_target=int(b.size), n_source=int(b.size),
                           tp=tp, fn=fn, fp=0, tn=0, accuracy=acc, auc=float("nan"),
                           tpr_at_1pct_fpr=float("nan"), tpr_at_5pct_fpr=float("nan"))
    o = other[np.isfinite(other)]
    fp = int(np.sum(o < tau)) if has_tau else 0
    tn = int(o.size - fp) if has_tau else 0
    n = b.size + o.size
    acc = (tp + tn) / n if has_tau and n else float("nan")
    return PairMetrics(
        **ids, threshold=tau, alpha=threshold.alpha, n_target=int(b.size), n_source=int(o.size), tp=tp, fn=fn, fp=fp, tn=tn,
        accuracy=acc, auc=roc_auc(b, o), tpr_at_1pct_fpr=tpr_at_fpr(b, o, 0.01), tpr_at_5pct_fpr=tpr_at_fpr(b, o, 0.05),
    )


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


@dataclass
class Evaluation:
    thresholds: list[Threshold] = field(default_factory=list)
    pairs: list[PairMetrics] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)

    def pairs_frame(self) -> pd.DataFrame:
        cols = list(PairMetrics.__dataclass_fields__)
        return pd.DataFrame([asdict(p) for p in self.pairs], columns=cols)

    def timings_frame(self) -> pd.DataFrame:
        rows = [{**asdict(t), "seconds_per_image": t.per_image} for t in self.timings]
        return pd.DataFrame(rows, columns=[*Timing.__dataclass_fields__, "seconds_per_image"])


def evaluate(scores: pd.DataFrame, *, methods, models, sources: Sequence[str], source_kinds: dict[str, str], alpha: float | str) -> Evaluation:
    """Thresholds, pair metrics and timings from the plan's scores.

    ``scores``: the plan's rows (one per method, target, source, split and image) with columns
    method, options_hash, target, source, split, score, seconds, status. ``methods``: MethodSpec-like
    objects (name, options_hash, label); ``models``: ModelPlugin-like (name, family).
    """
    ev = Evaluation()
    ok = scores[(scores["status"] == "ok")]
    grouped = {k: g for k, g in ok.groupby(["method", "options_hash", "target", "source", "split"], sort=False)}

    def values(spec, target: str, source: str, split: str) -> np.ndarray:
        g = grouped.get((spec.name, spec.options_hash, target, source, split))
        return np.array([]) if g is None else g["score"].to_numpy(dtype=np.float64)

    for spec in methods:
        for model in models:
            t = model.name
            ids = dict(method=spec.name, options_hash=spec.options_hash, label=spec.label, target=t)
            nb_est = None
            if alpha == "auto":
                parts = [values(spec, t, s, "cal") for s in sources if s != t]
                nb_est = np.concatenate(parts) if parts else np.array([])
            th = fit_threshold(values(spec, t, t, "cal"), alpha, nb_est, **ids)
            ev.thresholds.append(th)
            belonging = values(spec, t, t, "eval")
            for s in sources:
                kind = "self" if s == t else source_kinds[s]
                other = None if s == t else values(spec, t, s, "eval")
                ev.pairs.append(pair_metrics(belonging, other, th, **ids, target_family=model.family, source=s, pair_kind=kind))
            mine = ok[(ok["method"] == spec.name) & (ok["options_hash"] == spec.options_hash) & (ok["target"] == t)]
            ev.timings.append(Timing(**ids, images=int(len(mine)), seconds=float(mine["seconds"].sum())))
    return ev
