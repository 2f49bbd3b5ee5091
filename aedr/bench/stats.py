"""Confidence intervals and paired comparisons for the benchmark's figures.

Score convention, as everywhere in the bench: lower score = belongs to the target; an image is
attributed to target T iff its score < tau_T, the KDE threshold fitted on T's calibration scores.

What is here
------------
* ``kde_thresholds``: the threshold of ``aedr.calibration.kde_threshold`` for many samples at once.
* ``accuracy``, ``auc``, ``tpr_at_fpr``: the pair metrics of ``aedr.bench.metrics`` for many
  replicates at once. Every vectorised function takes scores of shape (B, n) (one sample per row;
  NaN or infinite entries are missing, so rows of unequal length can be NaN-padded) or of shape
  (n,) shared by every row, and optional ``counts`` of shape (B, n): how many times each score is in
  row b's sample. Counts describe a bootstrap resample without copying scores: a score with count k
  counts exactly as k copies of it would.
* ``bootstrap_bench``: a joint bootstrap of a whole bench (every method, target and image set at
  once) and percentile intervals for every pair metric and every per-method summary.
* ``compare_to_leader`` and ``ranks_with_ties``: paired comparisons of methods on the same
  bootstrap replicates.
* ``calibration_too_small``: the sample-size rule for the KDE threshold.

The bootstrap
-------------
One replicate resamples every image set once. An image set is a (source, split): a model's
calibration or evaluation images, or the real images. Sets are resampled independently of each
other (a stratified bootstrap: every replicate keeps each set's size, or with clusters its number
of clusters), with replacement, either single images or, when ``clusters`` maps images to clusters
(the photograph a real crop was cut from, say), whole clusters: a cluster drawn k times puts all of
its images in the replicate k times. Images are identified by ``image_hash``, so the resample of a
source's evaluation set is the same under every target and for every method: all figures of one
replicate are computed on the same images, which is what makes differences between methods paired.
In each replicate the threshold tau_T of every (method, target) is refitted on the resampled
calibration scores of T, so the intervals include the threshold's own uncertainty.

Intervals are percentile intervals: the (1 - confidence) / 2 and 1 - (1 - confidence) / 2
quantiles (numpy's linear interpolation) of the replicates. The estimate is the figure on the
original data, equal to what ``aedr.bench.metrics.pair_metrics`` and ``aedr.bench.tables.summarize``
report.

Why not ``scipy.stats.bootstrap``: it resamples each of its samples (or, paired, equal-length
samples together) for one statistic at a time. Here one replicate must resample a dozen image sets
of different sizes at once, by clusters where given, and share that one resample between every
method, every target and every pair; the threshold is refitted inside the statistic; and the paired
comparisons need the replicates themselves, not just intervals. None of that fits its interface, so
the resampling is drawn here with ``numpy.random.Generator`` and the statistics are vectorised over
replicates. For a single pair (two independent samples, single images) both give the same
intervals up to Monte Carlo error.

Alpha: the threshold's alpha is fixed here. For a bench run with alpha "auto", pass each target's
chosen alpha as a mapping (method, options_hash, target) -> alpha; the intervals then hold that
choice fixed and do not include the variability of choosing it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr

from ..calibration import CALIBRATION_TOO_SMALL, GRID_POINTS, calibration_too_small, check_alpha
from .metrics import fit_threshold

__all__ = [
    "CALIBRATION_TOO_SMALL",
    "METRICS",
    "BenchBootstrap",
    "SetDraws",
    "accuracy",
    "auc",
    "bootstrap_bench",
    "calibration_too_small",
    "compare_to_leader",
    "holm",
    "kde_thresholds",
    "paired_p_value",
    "ranks_with_ties",
    "tpr_at_fpr",
]

# The pair metrics that get intervals: the bench's built-in metrics, by name, with their max FPR.
METRICS = ("accuracy", "auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")
_MAX_FPR = {"tpr_at_1pct_fpr": 0.01, "tpr_at_5pct_fpr": 0.05}
# As aedr.bench.metrics.tpr_at_fpr: a threshold qualifies when its FPR <= max_fpr + this.
_FPR_SLACK = 1e-12
_CHUNK = 4_000_000  # elements of the largest temporary array of the per-row metric paths


# -- inputs of the vectorised functions --------------------------------------------------------------
def _sample(values, counts, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores as (n,) when shared by every row else (B, n), with non-finite entries kept;
    counts as (B or 1, n) floats, 0 where the score is missing)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError(f"{what}: expected shape (n,) or (B, n), got {v.shape}")
    finite = np.isfinite(v)
    if counts is None:
        c = finite.astype(np.float64)
    else:
        c = np.asarray(counts, dtype=np.float64)
        if c.ndim == 1:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != v.shape[-1]:
            raise ValueError(f"{what} counts: expected shape (B, {v.shape[-1]}), got {c.shape}")
        if not np.all(np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"{what} counts must be finite and non-negative")
        c = np.where(finite, c, 0.0)
    if c.ndim == 1:
        c = c[None, :]
    return v, c


def _rows(*sizes: int) -> int:
    """The common number of rows of arrays with ``sizes`` rows (1 broadcasts)."""
    out = 1
    for s in sizes:
        if s != 1:
            if out not in (1, s):
                raise ValueError(f"inconsistent numbers of rows: {sorted(set(sizes))}")
            out = s
    return out


def _per_row(v: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(v if v.ndim == 2 else v[None, :], (rows, v.shape[-1]))


# -- thresholds ----------------------------------------------------------------------------------------
def kde_thresholds(samples, alpha: float, *, counts=None) -> np.ndarray:
    """``aedr.calibration.kde_threshold(row, alpha)`` of every row of ``samples``, vectorised.

    ``samples``: (B, n), or (n,) shared by every row of ``counts`` (B, n). NaN and infinite entries
    are missing (``fit_threshold`` drops them before fitting). Returns (B,) thresholds; NaN for a row
    with fewer than 2 scores or whose scores are all equal (``kde_threshold`` raises for those).

    The estimator is the same: a Gaussian KDE with Scott's bandwidth sd * n^(-1/5) (sd with
    ddof=1), truncated to [min - sd, max + sd] and renormalised, and its 1 - alpha quantile. The
    reference evaluates the density on a 10,000-point grid and takes a normalised cumulative sum;
    that is the midpoint rule for the KDE's CDF on [lo - h/2, x + h/2] (h the grid step), so here
    the exact CDF (``scipy.special.ndtr``) is truncated to [lo - h/2, hi + h/2], the quantile is
    solved by safeguarded Newton steps (bisection where Newton leaves the bracket) and shifted by
    -h/2. Agreement with the grid is far within 1e-4 x (max - min + 2 sd).
    """
    q = 1.0 - check_alpha(alpha)
    v, c = _sample(samples, counts, "samples")
    rows = _rows(v.shape[0] if v.ndim == 2 else 1, c.shape[0])
    x = _per_row(v, rows)
    c = np.broadcast_to(c, x.shape)
    present = c > 0
    x = np.where(present, x, 0.0)
    n = c.sum(axis=1)
    out = np.full(rows, np.nan)
    lo_data = np.where(present, x, np.inf).min(axis=1, initial=np.inf)
    hi_data = np.where(present, x, -np.inf).max(axis=1, initial=-np.inf)
    ok = (n > 1) & (hi_data > lo_data)
    if not ok.any():
        return out
    x, c, n, lo_data, hi_data = x[ok], c[ok], n[ok], lo_data[ok], hi_data[ok]
    mean = (c * x).sum(axis=1) / n
    sd = np.sqrt((c * (x - mean[:, None]) ** 2).sum(axis=1) / (n - 1.0))
    bw = (sd * n ** -0.2)[:, None]
    lo, hi = lo_data - sd, hi_data + sd
    half = 0.5 * (hi - lo) / (GRID_POINTS - 1)
    left, right = lo - half, hi + half

    def cdf(t: np.ndarray) -> np.ndarray:
        return (c * ndtr((t[:, None] - x) / bw)).sum(axis=1) / n

    f_left = cdf(left)
    goal = f_left + q * (cdf(right) - f_left)
    a, b = left.copy(), right.copy()
    t = 0.5 * (a + b)
    scale = 1.0 / (n * bw[:, 0] * math.sqrt(2.0 * math.pi))
    tol = 1e-12 * (right - left)
    for _ in range(200):
        z = (t[:, None] - x) / bw
        g = (c * ndtr(z)).sum(axis=1) / n - goal
        dens = (c * np.exp(-0.5 * z * z)).sum(axis=1) * scale
        a = np.where(g < 0, t, a)
        b = np.where(g > 0, t, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = t - g / dens
        new = np.where((step > a) & (step < b), step, 0.5 * (a + b))
        new = np.where(g == 0, t, new)
        done = np.abs(new - t) <= tol
        t = new
        if done.all():
            break
    out[ok] = np.clip(t - half, lo, hi)
    return out


# -- metrics over replicates -----------------------------------------------------------------------------
def accuracy(belonging, other, tau, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """(TP + TN) / (N_T + N_S) of every row under its threshold ``tau`` (B,) or a scalar: TP counts
    belonging scores < tau, TN other scores >= tau. With no other scores (the target's own pair),
    TP / N_T. NaN where tau is NaN or a row has no scores. Returns (B,).
    As ``aedr.bench.metrics.accuracy``, row by row."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    t = np.asarray(tau, dtype=np.float64).reshape(-1)
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0], t.size)
    t = np.broadcast_to(t, (rows,))
    bb = b if b.ndim == 2 else b[None, :]
    oo = o if o.ndim == 2 else o[None, :]
    tp = (cb * (bb < t[:, None])).sum(axis=1)
    tn = (co * (oo >= t[:, None])).sum(axis=1)
    n = np.broadcast_to(cb.sum(axis=1) + co.sum(axis=1), (rows,))
    good = np.isfinite(t) & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.broadcast_to(tp + tn, (rows,)) / n
    return np.where(good, out, np.nan)


