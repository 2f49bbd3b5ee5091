"""Confidence intervals and paired comparisons for the benchmark's figures.

Score convention, as everywhere in the bench: lower score = belongs to the target; an image is
attributed to target T iff its score < tau_T, the KDE threshold fitted on T's calibration scores.

What is here
------------
* ``kde_thresholds``, ``accuracy``, ``auc``, ``tpr_at_fpr``: the vectorised threshold and pair
  metrics of ``aedr.bench.vectorised`` (many replicates at once, counts as multiplicities),
  re-exported here.
* ``bootstrap_bench``: a joint bootstrap of a whole bench (every method, target and image set at
  once) and percentile intervals for every pair metric and every per-method summary, for every
  metric it is given (each through ``Metric.per_replicate``: vectorised, or ``compute`` once per
  replicate).
* ``compare_to_leader`` and ``ranks_with_ties``: paired comparisons of methods on the same
  bootstrap replicates, on any leaderboard metric, in its direction (``Metric.higher_is_better``).
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

import warnings
from dataclasses import dataclass, field
from typing import AbstractSet, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..calibration import CALIBRATION_TOO_SMALL, calibration_too_small, check_alpha
from .metrics import BUILTIN_METRICS, Metric, MetricInfo, fit_threshold, pair_kind
from .schema import Scope
from .vectorised import accuracy, auc, kde_thresholds, tpr_at_fpr

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

# The built-in metrics, by name (``bootstrap_bench`` gives intervals to every metric it is passed).
METRICS = tuple(m.name for m in BUILTIN_METRICS)

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
    options_hash, target, target_family, source, pair_kind ("self", "model", "real" or "shared"), metric,
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
    ``draws``: each image set's resamples, by (source, split). ``metrics``: the metrics covered, as
    described (direction and leaderboard flag: what the paired comparisons and ranks use). Scopes
    are ``aedr.bench.schema.Scope`` keys; the methods taking a scope take a Scope or its key.
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
    metrics: tuple[MetricInfo, ...] = tuple(MetricInfo.of(m) for m in BUILTIN_METRICS)

    def methods(self) -> list[tuple[str, str]]:
        """The (method, options_hash) pairs, in the order of the results."""
        return list(dict.fromkeys(zip(self.summaries["method"], self.summaries["options_hash"])))

    def metric(self, name: str) -> MetricInfo:
        """The description (direction included) of a metric the result holds."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"no metric {name!r} in this bootstrap (it has {', '.join(m.name for m in self.metrics)})")

    def _summary_row(self, method: str, options_hash: str, scope: Scope | str, metric: str) -> int:
        s, key = self.summaries, Scope.of(scope).key
        hit = np.flatnonzero((s["method"] == method) & (s["options_hash"] == options_hash) & (s["scope"] == key) & (s["metric"] == metric))
        if not hit.size:
            raise KeyError(f"no summary {key}/{metric} for method {method!r} ({options_hash!r})")
        return int(hit[0])

    def replicates(self, method: str, options_hash: str, scope: Scope | str = Scope.PAIR, metric: str = "accuracy") -> np.ndarray:
        """The (n_resamples,) replicates of one method's summary (e.g. its pair mean accuracy)."""
        return self.summary_replicates[self._summary_row(method, options_hash, scope, metric)]

    def estimate(self, method: str, options_hash: str, scope: Scope | str = Scope.PAIR, metric: str = "accuracy") -> float:
        return float(self.summaries["estimate"].iloc[self._summary_row(method, options_hash, scope, metric)])

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
    metrics: Sequence[Metric] = BUILTIN_METRICS,
    shared_pairs: AbstractSet[tuple[str, str]] = frozenset(),
    hard_pairs: AbstractSet[tuple[str, str]] = frozenset(),
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
    the image bootstrap draws. ``metrics``: the metrics that get intervals (the registered ones;
    each through ``Metric.per_replicate``). ``shared_pairs``: the (target, source) pairs of models on
    one autoencoder, kind "shared" and left out of the summaries (``aedr.bench.metrics.pair_kind``);
    ``hard_pairs``: the model pairs whose mean is the summary scope "hard".

    Pairs: for every (method, options_hash) and every target T it scores, one pair (T, S) for every
    source S with an evaluation set, as ``aedr.bench.metrics.evaluate`` forms them.
    """
    n_resamples, seed, confidence = _check_settings(n_resamples, seed, confidence, alpha)
    frame = _usable(scores)
    draws, samples = _draw(frame, clusters, n_resamples, seed)
    layout = _Layout.of(frame)
    pairs, pv = _pair_replicates(layout, samples, alpha, metrics, shared_pairs, hard_pairs)
    summaries, sv = _summary_replicates(layout, pairs, pv, [m.name for m in metrics])
    for table, values, at in ((pairs, pv, len(pairs.columns)), (summaries, sv, 4)):
        low, high = _quantiles(values[:, 1:], confidence)
        for offset, (name, column) in enumerate((("estimate", values[:, 0]), ("low", low), ("high", high))):
            table.insert(at + offset, name, column)
    return BenchBootstrap(
        pairs=pairs, summaries=summaries, pair_replicates=pv[:, 1:], summary_replicates=sv[:, 1:],
        n_resamples=n_resamples, seed=seed, confidence=confidence, resampling=_describe(draws), draws=draws,
        metrics=tuple(MetricInfo.of(m) for m in metrics),
    )


def _check_settings(n_resamples: int, seed: int, confidence: float, alpha: AlphaSpec) -> tuple[int, int, float]:
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(seed, bool) or int(seed) != seed:
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(alpha, Mapping):
        _alpha_for(alpha, ("", "", ""))
    return int(n_resamples), int(seed), float(confidence)


@dataclass(frozen=True, eq=False)
class _Samples:
    """The scores of every (method, options_hash, target, source, split) and, per image set, the
    counts of its images in every replicate; row 0 of the counts is the original data (each image once)."""

    values: np.ndarray
    groups: Mapping[tuple[str, str, str, str, str], np.ndarray]
    position: np.ndarray  # each row's image, as its column in its set's counts
    counts: Mapping[tuple[str, str], np.ndarray]
    width: int  # 1 + n_resamples

    def get(self, method: str, options_hash: str, target: str, source: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores (n,), counts (width, n)); empty for a group the bench does not hold."""
        idx = self.groups.get((method, options_hash, target, source, split))
        if idx is None:
            return np.empty(0), np.empty((self.width, 0))
        return self.values[idx], self.counts[(source, split)][:, self.position[idx]]


