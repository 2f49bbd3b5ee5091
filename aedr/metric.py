"""The metric seam: a figure computed for every (method, target, source) pair of a benchmark
(:class:`Metric`), or for each method's open-set attribution over all of a run's models at once
(:class:`OpenSetMetric`), registered through the ``register_metrics`` hook (the built-ins by
:mod:`aedr.default_plugins`). The bench (:mod:`aedr.bench.metrics`, :mod:`aedr.bench.openset`)
computes every registered metric, its bootstrap replicates and its rankings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# The columns every pair record already has (aedr.bench.metrics.PairMetrics, and "run" in merged
# boards): a metric cannot take one of these names.
RESERVED_NAMES = frozenset({
    "alpha", "fn", "fp", "intervals", "label", "method", "n_source", "n_target", "options_hash", "pair_kind", "perturbation",
    "run", "source", "target", "target_family", "threshold", "tn", "tp", "values", "hard",
})


@dataclass(frozen=True)
class Metric:
    """A figure computed for every (method, target, source) pair, registered through the
    ``register_metrics`` hook. The tables, the leaderboard, the report, metrics.csv and metrics.json
    show every registered metric.

    ``compute(belonging, other, threshold)``: ``belonging`` the target's evaluation scores, ``other``
    the source's (empty for the target's own pair), both finite, lower = belonging; ``threshold`` is
    tau_T (NaN when it could not be fitted). Returns a float (NaN when undefined).
    ``format``: "pct" (a fraction shown as a percentage), "auc" (three decimals) or "num".
    ``uses_threshold``: the figure depends on tau_T (a threshold-free one is shown in the
    threshold-free table). ``leaderboard``: shown, as its mean over pairs and against real images,
    on the leaderboard, and one a board can be ranked by. ``higher_is_better``: its direction (an
    error rate is False): rankings sort by it and ties are judged in it.

    ``replicates(belonging, other, tau, *, belonging_counts, other_counts)``: optional, the metric
    on every bootstrap replicate at once, as the functions of ``aedr.bench.vectorised`` compute
    them. ``belonging`` (n,) and ``other`` (m,) are the pair's scores shared by every replicate,
    ``tau`` (B,) each replicate's threshold, ``belonging_counts`` (B, n) and ``other_counts``
    (B, m) how many times each score is in each replicate; returns (B,). Without it the bootstrap
    calls ``compute`` once per replicate on the replicate's scores (B calls per pair: the same
    figures, at B times the cost of one pair; 1,000 replicates of a 56-pair bench are 56,000
    calls per method)."""

    name: str
    title: str
    compute: Callable[[np.ndarray, np.ndarray, float], float]
    format: str = "auc"
    description: str = ""
    uses_threshold: bool = False
    leaderboard: bool = False
    higher_is_better: bool = True
    replicates: Callable[..., np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r}: use letters, digits and underscores (it is a column name)")
        if self.name in RESERVED_NAMES:
            raise ValueError(f"metric name {self.name!r} is a column every pair already has")
        if self.format not in ("pct", "auc", "num"):
            raise ValueError(f"metric {self.name!r}: format must be 'pct', 'auc' or 'num', not {self.format!r}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "format": self.format, "description": self.description,
                "uses_threshold": self.uses_threshold, "leaderboard": self.leaderboard, "higher_is_better": self.higher_is_better}

    def per_replicate(self, belonging: np.ndarray, other: np.ndarray, tau: np.ndarray, *,
                      belonging_counts: np.ndarray, other_counts: np.ndarray) -> np.ndarray:
        """The metric on every replicate (arguments as ``replicates`` takes them), (B,): through
        ``replicates`` when the metric has it, else ``compute`` on each replicate's scores."""
        if self.replicates is not None:
            out = self.replicates(belonging, other, tau, belonging_counts=belonging_counts, other_counts=other_counts)
            return np.asarray(out, dtype=np.float64)
        b, o = np.asarray(belonging, dtype=np.float64), np.asarray(other, dtype=np.float64)
        cb, co = np.atleast_2d(belonging_counts), np.atleast_2d(other_counts)
        rows = max(cb.shape[0], co.shape[0], np.size(tau))
        taus = np.broadcast_to(np.asarray(tau, dtype=np.float64).reshape(-1), (rows,))
        cb, co = np.broadcast_to(cb, (rows, b.size)).astype(np.int64), np.broadcast_to(co, (rows, o.size)).astype(np.int64)
        return np.array([float(self.compute(np.repeat(b, cb[r]), np.repeat(o, co[r]), float(taus[r]))) for r in range(rows)])


@dataclass(frozen=True)
class OpenSetMetric:
    """A figure of one method's open-set attribution: every evaluation image of every source under
    every candidate model's threshold at once, as ``aedr attribute`` decides with one card per model
    (see :mod:`aedr.bench.openset`). Registered through ``register_metrics`` like :class:`Metric`;
    the bench computes it for the clean images and for every perturbation, gives it bootstrap
    intervals and compares it, paired, with the leader's.

    ``compute(sample)``: ``sample`` is an ``aedr.bench.openset.OpenSetSample``, one row per
    bootstrap replicate (row 0: the data itself); returns one value per row, (rows,), NaN where
    undefined. ``format``, ``description``, ``leaderboard`` and ``higher_is_better`` as for
    :class:`Metric`; a ``leaderboard=True`` one is a leaderboard column."""

    name: str
    title: str
    compute: Callable[[Any], np.ndarray]
    format: str = "pct"
    description: str = ""
    leaderboard: bool = False
    higher_is_better: bool = True
    uses_threshold: bool = True
    kind: str = "openset"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"metric name {self.name!r}: use letters, digits and underscores (it is a column name)")
        if self.format not in ("pct", "auc", "num"):
            raise ValueError(f"metric {self.name!r}: format must be 'pct', 'auc' or 'num', not {self.format!r}")
        if self.kind != "openset":
            raise ValueError(f"open-set metric {self.name!r}: kind is 'openset'")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "format": self.format, "description": self.description,
                "uses_threshold": self.uses_threshold, "leaderboard": self.leaderboard, "higher_is_better": self.higher_is_better,
                "kind": self.kind}
