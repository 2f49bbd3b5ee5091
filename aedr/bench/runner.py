"""Running a benchmark: images, plan, scoring with shared first reconstructions, then results.

``run_bench(config)`` is the Python API behind ``aedr bench``. Scoring is resumable: every finished
chunk is saved before the next starts, and work already saved in ``config.out`` is skipped. The
units are scored by the executor the config names (``local`` by default; see ``execute.py``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
from rich.console import Console

from ..executors import Executor, build_executor
from ..files import OutputError, prepare_output_folder
from ..lock import RunLock
from ..registry import RegistryError
from ..text import console as text_console
from ..text import markup, safe_str
from .config import BenchConfig, ConfigError
from .execute import Job, run_plan
from .metrics import Metric, OpenSetMetric, evaluate
from .openset import run_openset
from .plan import Plan, make_units, plan_scores, select_methods, select_models, select_perturbations
from .progress import PlanProgress
from .provenance import load_average, now
from .records import Failure, ProgressEvent, RunStats
from .result import BenchResult
from .robustness import apply_robustness, evaluate_robustness, robustness_tables
from .schema import Scope, ScopedMetric
from .sources import perturbed_sources, prepare_sources
from .store import ScoreStore, key_set
from .tables import apply_uncertainty, build_tables, ranking_scope, summarize

if TYPE_CHECKING:
    from .stats import BenchBootstrap


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or an interrupting callback) during scoring; every finished chunk is saved."""

    def __init__(self, stats: RunStats, out: Path):
        super().__init__(f"interrupted; {stats.chunks_written} chunk(s) saved in {out}")
        self.stats, self.out = stats, out


def estimate_uncertainty(config: BenchConfig, scores: pd.DataFrame, ev, summaries, plan: Plan) -> "BenchBootstrap | None":
    """The joint bootstrap of the run (``config.bootstrap`` resamples; crops of one photograph resampled
    together), attached to the pairs and summaries; None when the config asks for no intervals."""
    from .stats import bootstrap_bench

    if not config.bootstrap or not len(scores):
        return None
    alphas = {(t.method, t.options_hash, t.target): t.alpha for t in ev.thresholds if math.isfinite(t.alpha)}
    usable = scores[[k in alphas for k in zip(scores["method"], scores["options_hash"], scores["target"])]]
    if not len(usable):
        return None
    boot = bootstrap_bench(usable, alpha=alphas, n_resamples=config.bootstrap, seed=config.seed, confidence=config.confidence,
                           clusters=plan.clusters() or None, metrics=ev.metrics, shared_pairs=plan.shared_pairs(), hard_pairs=plan.hard_pairs())
    ev.add_intervals(boot.pairs)
    apply_uncertainty(summaries, boot)
    return boot


# An interval wider than this (half-width, in accuracy) cannot tell methods a few points apart.
RANKING_HALF_WIDTH = 0.025


def uncertainty_warnings(config: BenchConfig, ev, summaries) -> list[str]:
    """One line when the intervals are too wide to rank the methods, one when a calibration set is
    too small for alpha."""
    from ..calibration import CALIBRATION_TOO_SMALL, calibration_too_small

    lines = []
    if summaries:
        lead = summaries[0]
        scope = ranking_scope(summaries)
        low, high = lead.intervals.get(ScopedMetric(scope, "accuracy").key, (math.nan, math.nan))
        tied = [s.label for s in summaries[1:] if s.rank.endswith("=") and s.rank.rstrip("=") == lead.rank.rstrip("=")]
        half = (high - low) / 2 if math.isfinite(low) and math.isfinite(high) else math.nan
        if tied or (math.isfinite(half) and half > RANKING_HALF_WIDTH):
            lines.append(
                f"with {config.n_cal} + {config.n_eval} images per model the intervals are too wide to rank the methods "
                f"(leader's mean {'pair' if scope == Scope.PAIR else 'real-image'} accuracy ±{100 * half:.1f} points; tied with the leader: {', '.join(tied) or 'none'}); "
                + ("`aedr bench --config standard` runs enough images" if scope == Scope.PAIR else "more evaluation and real images (--n-eval, --n-real) narrow them")
            )
    small = sorted({(t.n_cal, t.alpha) for t in ev.thresholds if math.isfinite(t.alpha) and calibration_too_small(t.n_cal, t.alpha)})
    if small:
        n, a = small[0]
        lines.append(f"calibration sets of {n} images at alpha {a:g}: {CALIBRATION_TOO_SMALL}; n_cal >= {math.ceil(5 / a)} avoids it")
    return lines


