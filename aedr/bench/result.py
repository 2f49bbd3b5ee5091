"""What a benchmark run produces: its result (the plan, the scores, the evaluation, the tables, the
intervals and the records of :mod:`aedr.bench.records`). The runner fills it; the renderers and the
output files read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from .config import BenchConfig
    from .metrics import Evaluation, Metric
    from .openset import OpenSet
    from .plan import Plan
    from .robustness import Robustness
    from .stats import BenchBootstrap
    from .tables import MethodSummary, Table

from .records import Failure, RunStats


@dataclass
class BenchResult:
    config: "BenchConfig"
    plan: "Plan"
    scores: "pd.DataFrame"  # the plan's rows: one per (method, target, perturbation, source, split, image)
    evaluation: "Evaluation"
    summaries: list["MethodSummary"]
    tables: list["Table"]
    stats: RunStats
    metrics: list["Metric"] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    uncertainty: "BenchBootstrap | None" = None  # the joint bootstrap behind every interval
    robustness: "Robustness | None" = None  # the perturbation axis, when the run has perturbations
    openset: "OpenSet | None" = None  # every method's open-set attribution (aedr.bench.openset)

    @property
    def board_metrics(self) -> list:
        """The metrics a leaderboard shows: the pair metrics, then the open-set ones."""
        return [*self.metrics, *(self.openset.metrics if self.openset is not None else [])]

    @property
    def clean_scores(self) -> "pd.DataFrame":
        """The plan's rows on clean images (every row when the run has no perturbations)."""
        if "perturbation" not in self.scores.columns:
            return self.scores
        return self.scores[self.scores["perturbation"].fillna("") == ""]
