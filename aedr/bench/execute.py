"""Executing a plan: the :class:`Executor` seam and the built-in local executor.

An executor receives a :class:`Job` (the plan's units, the score store, the progress display, the
run statistics) and scores every unit, saving each finished chunk through ``job.store`` before the
next starts, so that an interrupted run resumes where it stopped. :func:`score_unit` is the one
place that turns a unit into score rows; every executor calls it, wherever it runs, so that a score
is the same whichever executor computed it.

Executors are registered like models and methods, through the ``register_executors`` hook; the
config's ``executor`` setting picks one (``local`` by default) and its ``[executors.<name>]``
table gives the options its constructor takes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from rich.console import Console

from ..executors import Executor
from ..images import ImageLoadError, LoadedImage
from ..models import ModelPlugin
from ..preprocess import target_size
from ..reconstruction import ReconstructionCache
from ..text import markup
from .plan import Plan, Unit
from .progress import PlanProgress
from .records import Failure, ProgressEvent, RunStats
from .store import ScoreRow, ScoreStore

if TYPE_CHECKING:
    from ..stream import FileScoring, StreamReport

__all__ = ["Executor", "Job", "LocalExecutor", "UnitFailed", "record_failure", "save_rows", "score_unit"]


@dataclass
class Job:
    """Everything an executor needs to run a plan."""

    plan: Plan
    store: ScoreStore
    progress: PlanProgress
    stats: RunStats
    console: Console
    callback: Callable[[ProgressEvent], None] | None = None


class UnitFailed(Exception):
    """A method failed while scoring a unit; ``remaining``: its images left unscored."""

    def __init__(self, cause: BaseException, remaining: int):
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.remaining = cause, remaining


def score_unit(
    unit: Unit,
    model: ModelPlugin,
    *,
    images: dict[str, LoadedImage] | None = None,
    cache: ReconstructionCache | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[ScoreRow], int]:
    """Score one unit: one row per image, "ok" with its score or "skipped" with the reason (an
    unreadable image, a non-finite score), and the number of images that could not be read (they
    never reach the method). ``images``: already loaded images by content hash (filled with the ones
    this call loads). Raises :class:`UnitFailed` when the method itself fails."""
    spec = unit.method
    assert spec.method is not None
    images = {} if images is None else images
    try:
        policy = spec.method.autoencoder(model).size_policy  # loaded once, outside the timing
    except Exception as exc:
        raise UnitFailed(exc, len(unit.refs)) from exc
    rows: list[ScoreRow] = []
    good: list[tuple[Any, LoadedImage]] = []
    for ref in unit.refs:
        try:
            image = images.get(ref.content_hash) or ref.load()
            images[ref.content_hash] = image
            target_size(image, policy)
            good.append((ref, image))
        except ImageLoadError as exc:
            rows.append(unit.row(ref, math.nan, 0.0, "skipped", str(exc)))
    reported = 0

    def counted(n: int) -> None:
        nonlocal reported
        reported += n
        if on_batch is not None:
            on_batch(n)

    start = time.perf_counter()
    scores: Sequence[float] = np.array([])
    if good:
        try:
            scores = spec.method.score(model, [im for _, im in good], cache=cache, progress=counted)
        except Exception as exc:
            raise UnitFailed(exc, len(unit.refs) - reported) from exc  # the unreadable ones too
    per_image = (time.perf_counter() - start) / len(good) if good else 0.0
    for (ref, _), value in zip(good, scores):
        if np.isfinite(value):
            rows.append(unit.row(ref, float(value), per_image))
        else:
            rows.append(unit.row(ref, math.nan, per_image, "skipped", "method returned a non-finite score"))
    return rows, len(unit.refs) - len(good)


class LocalExecutor(Executor):
    """Scores the units one after the other in this process, with one first-reconstruction cache
    per chunk shared by every method (memory stays bounded by the chunk size)."""

    name = "local"
    description = "in this process, unit after unit; first reconstructions shared across methods per chunk"

    def score_files(self, task: "FileScoring") -> "StreamReport":
        from ..stream import stream_locally

        return stream_locally(task)

    def run(self, job: Job) -> list[Failure]:
        self.job = job
        self.models = {m.name: m for m in job.plan.models}
        self.failed: dict[tuple, Failure] = {}
        self._chunk: int | None = None
        self._images: dict[str, LoadedImage] = {}
        self._cache: ReconstructionCache | None = None
        t0 = time.perf_counter()
        try:
            for unit in job.plan.units:
                self._run_unit(unit)
        finally:
            self._collect_cache_stats()
            job.stats.scoring_seconds += time.perf_counter() - t0
        return list(self.failed.values())

    def _enter_chunk(self, unit: Unit) -> None:
        if unit.chunk == self._chunk:
            return
        self._collect_cache_stats()
        self._chunk = unit.chunk
        self._images = {}
        config = self.job.plan.config
        self._cache = ReconstructionCache(max_items=64 * config.chunk_size) if config.share_reconstructions else None

    def _collect_cache_stats(self) -> None:
        if self._cache is not None:
            self.job.stats.cache_hits += self._cache.hits
            self.job.stats.cache_misses += self._cache.misses
            self._cache = None

    def _run_unit(self, unit: Unit) -> None:
        job, spec = self.job, unit.method
        if (spec.key, unit.target) in self.failed:
            job.progress.dropped(spec.key, len(unit.refs))
            return
        self._enter_chunk(unit)
        job.progress.unit(f"{spec.label} · {unit.target} ← {unit.sets}", unit.target)
        last = time.perf_counter()
        reported = 0

        def on_batch(n: int) -> None:
            nonlocal last, reported
            t = time.perf_counter()
            reported += n
            job.progress.scored(spec.key, n, t - last)
            last = t
            if job.callback is not None:
                job.callback(ProgressEvent(spec.name, unit.target, unit.sets, n, job.stats.scored + reported))

        try:
            rows, unscored = score_unit(unit, self.models[unit.target], images=self._images, cache=self._cache, on_batch=on_batch)
        except UnitFailed as exc:
            record_failure(job, self.failed, unit, exc)
            return
        if unscored:
            job.progress.dropped(spec.key, unscored)
        save_rows(job, rows)


def record_failure(job: Job, failed: dict[tuple, Failure], unit: Unit, exc: UnitFailed) -> None:
    """Note that ``unit``'s method failed under its target; its remaining work there is dropped."""
    spec = unit.method
    failure = Failure(spec.name, spec.label, unit.target, str(exc))
    failed[(spec.key, unit.target)] = failure
    job.console.print(
        f"[yellow]warning:[/] {markup(spec.label)} failed under {markup(unit.target)}: {markup(failure.error)}; its remaining work there is skipped"
    )
    job.progress.dropped(spec.key, exc.remaining)


def save_rows(job: Job, rows: list[ScoreRow]) -> None:
    """Save one unit's rows as a chunk of the store and count them in the run's statistics."""
    job.store.write_chunk(rows)
    job.stats.chunks_written += 1
    job.stats.scored += sum(r.status == "ok" for r in rows)
    job.stats.skipped += sum(r.status != "ok" for r in rows)
