"""The types of a merged leaderboard: what it reads of each run (:class:`RunRecord`) and what it
makes of them (:class:`Merged`), below the renderers that draw it and :mod:`aedr.bench.leaderboard`
that reads and merges runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .metrics import MetricInfo
from .tables import MethodSummary, Table, leaderboard_table


@dataclass
class RunRecord:
    """What a leaderboard needs from one run folder (its ``metrics.json``)."""

    path: Path
    name: str
    finished: str
    config: dict[str, Any]
    models: list[dict[str, Any]]
    pairs: pd.DataFrame
    timings: pd.DataFrame
    metrics: list[MetricInfo] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    alphas: dict[tuple[str, str, str], float] = field(default_factory=dict)  # per (method, options hash, target): its threshold's alpha
    uncertainty: dict[str, Any] | None = None  # how the run's intervals were computed (metrics.json)
    intervals: dict[tuple[str, str], dict[str, tuple[float, float]]] = field(default_factory=dict)  # per method's summary
    robust: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # per method's robust figures
    ranks: dict[tuple[str, str], str] = field(default_factory=dict)  # per method's rank in the run ("1=")
    versus_leader: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # per method's paired comparison
    has_openset: bool = False  # the run's board has open-set figures (over its own candidate models)

    def describe(self) -> str:
        c = self.config
        models = ", ".join(m["name"] for m in self.models)
        return (f"{self.name}: config {c.get('name', '?')}, models [{models}], {c.get('n_cal')} cal / {c.get('n_eval')} eval images, "
                f"alpha {c.get('alpha')}, seed {c.get('seed')}, finished {self.finished}")


@dataclass
class Merged:
    runs: list[RunRecord]
    pairs: pd.DataFrame
    timings: pd.DataFrame
    summaries: list[MethodSummary]
    runs_by_method: dict[tuple[str, str], str]
    notes: list[str]
    metrics: list[MetricInfo] = field(default_factory=list)
    # The pools of runs whose methods are ranked together (letter -> run names): runs of one pool
    # scored the same images and are ranked by one joint bootstrap. Several pools: no rank compares
    # methods of different pools.
    rank_pools: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ranked_in_pools(self) -> bool:
        return len(self.rank_pools) > 1

    def table(self) -> Table:
        pools = self.rank_pools if self.ranked_in_pools else None
        return leaderboard_table(self.summaries, with_runs=self.runs_by_method, metrics=self.metrics, rank_pools=pools)