def _draw(frame: pd.DataFrame, clusters: Mapping[str, Hashable] | None, n_resamples: int, seed: int) -> tuple[dict[tuple[str, str], SetDraws], _Samples]:
    """Every image set's resamples, drawn set by set in sorted (source, split) order."""
    rng = np.random.default_rng(seed)
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
    groups = frame.groupby(["method", "options_hash", "target", "source", "split"], sort=False).indices
    return draws, _Samples(frame["score"].to_numpy(), groups, position, full, n_resamples + 1)


@dataclass(frozen=True)
class _Layout:
    """What a bench holds: its methods, each method's targets (in order), the sources with an
    evaluation set, each source's kind and each (method, options_hash, target)'s family."""

    methods: list[tuple[str, str]]
    targets_of: dict[tuple[str, str], list[str]]
    eval_sources: list[str]
    kinds: dict[str, str]
    family_of: dict[tuple[str, str, str], str]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_Layout":
        col = {c: frame[c].to_numpy(dtype=object) for c in _REQUIRED[:-1]}
        targets_of: dict[tuple[str, str], dict[str, None]] = {}
        for m, h, t in zip(col["method"], col["options_hash"], col["target"]):
            targets_of.setdefault((m, h), {})[t] = None
        return cls(
            methods=list(dict.fromkeys(zip(col["method"], col["options_hash"]))),
            targets_of={k: list(v) for k, v in targets_of.items()},
            eval_sources=list(dict.fromkeys(col["source"][col["split"] == "eval"])),
            kinds=dict(zip(col["source"], col["source_kind"])),
            family_of=dict(zip(zip(col["method"], col["options_hash"], col["target"]), col["target_family"])),
        )

    def sources(self, target: str) -> list[str]:
        """The sources of ``target``'s pairs: every evaluation set, and the target's own."""
        return self.eval_sources if target in self.eval_sources else [*self.eval_sources, target]


_PAIR_COLUMNS = ["method", "options_hash", "target", "target_family", "source", "pair_kind", "metric", "hard"]


def _pair_replicates(layout: _Layout, samples: _Samples, alpha: AlphaSpec, metrics: Sequence[Metric],
                     shared_pairs: AbstractSet[tuple[str, str]], hard_pairs: AbstractSet[tuple[str, str]]) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (method, target, source, metric) and its (1 + n_resamples) values, the threshold
    refitted in every replicate."""
    rows: list[tuple] = []
    values: list[np.ndarray] = []
    for m, h in layout.methods:
        for t in layout.targets_of[(m, h)]:
            a = _alpha_for(alpha, (m, h, t))
            cal, cal_counts = samples.get(m, h, t, t, "cal")
            tau = kde_thresholds(cal, a, counts=cal_counts) if cal.size else np.full(samples.width, np.nan)
            tau[0] = fit_threshold(cal, a, None, method=m, options_hash=h, label=m, target=t).threshold
            b, cb = samples.get(m, h, t, t, "eval")
            for s in layout.sources(t):
                o, co = (np.empty(0), np.empty((samples.width, 0))) if s == t else samples.get(m, h, t, s, "eval")
                kind = pair_kind(t, s, layout.kinds.get(s, "model"), shared_pairs)
                hard = kind == "model" and (t, s) in hard_pairs
                for metric in metrics:
                    rows.append((m, h, t, layout.family_of[(m, h, t)], s, kind, metric.name, hard))
                    values.append(metric.per_replicate(b, o, tau, belonging_counts=cb, other_counts=co))
    return pd.DataFrame(rows, columns=_PAIR_COLUMNS), np.vstack(values) if values else np.empty((0, samples.width))


def _scopes(pairs: pd.DataFrame, mine: pd.Series) -> list[tuple[Scope, pd.Series]]:
    """The summary scopes of one method's pairs (``mine``), each with its pairs."""
    kinds, families = pairs["pair_kind"], pairs["target_family"]
    model, real = mine & (kinds == "model"), mine & (kinds == "real")
    scopes = [(Scope.PAIR, model), (Scope.REAL, real)] + ([(Scope.HARD, model & pairs["hard"])] if pairs["hard"].any() else [])
    scopes += [(Scope.target_family(f), model & (families == f)) for f in sorted(set(families[model]))]
    scopes += [(Scope.target_family(f, real=True), real & (families == f)) for f in sorted(set(families[real]))]
    return scopes


