"""What a benchmark run produces: its result, its statistics, the failures it recorded and the
progress events it sends. The runner fills these, executors report into them, the renderers and
the output files read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from .config import BenchConfig
    from .metrics import Evaluation, Metric
    from .plan import Plan
    from .robustness import Robustness
    from .stats import BenchBootstrap
    from .tables import MethodSummary, Table


@dataclass
class Failure:
    """A method that could not score under a target (its remaining work there was dropped)."""

    method: str
    label: str
    target: str
    error: str


@dataclass
class ProgressEvent:
    """Sent to ``run_bench(callback=...)`` after every scored batch."""

    method: str
    target: str
    sets: str  # the image sets of the chunk being scored
    images: int
    scored_in_run: int


@dataclass
class RunStats:
    started: str = ""
    finished: str = ""
    wall_seconds: float = 0.0
    executor: str = ""
    generated: int = 0
    generation_seconds: float = 0.0
    already_saved: int = 0
    scored: int = 0  # image scores computed and saved by this run
    skipped: int = 0  # images recorded as skipped by this run
    chunks_written: int = 0
    scoring_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    perturbed: int = 0  # perturbed images prepared (each clean image under each perturbation)
    perturbation_seconds: float = 0.0
    load_average_start: list[float] | None = None
    load_average_end: list[float] | None = None


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

    @property
    def clean_scores(self) -> "pd.DataFrame":
        """The plan's rows on clean images (every row when the run has no perturbations)."""
        if "perturbation" not in self.scores.columns:
            return self.scores
        return self.scores[self.scores["perturbation"].fillna("") == ""]
