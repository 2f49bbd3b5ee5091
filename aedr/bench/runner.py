"""Running a benchmark: images, plan, scoring with shared first reconstructions, then results.

``run_bench(config)`` is the Python API behind ``aedr bench``. Scoring is resumable: every finished
chunk is saved before the next starts, and work already saved in ``config.out`` is skipped. The
units are scored by the executor the config names (``local`` by default; see ``execute.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd
from rich.console import Console

from ..files import OutputError, prepare_output_folder
from ..registry import RegistryError
from ..text import console as text_console
from ..text import markup, safe_str
from .config import BenchConfig, ConfigError
from .execute import Executor, Job
from .lock import RunLock
from .metrics import evaluate
from .plan import Plan, make_units, plan_scores, select_methods, select_models
from .progress import PlanProgress
from .provenance import load_average, now
from .result import BenchResult, Failure, ProgressEvent, RunStats
from .sources import prepare_sources
from .store import ScoreStore, key_set
from .tables import build_tables, summarize


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or an interrupting callback) during scoring; every finished chunk is saved."""

    def __init__(self, stats: RunStats, out: Path):
        super().__init__(f"interrupted; {stats.chunks_written} chunk(s) saved in {out}")
        self.stats, self.out = stats, out


def select_executor(config: BenchConfig, plugins) -> Executor:
    """The executor the config names, built with its ``[executors.<name>]`` options."""
    try:
        cls = plugins.executors.get(config.executor)
    except RegistryError as exc:
        raise ConfigError(f"executor: {exc}") from None
    options = config.executor_options.get(cls.name, {})
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"[executors.{cls.name}]: {exc}") from None


# -- scoring ------------------------------------------------------------------------------------------
def saved_rates(saved: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Seconds per image per method measured by earlier runs (a prior for the ETA)."""
    ok = saved[(saved["status"] == "ok") & (saved["seconds"] > 0)]
    if not len(ok):
        return {}
    return {(str(m), str(h)): float(g["seconds"].mean()) for (m, h), g in ok.groupby(["method", "options_hash"])}


def run_bench(
    config: BenchConfig,
    *,
    plugins=None,
    console: Console | None = None,
    progress: bool = True,
    callback: Callable[[ProgressEvent], None] | None = None,
    write: bool = True,
) -> BenchResult:
    """Run (or resume) the benchmark ``config`` describes and write its result files to ``config.out``.

    Raises :class:`ConfigError` for what the user must fix, :class:`BenchInterrupted` on Ctrl-C
    (finished chunks are kept: run again to resume).
    """
    from ..plugins import get_plugins
    from .outputs import write_outputs
    from .provenance import provenance

    console = console or text_console(stderr=True)
    plugins = plugins if plugins is not None else get_plugins()
    out = Path(config.out)
    stats = RunStats(started=now(), load_average_start=load_average(), executor=config.executor)
    t_start = time.perf_counter()
    models = select_models(config, plugins)
    missing = [(m.name, a.detail) for m in models if not (a := m.availability()).local]
    for name, detail in missing:
        console.print(f"[yellow]note:[/] model {markup(name)} is not available locally: {markup(detail)}")
    methods = select_methods(config, plugins)
    executor = select_executor(config, plugins)
    metrics = [entry.obj for entry in plugins.metrics]
    for spec in methods:
        if spec.error:
            console.print(f"[yellow]warning:[/] method {markup(spec.name)} cannot run here and is skipped: {markup(spec.error)}")
    if not any(m.error is None for m in methods):
        raise ConfigError("no selected method can run here: " + "; ".join(f"{m.name}: {m.error}" for m in methods))
    prepare_output_folder(out)
    # One run per folder: a second one would redo the work and race this one's files.
    with RunLock(out):
        store = ScoreStore(out, warn=lambda message: console.print(f"[yellow]warning:[/] {markup(message)}"))
        failures: list[Failure] = []
        with PlanProgress(console, enabled=progress) as bar:
            try:
                sources = prepare_sources(config, models, plugins, bar, stats)
                saved = store.load()
                units, already = make_units(models, methods, sources, config, key_set(saved))
                plan = Plan(config, models, methods, sources, units, already)
                stats.already_saved = already
                bar.start_scoring(plan.todo_images, plan.todo_by_method(), saved_rates(saved))
                try:
                    failures = executor.run(Job(plan, store, bar, stats, console, callback))
                except OSError as exc:  # saving a chunk: a full disk, a folder made read-only meanwhile
                    raise OutputError(
                        f"could not save scores in {safe_str(out)} ({exc.strerror or exc}); the {stats.chunks_written} chunk(s) "
                        f"saved before are kept in {safe_str(store.parts_dir)}: fix the problem and rerun to resume"
                    ) from exc
            except KeyboardInterrupt:
                store.consolidate()
                stats.finished = now()
                raise BenchInterrupted(stats, out) from None
        try:
            store_rows = store.consolidate()
        except OSError as exc:
            raise OutputError(
                f"could not fold the scores into {safe_str(store.path)} ({exc.strerror or exc}); every score is kept "
                f"in {safe_str(store.parts_dir)}: fix the problem and rerun (nothing is computed again)"
            ) from exc
        scores = plan_scores(plan, store_rows)
        source_kinds = {name: src.kind for name, src in sources.items()}
        ev = evaluate(scores, methods=plan.runnable, models=models, sources=list(sources), source_kinds=source_kinds,
                      alpha=config.alpha, metrics=metrics)
        summaries = summarize(ev.pairs_frame(), ev.timings_frame(), metrics)
        tables = build_tables(ev.pairs_frame(), ev.timings_frame(), summaries, metrics)
        stats.finished = now()
        stats.load_average_end = load_average()
        stats.wall_seconds = time.perf_counter() - t_start
        result = BenchResult(config, plan, scores, ev, summaries, tables, stats, metrics, failures, provenance=provenance(config.device, plugins))
        if write:
            try:
                result.files = write_outputs(result)
            except OSError as exc:
                raise OutputError(
                    f"could not write the result files in {safe_str(out)} ({exc.strerror or exc}); every score is kept in "
                    f"{safe_str(store.path)}: fix the problem and rerun to write them (nothing is computed again)"
                ) from exc
            stats.wall_seconds = time.perf_counter() - t_start
        return result