def _chunks(rows: int, per_row: int):
    step = max(1, _CHUNK // max(per_row, 1))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _cumulative(v: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shared scores ``v`` (n,) and counts ``c`` (rows, n): (the finite scores sorted; (rows, k + 1)
    cumulative counts along them, starting at 0)."""
    keep = np.isfinite(v)
    order = np.argsort(v[keep], kind="stable")
    cum = np.zeros((c.shape[0], order.size + 1))
    np.cumsum(c[:, keep][:, order], axis=1, out=cum[:, 1:])
    return v[keep][order], cum


def auc(belonging, other, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """P(a belonging score < an other score) of every row, ties counted half (Mann-Whitney), as
    ``aedr.bench.metrics.roc_auc``. NaN for a row without belonging or without other scores.
    Returns (B,)."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0])
    if b.ndim == 1 and o.ndim == 1:  # one set of scores, many resamples: cumulative counts
        bs, cum = _cumulative(b, cb)
        keep = np.isfinite(o)
        of = o[keep]
        below = 0.5 * (cum[:, np.searchsorted(bs, of, side="left")] + cum[:, np.searchsorted(bs, of, side="right")])
        num = np.broadcast_to((below * co[:, keep]).sum(axis=1), (rows,))
    else:
        bb, oo = _per_row(b, rows), _per_row(o, rows)
        cbb, coo = np.broadcast_to(cb, bb.shape), np.broadcast_to(co, oo.shape)
        num = np.empty(rows)
        for s in _chunks(rows, bb.shape[1] * oo.shape[1]):
            k = (bb[s, :, None] < oo[s, None, :]) + 0.5 * (bb[s, :, None] == oo[s, None, :])
            num[s] = np.einsum("ri,rij,rj->r", cbb[s], k, coo[s])
    den = np.broadcast_to(cb.sum(axis=1) * co.sum(axis=1), (rows,))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _tprs(belonging, other, max_fprs: Sequence[float], belonging_counts=None, other_counts=None) -> list[np.ndarray]:
    """``tpr_at_fpr`` at each of ``max_fprs``, from one ROC curve per row."""
    b, cb = _sample(belonging, belonging_counts, "belonging")
    o, co = _sample(other, other_counts, "other")
    rows = _rows(b.shape[0] if b.ndim == 2 else 1, cb.shape[0], o.shape[0] if o.ndim == 2 else 1, co.shape[0])
    nb = np.broadcast_to(cb.sum(axis=1), (rows,))
    no = np.broadcast_to(co.sum(axis=1), (rows,))
    limits = [float(f) + _FPR_SLACK for f in max_fprs]
    best = [np.zeros(rows) for _ in limits]

    def update(tpr: np.ndarray, fpr: np.ndarray, s=slice(None)) -> None:
        for out, limit in zip(best, limits):
            out[s] = np.where(fpr <= limit, tpr, 0.0).max(axis=1)

    with np.errstate(divide="ignore", invalid="ignore"):
        if b.ndim == 1 and o.ndim == 1:  # shared scores: cumulative counts at every distinct score
            bs, cum_b = _cumulative(b, cb)
            os_, cum_o = _cumulative(o, co)
            t = np.unique(np.concatenate([bs, os_]))
            if t.size:
                wb = np.broadcast_to(cum_b[:, np.searchsorted(bs, t, side="right")], (rows, t.size))
                wo = np.broadcast_to(cum_o[:, np.searchsorted(os_, t, side="right")], (rows, t.size))
                update(wb / nb[:, None], wo / no[:, None])
        else:
            bb, oo = _per_row(b, rows), _per_row(o, rows)
            cbb, coo = np.broadcast_to(cb, bb.shape), np.broadcast_to(co, oo.shape)
            ts = np.concatenate([bb, oo], axis=1)  # missing entries are NaN: no score is <= them
            if ts.shape[1]:
                for s in _chunks(rows, ts.shape[1] * max(bb.shape[1], oo.shape[1], 1)):
                    t = ts[s]
                    wb = np.einsum("ri,rit->rt", cbb[s], (bb[s, :, None] <= t[:, None, :]).astype(np.float64))
                    wo = np.einsum("ri,rit->rt", coo[s], (oo[s, :, None] <= t[:, None, :]).astype(np.float64))
                    update(wb / nb[s, None], wo / no[s, None], s)
    good = (nb > 0) & (no > 0)
    return [np.where(good, x, np.nan) for x in best]


