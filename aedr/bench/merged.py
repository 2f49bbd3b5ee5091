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
    intervals: dict[tuple[str, str], dict[str, tuple[float, float]]] = field(default_factory=dict)  # per method's summary
    robust: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # per method's robust figures
    ranks: dict[tuple[str, str], str] = field(default_factory=dict)  # per method's rank in the run ("1=")
    versus_leader: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # per method's paired comparison

    def describe(self) -> str:
        c = self.config
        models = ", ".join(m["name"] for m in self.models)
        return f"{self.name}: config {c.get('name', '?')}, models [{models}], {c.get('n_cal')} cal / {c.get('n_eval')} eval images, alpha {c.get('alpha')}, finished {self.finished}"


@dataclass
class Merged:
    runs: list[RunRecord]
    pairs: pd.DataFrame
    timings: pd.DataFrame
    summaries: list[MethodSummary]
    runs_by_method: dict[tuple[str, str], str]
    notes: list[str]
    metrics: list[MetricInfo] = field(default_factory=list)
    ranked_within_runs: bool = False  # methods from several runs: each rank is its own run's

    def table(self) -> Table:
        return leaderboard_table(self.summaries, with_runs=self.runs_by_method, metrics=self.metrics, ranks_within_runs=self.ranked_within_runs)