def executor_tables(config: BenchConfig, plugins) -> dict[str, dict[str, Any]]:
    """The config's ``[executors.<name>]`` options by the registered name each table means (matched
    as names are, case-insensitively); a table that names no registered executor is a ``ConfigError``."""
    tables: dict[str, dict[str, Any]] = {}
    for table, options in config.executor_options.items():
        try:
            tables.setdefault(plugins.executors.get(table).name, {}).update(options)
        except RegistryError as exc:
            raise ConfigError(f"[executors.{table}]: {exc}") from None
    return tables


def select_executor(config: BenchConfig, plugins) -> Executor:
    """The executor the config names, built with its ``[executors.<name>]`` options."""
    tables = executor_tables(config, plugins)
    try:
        name = plugins.executors.get(config.executor).name
    except RegistryError as exc:
        raise ConfigError(f"executor: {exc}") from None
    return build_executor(plugins, name, tables.get(name, {}))


def unused_executor_tables(config: BenchConfig, plugins, executor: Executor) -> list[str]:
    """The ``[executors.<name>]`` tables of executors this run does not use (their options are ignored)."""
    return [f"[executors.{name}]" for name, options in executor_tables(config, plugins).items() if name != executor.name and options]


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
    from .provenance import provenance

    console = console or text_console(stderr=True)
    plugins = plugins if plugins is not None else get_plugins()
    out = Path(config.out)
    stats = RunStats(started=now(), load_average_start=load_average(), executor=config.executor)
    t_start = time.perf_counter()
    selection = select(config, plugins, console)
    prepare_output_folder(out)
    # One run per folder: a second one would redo the work and race this one's files.
    with RunLock(out):
        store = ScoreStore(out, warn=lambda message: console.print(f"[yellow]warning:[/] {markup(message)}"))
        plan, failures = score_plan(config, selection, plugins, store, stats, console, progress, callback)
        store_rows = consolidated(store)
        result = evaluate_run(config, plan, plan_scores(plan, store_rows), selection, stats, failures, console)
        result.provenance = provenance(config.device, plugins)
        stats.finished = now()
        stats.load_average_end = load_average()
        stats.wall_seconds = time.perf_counter() - t_start
        if write:
            write_result(result, store)
            stats.wall_seconds = time.perf_counter() - t_start
        return result


@dataclass
class Selection:
    """What a run uses: the models, methods, perturbations, executor and metrics the config selects."""

    models: list
    methods: list
    perturbations: list
    executor: Executor
    metrics: list  # the pair metrics (Metric)
    openset_metrics: list  # the open-set figures (OpenSetMetric)


def select(config: BenchConfig, plugins, console: Console) -> Selection:
    """The config's selections, with a note for each model not available locally, each executor table
    not used and each method that cannot run here; no method able to run is a ``ConfigError``."""
    models = select_models(config, plugins)
    for m in models:
        if not (availability := m.availability()).local:
            console.print(f"[yellow]note:[/] model {markup(m.name)} is not available locally: {markup(availability.detail)}")
    methods = select_methods(config, plugins)
    perturbations = select_perturbations(config, plugins)
    executor = select_executor(config, plugins)
    for table in unused_executor_tables(config, plugins, executor):
        console.print(f"[yellow]note:[/] {markup(table)} is not used: this run's executor is {executor.name!r} (--executor)")
    print_method_errors(methods, console)
    if not any(m.error is None for m in methods):
        raise ConfigError("no selected method can run here: " + "; ".join(f"{m.name}: {m.error}" for m in methods))
    metrics = [entry.obj for entry in plugins.metrics]
    return Selection(models, methods, perturbations, executor, [m for m in metrics if isinstance(m, Metric)],
                     [m for m in metrics if isinstance(m, OpenSetMetric)])


def print_method_errors(methods: list, console: Console) -> None:
    """A warning for each method that cannot run here; a long reason another method already gave
    (two methods missing the same weights) is not repeated: its first line and its last (what to
    use instead) stand for it."""
    shown: set[str] = set()
    for spec in (m for m in methods if m.error):
        lines = spec.error.splitlines()
        error = spec.error if lines[0] not in shown or len(lines) < 3 else f"{lines[0]} (as above) ... {lines[-1]}"
        shown.add(lines[0])
        console.print(f"[yellow]warning:[/] method {markup(spec.name)} cannot run here and is skipped: {markup(error)}")