def tpr_at_fpr(belonging, other, max_fpr: float, *, belonging_counts=None, other_counts=None) -> np.ndarray:
    """The highest true-positive rate of the rule "belonging iff score <= t" over every t whose
    false-positive rate is <= ``max_fpr`` (t = -inf, TPR 0, always qualifies), as
    ``aedr.bench.metrics.tpr_at_fpr``. NaN for a row without belonging or without other scores.
    Returns (B,)."""
    return _tprs(belonging, other, [max_fpr], belonging_counts, other_counts)[0]


# -- the bench bootstrap ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SetDraws:
    """The resamples of one image set. ``images``: its image hashes, sorted; ``clusters``: each
    image's cluster (0 .. k-1, numbered in the order of ``images``); ``counts`` (n_resamples,
    n_images): how many times each image is in each replicate (all images of a cluster share it)."""

    images: np.ndarray
    clusters: np.ndarray
    counts: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1 if self.clusters.size else 0


@dataclass(frozen=True, eq=False)
class BenchBootstrap:
    """Percentile intervals of a bench's figures from a joint bootstrap (``bootstrap_bench``).

    ``pairs``: one row per (method, options_hash, target, source, metric) with columns method,
    options_hash, target, target_family, source, pair_kind ("self", "model" or "real"), metric,
    estimate (on the original data), low, high. Undefined figures (the self pair's AUC) are NaN.
    ``summaries``: one row per (method, options_hash, scope, metric) with columns method,
    options_hash, scope, metric, estimate, low, high, n_pairs. Scopes: "pair" (mean over the ordered
    model pairs, Table 1), "real" (mean over the targets' pairs against real images, Table 2),
    "family:<f>" (mean over the model pairs whose target is in family f) and "real-family:<f>"
    (mean over the real pairs of the targets in family f). Means skip NaN values, as
    ``aedr.bench.tables.summarize`` does.
    ``pair_replicates`` (len(pairs), n_resamples) and ``summary_replicates`` (len(summaries),
    n_resamples): row i holds the replicates of row i of the frame (NaN where a replicate left the
    figure undefined, e.g. a calibration resample whose scores are all equal).
    ``draws``: each image set's resamples, by (source, split).
    """

    pairs: pd.DataFrame
    summaries: pd.DataFrame
    pair_replicates: np.ndarray
    summary_replicates: np.ndarray
    n_resamples: int
    seed: int
    confidence: float
    resampling: str
    draws: Mapping[tuple[str, str], SetDraws] = field(default_factory=dict)

    def methods(self) -> list[tuple[str, str]]:
        """The (method, options_hash) pairs, in the order of the results."""
        return list(dict.fromkeys(zip(self.summaries["method"], self.summaries["options_hash"])))

    def replicates(self, method: str, options_hash: str, scope: str = "pair", metric: str = "accuracy") -> np.ndarray:
        """The (n_resamples,) replicates of one method's summary (e.g. its pair mean accuracy)."""
        s = self.summaries
        hit = np.flatnonzero((s["method"] == method) & (s["options_hash"] == options_hash) & (s["scope"] == scope) & (s["metric"] == metric))
        if not hit.size:
            raise KeyError(f"no summary {scope}/{metric} for method {method!r} ({options_hash!r})")
        return self.summary_replicates[hit[0]]

    def estimate(self, method: str, options_hash: str, scope: str = "pair", metric: str = "accuracy") -> float:
        s = self.summaries
        hit = np.flatnonzero((s["method"] == method) & (s["options_hash"] == options_hash) & (s["scope"] == scope) & (s["metric"] == metric))
        if not hit.size:
            raise KeyError(f"no summary {scope}/{metric} for method {method!r} ({options_hash!r})")
        return float(s["estimate"].iloc[hit[0]])

    def pair_replicate(self, method: str, options_hash: str, target: str, source: str, metric: str = "accuracy") -> np.ndarray:
        """The (n_resamples,) replicates of one pair's metric."""
        p = self.pairs
        hit = np.flatnonzero(
            (p["method"] == method) & (p["options_hash"] == options_hash) & (p["target"] == target) & (p["source"] == source) & (p["metric"] == metric)
        )
        if not hit.size:
            raise KeyError(f"no pair ({target}, {source}) {metric} for method {method!r} ({options_hash!r})")
        return self.pair_replicates[hit[0]]