def _summary_replicates(layout: _Layout, pairs: pd.DataFrame, pv: np.ndarray, names: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (method, scope, metric): the mean of its pairs' values in every replicate."""
    rows: list[tuple] = []
    values: list[np.ndarray] = []
    for m, h in layout.methods:
        for scope, sel in _scopes(pairs, (pairs["method"] == m) & (pairs["options_hash"] == h)):
            for metric in names:
                stack = pv[(sel & (pairs["metric"] == metric)).to_numpy()]
                rows.append((m, h, scope.key, metric, int(np.isfinite(stack[:, 0]).sum())))
                values.append(_nanmean(stack))
    frame = pd.DataFrame(rows, columns=["method", "options_hash", "scope", "metric", "n_pairs"])
    return frame, np.vstack(values) if values else np.empty((0, pv.shape[1]))


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


def _ranked(result: BenchBootstrap, metric: str, scope: Scope | str) -> tuple[MetricInfo, Scope]:
    """The leaderboard metric ``metric`` of ``result`` and the scope (pair or real) it is compared on."""
    try:
        info = result.metric(metric)
    except KeyError:
        info = None
    if info is None or not info.leaderboard:
        names = ", ".join(repr(m.name) for m in result.metrics if m.leaderboard)
        raise ValueError(f"metric must be a leaderboard metric ({names}), got {metric!r}")
    if scope not in (Scope.PAIR, Scope.REAL, Scope.OPENSET, Scope.PAIR.key, Scope.REAL.key, Scope.OPENSET.key):
        raise ValueError(f"scope must be 'pair', 'real' or 'openset', got {scope!r}")
    return info, Scope.of(scope)


def compare_to_leader(
    result: BenchBootstrap, leader: tuple[str, str], metric: str = "accuracy", scope: Scope | str = Scope.PAIR, *, level: float = 0.05
) -> pd.DataFrame:
    """Every other method against ``leader`` (method, options_hash) on one summary (the pair mean
    or the real mean of a leaderboard metric), paired: the difference is computed replicate by
    replicate on the same resampled images.

    Columns: method, options_hash, estimate (the method's), difference (method - leader, on the
    original data: below 0 is worse for a higher-is-better metric, above 0 for a lower-is-better
    one), low, high (its percentile interval at the result's confidence), p_value
    (``paired_p_value``), p_holm (Holm-adjusted over the compared methods) and tied
    (p_holm >= ``level``: not significantly different from the leader). Methods in result order.
    """
    _, scope = _ranked(result, metric, scope)
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


_RANK_COLUMNS = ["rank", "rank_number", "method", "options_hash", "estimate", "head_method", "head_options_hash", "p_value"]


def ranks_with_ties(result: BenchBootstrap, metric: str = "accuracy", scope: Scope | str = Scope.PAIR, *, level: float = 0.05) -> pd.DataFrame:
    """Ranks of the methods on one summary of a leaderboard metric, best first in the metric's
    direction (``higher_is_better``), where methods not significantly different share a rank.

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
    info, scope = _ranked(result, metric, scope)
    sign = -1.0 if info.higher_is_better else 1.0
    entries = [(m, h, result.estimate(m, h, scope, metric)) for m, h in result.methods()]
    ranked = sorted((e for e in entries if np.isfinite(e[2])), key=lambda e: sign * e[2])
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
        rows.append(dict(zip(_RANK_COLUMNS, (label, number, m, h, est, head[0], head[1], p))))
    rows += [dict(zip(_RANK_COLUMNS, ("-", pd.NA, m, h, est, None, None, float("nan")))) for m, h, est in entries if not np.isfinite(est)]
    out = pd.DataFrame(rows, columns=_RANK_COLUMNS)
    out["rank_number"] = out["rank_number"].astype("Int64")
    return out
