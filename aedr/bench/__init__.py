"""The benchmark: every method against every (target, source) pair and real images, as the AEDR
paper's Tables 1 to 4, with resumable per-image scores, a leaderboard and an HTML report.

    from aedr.bench import load_config, run_bench
    result = run_bench(load_config("default", models=["zoo-*"], n_eval=16))
    print(result.files["report.html"])
"""

from __future__ import annotations

from .config import BenchConfig, ConfigError, load_config
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import BenchInterrupted, BenchResult, ProgressEvent, run_bench

_RUNNER = ("BenchInterrupted", "BenchResult", "ProgressEvent", "run_bench")


def __getattr__(name: str):
    """The runner (pandas, torch) is imported on first use, not with the ``aedr bench`` command."""
    import importlib

    if name in _RUNNER:
        return getattr(importlib.import_module(".runner", __name__), name)
    try:  # a submodule (``aedr.bench.store`` after ``import aedr.bench``)
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module 'aedr.bench' has no attribute {name!r}")

__all__ = ["BenchConfig", "BenchInterrupted", "BenchResult", "ConfigError", "ProgressEvent", "load_config", "run_bench"]