_REQUIRED = ("method", "options_hash", "target", "target_family", "source", "source_kind", "split", "image_hash", "score")
AlphaSpec = float | Mapping[tuple[str, str, str], float]


def _alpha_for(alpha: AlphaSpec, key: tuple[str, str, str]) -> float:
    if isinstance(alpha, str):
        raise ValueError(f"alpha must be a number or a mapping (method, options_hash, target) -> alpha, got {alpha!r}; "
                         "for alpha 'auto' pass each target's chosen alpha")
    if isinstance(alpha, Mapping):
        if key not in alpha:
            raise KeyError(f"alpha: no value for (method, options_hash, target) = {key!r}")
        return check_alpha(alpha[key])
    return check_alpha(alpha)


def _usable(scores: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lack the columns {missing}")
    frame = scores
    if "status" in frame.columns:
        frame = frame[frame["status"] == "ok"]
    score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=np.float64)
    frame = frame.loc[np.isfinite(score), list(_REQUIRED)].copy()
    for c in _REQUIRED[:-1]:
        frame[c] = frame[c].astype(str)
    frame["score"] = frame["score"].astype(np.float64)
    return frame.reset_index(drop=True)


def _draw_counts(rng: np.random.Generator, clusters: np.ndarray, n_resamples: int) -> np.ndarray:
    """(n_resamples, n_images) counts: each replicate draws k of the k clusters with replacement."""
    k = int(clusters.max()) + 1 if clusters.size else 0
    if k == 0:
        return np.zeros((n_resamples, 0), dtype=np.int64)
    picks = rng.integers(0, k, size=(n_resamples, k))
    flat = (picks + (np.arange(n_resamples) * k)[:, None]).ravel()
    per_cluster = np.bincount(flat, minlength=n_resamples * k).reshape(n_resamples, k)
    return per_cluster[:, clusters]