def score_plan(config: BenchConfig, selection: Selection, plugins, store: ScoreStore, stats: RunStats, console: Console,
               progress: bool, callback) -> tuple[Plan, list[Failure]]:
    """Images made or found, the plan of what is not saved yet, and its units scored (saved as they
    finish; on Ctrl-C what was saved is folded into the store and :class:`BenchInterrupted` raised)."""
    out = Path(config.out)
    with PlanProgress(console, enabled=progress) as bar:
        try:
            sources = prepare_sources(config, selection.models, plugins, bar, stats)
            perturbed = perturb_sources(config, sources, selection.perturbations, stats, console)
            saved = store.load()
            units, already = make_units(selection.models, selection.methods, sources, config, key_set(saved), perturbed)
            plan = Plan(config, selection.models, selection.methods, sources, units, already, selection.perturbations, perturbed)
            stats.already_saved = already
            bar.start_scoring(plan.todo_images, plan.todo_by_method(), saved_rates(saved))
            try:
                return plan, run_plan(Job(plan, store, bar, stats, console, callback), selection.executor)
            except OSError as exc:  # saving a chunk: a full disk, a folder made read-only meanwhile
                raise OutputError(
                    f"could not save scores in {safe_str(out)} ({exc.strerror or exc}); the {stats.chunks_written} chunk(s) "
                    f"saved before are kept in {safe_str(store.parts_dir)}: fix the problem and rerun to resume"
                ) from exc
        except KeyboardInterrupt:
            store.consolidate()
            stats.finished = now()
            raise BenchInterrupted(stats, out) from None


def perturb_sources(config: BenchConfig, sources: dict, perturbations: list, stats: RunStats, console: Console) -> dict:
    """The sources' perturbed copies (evaluation split; calibration too with ``calibrate_perturbed``),
    with a note for each set whose copies were refused (too large)."""
    if not perturbations:
        return {}
    t0 = time.perf_counter()
    splits = ["eval", "cal"] if config.calibrate_perturbed else ["eval"]
    perturbed = perturbed_sources(sources, perturbations, splits=splits, seed=config.seed)  # type: ignore[arg-type]
    for cid, by_source in perturbed.items():
        for src in (s for s in by_source.values() if s.skipped):
            console.print(f"[yellow]note:[/] {markup(cid)}: {len(src.skipped)} {markup(src.name)} image(s) skipped, "
                          f"e.g. {markup(src.skipped[0].id)}: {markup(src.skipped[0].error)}")
    stats.perturbed = sum(len(src.cal) + len(src.eval) for by_source in perturbed.values() for src in by_source.values())
    stats.perturbation_seconds = time.perf_counter() - t0
    return perturbed


def consolidated(store: ScoreStore) -> pd.DataFrame:
    """Every saved row, the parts folded into the store file."""
    try:
        return store.consolidate()
    except OSError as exc:
        raise OutputError(
            f"could not fold the scores into {safe_str(store.path)} ({exc.strerror or exc}); every score is kept "
            f"in {safe_str(store.parts_dir)}: fix the problem and rerun (nothing is computed again)"
        ) from exc


def evaluate_run(config: BenchConfig, plan: Plan, scores: pd.DataFrame, selection: Selection, stats: RunStats,
                 failures: list[Failure], console: Console) -> BenchResult:
    """The run's figures: the clean protocol's thresholds, pair metrics, summaries, intervals and
    tables, the perturbation axis when there is one, and open-set attribution."""
    metrics = selection.metrics
    clean = scores[scores["perturbation"] == ""]  # the clean protocol sees only clean images
    sources = plan.sources
    source_kinds = {name: src.kind for name, src in sources.items()}
    ev = evaluate(clean, methods=plan.runnable, models=plan.models, sources=list(sources), source_kinds=source_kinds,
                  alpha=config.alpha, metrics=metrics, shared_pairs=plan.shared_pairs(), hard_pairs=plan.hard_pairs())
    summaries = summarize(ev.pairs_frame(), ev.timings_frame(), metrics)
    uncertainty = estimate_uncertainty(config, clean, ev, summaries, plan)
    if uncertainty is not None:
        for line in uncertainty_warnings(config, ev, summaries):
            console.print(f"[yellow]warning:[/] {markup(line)}")
    tables = build_tables(ev.pairs_frame(), ev.timings_frame(), summaries, metrics)
    robustness = None
    if plan.perturbations:
        robustness = evaluate_robustness(scores, plan, ev, metrics=metrics, clusters=plan.clusters())
        apply_robustness(summaries, robustness)
        tables += robustness_tables(summaries, robustness)
    openset, openset_tables = run_openset(scores, plan, ev, summaries, selection.openset_metrics, uncertainty, robustness)
    tables += openset_tables
    return BenchResult(config, plan, scores, ev, summaries, tables, stats, metrics, failures,
                       uncertainty=uncertainty, robustness=robustness, openset=openset)


def write_result(result: BenchResult, store: ScoreStore) -> None:
    """The run's result files (:func:`aedr.bench.outputs.write_outputs`) into ``result.files``."""
    from .outputs import write_outputs

    try:
        result.files = write_outputs(result)
    except OSError as exc:
        raise OutputError(
            f"could not write the result files in {safe_str(store.out)} ({exc.strerror or exc}); every score is kept in "
            f"{safe_str(store.path)}: fix the problem and rerun to write them (nothing is computed again)"
        ) from exc
