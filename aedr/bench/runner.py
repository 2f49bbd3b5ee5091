"""Running a benchmark: images, plan, scoring with shared first reconstructions, then results.

``run_bench(config)`` is the Python API behind ``aedr bench``. Scoring is resumable: every finished
chunk is saved before the next starts, and work already saved in ``config.out`` is skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from rich.console import Console

from ..files import OutputError, prepare_output_folder
from ..text import markup, safe_str
from .config import BenchConfig, ConfigError
from .execute import Executor, Failure, ProgressEvent, RunStats
from .lock import RunLock
from .metrics import Evaluation, evaluate
from .plan import MethodSpec, Plan, build_method, make_units, select_names
from .progress import PlanProgress
from .provenance import load_average, now
from .sources import GeneratedImageCache, SourceImages, generation_seeds, model_source, real_source
from .store import ScoreStore, key_set
from .tables import MethodSummary, Table, build_tables, summarize


class BenchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or an interrupting callback) during scoring; every finished chunk is saved."""

    def __init__(self, stats: RunStats, out: Path):
        super().__init__(f"interrupted; {stats.chunks_written} chunk(s) saved in {out}")
        self.stats, self.out = stats, out


@dataclass
class BenchResult:
    config: BenchConfig
    plan: Plan
    scores: pd.DataFrame  # the plan's rows: one per (method, target, source, split, image)
    evaluation: Evaluation
    summaries: list[MethodSummary]
    tables: list[Table]
    stats: RunStats
    failures: list[Failure] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


# -- plan ---------------------------------------------------------------------------------------------
def select_models(config: BenchConfig, plugins) -> list:
    hint = " (is the zoo plugin installed? `aedr models` lists the registered models)" if any("zoo" in p for p in config.models) else ""
    names = select_names(config.models, plugins.models.names(), "model", hint)
    return [plugins.model(n) for n in names]


def select_methods(config: BenchConfig, plugins) -> list[MethodSpec]:
    config.check_method_tables({n: plugins.methods.get(n) for n in plugins.methods.names()})
    names = select_names(config.methods, plugins.methods.names(), "method")
    return [build_method(n, plugins.methods.get(n), config.options_for(n)) for n in names]


def prepare_sources(config: BenchConfig, models: list, plugins, progress: PlanProgress, stats: RunStats) -> dict[str, SourceImages]:
    """The real images, then every model's calibration and evaluation images (generated now if not cached).

    The real images are read first: that is quick, and a mistake in them (an empty folder, a misspelt
    dataset) shows before minutes of generation."""
    try:
        # Real estimation images matter only when alpha is chosen automatically.
        real_cal = config.real_cal if config.auto_alpha else None
        real = real_source(config.real, real_cal, n_eval=config.real_eval_count, n_cal=config.n_cal, datasets=plugins.datasets)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    if real is not None and real.name in {m.name for m in models}:
        raise ConfigError(f"a model is named {real.name!r}, the name reserved for the real images")
    cache = GeneratedImageCache(Path(config.out) / "images")
    missing = sum(
        len(cache.missing(m, [s for seeds in generation_seeds(config.seed, config.n_cal, config.n_eval).values() for s in seeds]))
        for m in models
        if m.can_generate
    )
    progress.start_generation(missing)
    t0 = time.perf_counter()

    def advance(n: int) -> None:
        stats.generated += n
        progress.generated(n)

    sources: dict[str, SourceImages] = {}
    for m in models:
        try:
            sources[m.name] = model_source(m, cache, n_cal=config.n_cal, n_eval=config.n_eval, seed=config.seed, device=config.device, advance=advance)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            avail = m.availability()
            hint = "" if avail.local else f" ({avail.detail})"
            raise ConfigError(f"model {m.name!r} could not provide its images: {type(exc).__name__}: {exc}{hint}") from exc
    stats.generation_seconds = time.perf_counter() - t0
    if real is not None:
        sources[real.name] = real
    for src in sources.values():
        for skip in src.skipped:
            progress.console.print(f"[yellow]note:[/] {src.name} image skipped: {markup(skip.id)}: {markup(skip.error)}")
    return sources


def plan_frame(plan: Plan) -> pd.DataFrame:
    """One row per (method, target, source, split, image) of the plan."""
    rows = []
    for spec in plan.runnable:
        for model in plan.models:
            for source, split in plan.image_sets(model.name):
                for ref in plan.sources[source].split(split):  # type: ignore[arg-type]
                    rows.append((spec.name, spec.options_hash, spec.label, model.name, model.family, source, ref.kind, split, ref.id, ref.content_hash))
    cols = ["method", "options_hash", "label", "target", "target_family", "source", "source_kind", "split", "image_id", "image_hash"]
    return pd.DataFrame(rows, columns=cols).astype({c: "string" for c in cols})


def plan_scores(plan: Plan, store_rows: pd.DataFrame) -> pd.DataFrame:
    """The plan's rows joined with the saved scores (missing work: status "missing", score NaN)."""
    frame = plan_frame(plan)
    saved = store_rows[["method", "options_hash", "target", "image_hash", "score", "seconds", "status", "error"]]
    out = frame.merge(saved, on=["method", "options_hash", "target", "image_hash"], how="left")
    out["status"] = out["status"].fillna("missing")
    out["error"] = out["error"].fillna("")
    return out


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

    console = console or Console(stderr=True)
    plugins = plugins if plugins is not None else get_plugins()
    out = Path(config.out)
    stats = RunStats(started=now(), load_average_start=load_average())
    t_start = time.perf_counter()
    models = select_models(config, plugins)
    missing = [(m.name, a.detail) for m in models if not (a := m.availability()).local]
    for name, detail in missing:
        console.print(f"[yellow]note:[/] model {markup(name)} is not available locally: {markup(detail)}")
    methods = select_methods(config, plugins)
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
                    failures = Executor(plan, store, bar, stats, console, callback).run()
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
        ev = evaluate(scores, methods=plan.runnable, models=models, sources=list(sources), source_kinds=source_kinds, alpha=config.alpha)
        summaries = summarize(ev.pairs_frame(), ev.timings_frame())
        tables = build_tables(ev.pairs_frame(), ev.timings_frame(), summaries)
        stats.finished = now()
        stats.load_average_end = load_average()
        stats.wall_seconds = time.perf_counter() - t_start
        result = BenchResult(config, plan, scores, ev, summaries, tables, stats, failures, provenance=provenance(config.device, plugins))
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
