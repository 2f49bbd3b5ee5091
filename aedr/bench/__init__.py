"""The benchmark: every method against every (target, source) pair and real images, as the AEDR
paper's Tables 1 to 4, with resumable per-image scores, a leaderboard and an HTML report.

    from aedr.bench import load_config, run_bench
    result = run_bench(load_config("default", models=["zoo-*"], n_eval=16))
    print(result.files["report.html"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .config import BenchConfig, ConfigError, load_config

if TYPE_CHECKING:
    from .runner import BenchInterrupted, BenchResult, ProgressEvent, run_bench

_RUNNER = ("BenchInterrupted", "BenchResult", "ProgressEvent", "run_bench")


# The runner (pandas, torch) is imported on first use, not with the ``aedr bench`` command.
__getattr__ = lazy_exports(__name__, dict.fromkeys(_RUNNER, "runner"), globals())

__all__ = ["BenchConfig", "BenchInterrupted", "BenchResult", "ConfigError", "ProgressEvent", "load_config", "run_bench"]
