"""The benchmark: every method against every (target, source) pair and real images, as the AEDR
paper's Tables 1 to 4, with resumable per-image scores, a leaderboard and an HTML report.

    from aedr.bench import load_config, run_bench
    result = run_bench(load_config("default", models=["zoo-*"], n_eval=16))
    print(result.files["report.html"])

Layers, each importing only those above it: ``config`` -> ``plan`` / ``sources`` / ``store`` ->
``execute`` (the :class:`Executor` seam) -> ``metrics`` (thresholds, pair metrics, the
:class:`Metric` seam) -> ``schema`` (metrics.json) -> ``stats`` (the bootstrap) -> ``tables``
(aggregation; ``robustness``: the perturbation axis; ``openset``: open-set attribution) ->
``render`` (drawing) -> ``outputs`` / ``leaderboard`` (files) -> ``runner``. ``result`` holds the types a run produces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .config import BenchConfig, ConfigError, load_config

if TYPE_CHECKING:
    from ..executors import Executor, LocalExecutor
    from .execute import Job, run_plan
    from .metrics import Metric, OpenSetMetric
    from .records import Failure, ProgressEvent, RunStats
    from .result import BenchResult
    from .runner import BenchInterrupted, run_bench

_EXPORTS = {
    "BenchInterrupted": "runner",
    "run_bench": "runner",
    "BenchResult": "result",
    "Failure": "records",
    "ProgressEvent": "records",
    "RunStats": "records",
    "Executor": ".executors",  # aedr.executors, the core's seam
    "LocalExecutor": ".executors",
    "Job": "execute",
    "run_plan": "execute",
    "Metric": "metrics",
    "OpenSetMetric": "metrics",
}

# The runner (pandas, torch) is imported on first use, not with the ``aedr bench`` command.
__getattr__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = [
    "BenchConfig", "BenchInterrupted", "BenchResult", "ConfigError", "Executor", "Failure", "Job", "LocalExecutor", "Metric",
    "OpenSetMetric", "ProgressEvent", "RunStats", "load_config", "run_bench", "run_plan",
]