def _cluster_index(images: np.ndarray, clusters: Mapping[str, Hashable] | None) -> np.ndarray:
    """Each image's cluster number; images absent from ``clusters`` form a cluster of their own."""
    if clusters is None:
        return np.arange(images.size)
    numbers: dict[object, int] = {}
    out = np.empty(images.size, dtype=np.int64)
    for i, h in enumerate(images):
        key = ("cluster", clusters[h]) if h in clusters else ("image", h)
        out[i] = numbers.setdefault(key, len(numbers))
    return out


def _describe(draws: Mapping[tuple[str, str], SetDraws]) -> str:
    def clustered(d: SetDraws) -> str:
        few = "; too few clusters to estimate the variation between them" if d.n_clusters < 5 else ""
        return f"{d.images.size} images in {d.n_clusters} cluster{'s' if d.n_clusters != 1 else ''}{few}"

    grouped = [f"{s} {sp} ({clustered(d)})" for (s, sp), d in draws.items() if d.n_clusters < d.images.size]
    if not grouped:
        return "single images within every image set (no clusters)"
    if len(grouped) == len(draws):
        return "clusters for every image set: " + ", ".join(grouped)
    return "clusters for " + ", ".join(grouped) + "; single images for every other set"


def _quantiles(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1.0 - confidence) / 2.0
    if values.shape[0] == 0:
        return np.empty(0), np.empty(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN intervals
        low, high = np.nanquantile(values, [tail, 1.0 - tail], axis=1)
    return low, high


def _nanmean(stack: np.ndarray) -> np.ndarray:
    if stack.shape[0] == 0:
        return np.full(stack.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, axis=0)


def bootstrap_bench(
    scores: pd.DataFrame,
    *,
    alpha: AlphaSpec,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    clusters: Mapping[str, Hashable] | None = None,
) -> BenchBootstrap:
    """Percentile intervals for every pair metric and per-method summary of a bench, from one joint,
    seeded, stratified bootstrap (see the module's docstring).

    ``scores``: the bench's per-image scores, one row per (method, options_hash, target, source,
    split, image) with at least the columns method, options_hash, target, target_family, source,
    source_kind ("model"/"real"), split ("cal"/"eval"), image_hash and score; with a ``status``
    column only "ok" rows are used, and non-finite scores are dropped (as ``evaluate`` does).
    ``alpha``: the threshold's alpha, a float or a mapping (method, options_hash, target) -> alpha
    (with alpha "auto", the alpha chosen for each target). ``clusters``: image_hash -> cluster id;
    resamples whole clusters within each image set; an image it does not name is a cluster of its
    own. Without it, single images are resampled. The draws depend only on ``seed``, the image sets
    and their images (not on the frame's row order), and one cluster per image draws exactly what
    the image bootstrap draws.

    Pairs: for every (method, options_hash) and every target T it scores, one pair (T, S) for every
    source S with an evaluation set, as ``aedr.bench.metrics.evaluate`` forms them.
    """
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(seed, bool) or int(seed) != seed:
        raise ValueError(f"seed must be an integer, got {seed!r}")
    n_resamples, seed, confidence = int(n_resamples), int(seed), float(confidence)
    if not isinstance(alpha, Mapping):
        _alpha_for(alpha, ("", "", ""))
    frame = _usable(scores)
    rng = np.random.default_rng(seed)

    # every image set's draws; row 0 of ``full`` is the original data (each image once)
    draws: dict[tuple[str, str], SetDraws] = {}
    full: dict[tuple[str, str], np.ndarray] = {}
    position = np.empty(len(frame), dtype=np.int64)
    for key, idx in sorted(frame.groupby(["source", "split"], sort=False).indices.items()):
        hashes = frame["image_hash"].to_numpy()[idx]
        images = np.unique(hashes)
        position[idx] = np.searchsorted(images, hashes)
        cl = _cluster_index(images, clusters)
        counts = _draw_counts(rng, cl, n_resamples)
        draws[key] = SetDraws(images, cl, counts)
        full[key] = np.vstack([np.ones((1, images.size)), counts]).astype(np.float64)

    values = frame["score"].to_numpy()
    groups = frame.groupby(["method", "options_hash", "target", "source", "split"], sort=False).indices
    empty = (np.empty(0), np.empty((n_resamples + 1, 0)))

    def sample(m: str, h: str, t: str, s: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        idx = groups.get((m, h, t, s, split))
        if idx is None:
            return empty
        return values[idx], full[(s, split)][:, position[idx]]

    col = {c: frame[c].to_numpy(dtype=object) for c in _REQUIRED[:-1]}
    kinds = dict(zip(col["source"], col["source_kind"]))
    eval_sources = list(dict.fromkeys(col["source"][col["split"] == "eval"]))
    methods = list(dict.fromkeys(zip(col["method"], col["options_hash"])))
    family_of = dict(zip(zip(col["method"], col["options_hash"], col["target"]), col["target_family"]))
    targets_of: dict[tuple[str, str], dict[str, None]] = {}  # each method's targets, in order
    for m, h, t in zip(col["method"], col["options_hash"], col["target"]):
        targets_of.setdefault((m, h), {})[t] = None

    pair_rows: list[tuple] = []
    pair_values: list[np.ndarray] = []
    for m, h in methods:
        for t in targets_of[(m, h)]:
            a = _alpha_for(alpha, (m, h, t))
            cal, cal_counts = sample(m, h, t, t, "cal")
            tau = kde_thresholds(cal, a, counts=cal_counts) if cal.size else np.full(n_resamples + 1, np.nan)
            tau[0] = fit_threshold(cal, a, None, method=m, options_hash=h, label=m, target=t).threshold
            b, cb = sample(m, h, t, t, "eval")
            for s in eval_sources if t in eval_sources else [*eval_sources, t]:
                o, co = empty if s == t else sample(m, h, t, s, "eval")
                kind = "self" if s == t else kinds.get(s, "model")
                figures = {
                    "accuracy": accuracy(b, o, tau, belonging_counts=cb, other_counts=co),
                    "auc": auc(b, o, belonging_counts=cb, other_counts=co),
                    **dict(zip(_MAX_FPR, _tprs(b, o, list(_MAX_FPR.values()), cb, co))),
                }
                for metric in METRICS:
                    pair_rows.append((m, h, t, family_of[(m, h, t)], s, kind, metric))
                    pair_values.append(figures[metric])

    width = n_resamples + 1
    pv = np.vstack(pair_values) if pair_values else np.empty((0, width))
    cols = ["method", "options_hash", "target", "target_family", "source", "pair_kind", "metric"]
    pairs = pd.DataFrame(pair_rows, columns=cols)
    low, high = _quantiles(pv[:, 1:], confidence)
    pairs["estimate"], pairs["low"], pairs["high"] = pv[:, 0], low, high

    summary_rows: list[tuple] = []
    summary_values: list[np.ndarray] = []
    for m, h in methods:
        mine = (pairs["method"] == m) & (pairs["options_hash"] == h)
        kinds_col, fam_col = pairs["pair_kind"], pairs["target_family"]
        scopes = [("pair", mine & (kinds_col == "model")), ("real", mine & (kinds_col == "real"))]
        for fam in sorted(set(fam_col[mine & (kinds_col == "model")])):
            scopes.append((f"family:{fam}", mine & (kinds_col == "model") & (fam_col == fam)))
        for fam in sorted(set(fam_col[mine & (kinds_col == "real")])):
            scopes.append((f"real-family:{fam}", mine & (kinds_col == "real") & (fam_col == fam)))
        for scope, sel in scopes:
            for metric in METRICS:
                stack = pv[(sel & (pairs["metric"] == metric)).to_numpy()]
                summary_rows.append((m, h, scope, metric, int(np.isfinite(stack[:, 0]).sum())))
                summary_values.append(_nanmean(stack))
    sv = np.vstack(summary_values) if summary_values else np.empty((0, width))
    summaries = pd.DataFrame(summary_rows, columns=["method", "options_hash", "scope", "metric", "n_pairs"])
    low, high = _quantiles(sv[:, 1:], confidence)
    summaries.insert(4, "estimate", sv[:, 0])
    summaries.insert(5, "low", low)
    summaries.insert(6, "high", high)
    return BenchBootstrap(
        pairs=pairs, summaries=summaries, pair_replicates=pv[:, 1:], summary_replicates=sv[:, 1:],
        n_resamples=n_resamples, seed=seed, confidence=confidence, resampling=_describe(draws), draws=draws,
    )


# -- paired comparisons -------------------------------------------------------------------------------
def paired_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the difference is 0" from its replicates:
    2 x min(share of replicates <= 0, share >= 0), at most 1 and at least 1 / (B + 1), B the number of
    finite replicates (NaN when there is none). p < 1 - c exactly when 0 lies outside the central
    c-level percentile interval of the differences (up to the interval's interpolation)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not d.size:
        return float("nan")
    p = 2.0 * min(np.mean(d <= 0), np.mean(d >= 0))
    return float(min(1.0, max(p, 1.0 / (d.size + 1))))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries stay NaN and are not
    counted in the family)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size:
        order = idx[np.argsort(p[idx], kind="stable")]
        m = order.size
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        out[order] = adjusted
    return out


def _check_choice(metric: str, scope: str) -> None:
    if metric not in ("accuracy", "auc"):
        raise ValueError(f"metric must be 'accuracy' or 'auc', got {metric!r}")
    if scope not in ("pair", "real"):
        raise ValueError(f"scope must be 'pair' or 'real', got {scope!r}")


def compare_to_leader(
    result: BenchBootstrap, leader: tuple[str, str], metric: str = "accuracy", scope: str = "pair", *, level: float = 0.05
) -> pd.DataFrame:
    """Every other method against ``leader`` (method, options_hash) on one summary (the pair mean
    or the real mean of accuracy or AUC), paired: the difference is computed replicate by replicate
    on the same resampled images.

    Columns: method, options_hash, estimate (the method's), difference (method - leader, on the
    original data), low, high (its percentile interval at the result's confidence), p_value
    (``paired_p_value``), p_holm (Holm-adjusted over the compared methods) and tied
    (p_holm >= ``level``: not significantly different from the leader). Methods in result order.
    """
    _check_choice(metric, scope)
    lead = result.replicates(*leader, scope=scope, metric=metric)
    lead_est = result.estimate(*leader, scope=scope, metric=metric)
    rows = []
    diffs = []
    for m, h in result.methods():
        if (m, h) == tuple(leader):
            continue
        d = result.replicates(m, h, scope, metric) - lead
        est = result.estimate(m, h, scope, metric)
        diffs.append(d)
        rows.append({"method": m, "options_hash": h, "estimate": est, "difference": est - lead_est, "p_value": paired_p_value(d)})
    out = pd.DataFrame(rows, columns=["method", "options_hash", "estimate", "difference", "p_value"])
    low, high = _quantiles(np.vstack(diffs) if diffs else np.empty((0, result.n_resamples)), result.confidence)
    out.insert(4, "low", low)
    out.insert(5, "high", high)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["tied"] = out["p_holm"] >= level  # NaN p (no finite replicate): not tied
    return out


def ranks_with_ties(result: BenchBootstrap, metric: str = "accuracy", scope: str = "pair", *, level: float = 0.05) -> pd.DataFrame:
    """Ranks of the methods on one summary (higher is better), where methods not significantly
    different share a rank.

    The rule: sort the methods by estimate, best first (equal estimates keep result order; NaN
    estimates last, unranked, rank "-"). The first method heads a group and is ranked 1. Walking
    down, each method is compared, paired, with the head of the current group (not with the method
    just above it, so ties do not chain: every member of a group is not significantly different
    from its head). If that difference is not significant (``paired_p_value`` >= ``level``,
    one test per decision, not adjusted for multiplicity) it joins the group and shares its rank,
    shown as "<rank>="; otherwise it heads a new group whose rank is its position (competition
    ranking: 1, 1=, 3, ...). A group's head is shown without "=".

    Columns: rank (text), rank_number (the number, Int64; missing for unranked), method,
    options_hash, estimate, head_method, head_options_hash (the head of its group), p_value (against
    the head; NaN for a head).
    """
    _check_choice(metric, scope)
    entries = [(m, h, result.estimate(m, h, scope, metric)) for m, h in result.methods()]
    ranked = sorted((e for e in entries if np.isfinite(e[2])), key=lambda e: -e[2])
    rows = []
    head = None
    head_rank = 0
    for position, (m, h, est) in enumerate(ranked, 1):
        p = float("nan")
        if head is not None:
            p = paired_p_value(result.replicates(m, h, scope, metric) - result.replicates(*head, scope, metric))
        if head is not None and p >= level:
            label, number = f"{head_rank}=", head_rank
        else:
            head, head_rank, p = (m, h), position, float("nan")
            label, number = str(position), position
        rows.append({"rank": label, "rank_number": number, "method": m, "options_hash": h, "estimate": est,
                     "head_method": head[0], "head_options_hash": head[1], "p_value": p})
    for m, h, est in entries:
        if not np.isfinite(est):
            rows.append({"rank": "-", "rank_number": pd.NA, "method": m, "options_hash": h, "estimate": est,
                         "head_method": None, "head_options_hash": None, "p_value": float("nan")})
    out = pd.DataFrame(rows, columns=["rank", "rank_number", "method", "options_hash", "estimate", "head_method", "head_options_hash", "p_value"])
    out["rank_number"] = out["rank_number"].astype("Int64")
    return out
