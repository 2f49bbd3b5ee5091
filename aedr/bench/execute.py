"""The bench's driver: a plan's units handed to an executor as work items, and the books kept.

Each unit of the plan becomes one :class:`aedr.kernel.WorkItem` (its chunk is the item's group, so
every method scoring a chunk shares its images and first reconstructions); the executor maps the
items to outcomes (:mod:`aedr.executors`) and :func:`run_plan` keeps the books, whatever the
executor: it saves each unit's rows as a part file of the score store as it comes back (so an
interrupted run resumes where it stopped), advances the progress display, sends the progress events,
counts the run's statistics, and drops the remaining work of a method that fails under a target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

from rich.console import Console

from ..executors import Executor
from ..kernel import ImageResult, Outcome, Scoring, WorkItem
from ..text import markup
from .plan import Plan, Unit
from .progress import PlanProgress
from .records import Failure, ProgressEvent, RunStats
from .store import ScoreRow, ScoreStore

__all__ = ["Job", "run_plan", "unit_rows"]


@dataclass
class Job:
    """Everything the driver needs to run a plan."""

    plan: Plan
    store: ScoreStore
    progress: PlanProgress
    stats: RunStats
    console: Console
    callback: Callable[[ProgressEvent], None] | None = None


def run_plan(job: Job, executor: Executor) -> list[Failure]:
    """Score every unit of ``job.plan`` with ``executor``; returns the methods that failed under a
    target. An ``OSError`` while saving and ``KeyboardInterrupt`` propagate (what was saved is kept)."""
    books = PlanBooks(job, executor)
    t0 = time.perf_counter()
    try:
        for outcome in executor.map(books.items(), books.scoring(), books.on_batch):
            books.receive(outcome)
        books.unreturned()
    finally:
        job.stats.scoring_seconds += time.perf_counter() - t0
    return list(books.failed.values())


def unit_rows(unit: Unit, results: list[ImageResult]) -> list[ScoreRow]:
    """A unit's rows, one per image: the unreadable ones first ("skipped", no score), then the rest
    in order ("ok" with its score, or "skipped" with why)."""
    pairs = list(zip(unit.refs, results))
    unread = [(ref, r) for ref, r in pairs if not r.ok and not r.content_hash]
    read = [(ref, r) for ref, r in pairs if r.ok or r.content_hash]
    rows = [unit.row(ref, r.score, 0.0, "skipped", r.error) for ref, r in unread]
    return rows + [unit.row(ref, r.score, r.seconds, "ok" if r.ok else "skipped", r.error) for ref, r in read]


class PlanBooks:
    """The driver's bookkeeping for one plan (see the module's docstring)."""

    def __init__(self, job: Job, executor: Executor):
        self.job, self.executor = job, executor
        self.units = job.plan.units
        self.failed: dict[tuple, Failure] = {}
        self.reported: dict[int, int] = {}  # item -> images reported by progress calls so far
        self.settled: set[int] = set()  # items accounted for (an outcome, or left out)
        self.lost: dict[tuple, list] = {}

    def scoring(self) -> Scoring:
        config = self.job.plan.config
        return Scoring({m.name: m for m in self.job.plan.models}, {s.key: s.method for s in self.job.plan.runnable},
                       bool(config.share_reconstructions), 64 * config.chunk_size, str(config.device))

    def items(self) -> Iterator[WorkItem]:
        """The units as work items, in plan order; a unit whose method has failed under its target
        is left out (and dropped from the progress display) when the executor asks for it."""
        for index, unit in enumerate(self.units):
            if (unit.method.key, unit.target) in self.failed:
                self.settled.add(index)
                self.job.progress.dropped(unit.method.key, len(unit.refs))
                continue
            self._announce(unit)
            yield WorkItem(index, unit.target, unit.method.key, list(unit.refs), group=unit.chunk)

    def _announce(self, unit: Unit) -> None:
        self.job.progress.unit(f"{unit.method.label} · {unit.target} ← {unit.sets}", unit.target)

    def on_batch(self, item: WorkItem, n: int, seconds: float) -> None:
        self.reported[item.index] = self.reported.get(item.index, 0) + n
        self._scored(self.units[item.index], n, seconds, self.reported[item.index])

    def _scored(self, unit: Unit, n: int, seconds: float, in_unit: int) -> None:
        job = self.job
        job.progress.scored(unit.method.key, n, seconds)
        if job.callback is not None:
            job.callback(ProgressEvent(unit.method.name, unit.target, unit.sets, n, job.stats.scored + in_unit))

    def receive(self, outcome: Outcome) -> None:
        if outcome.index in self.settled or not 0 <= outcome.index < len(self.units):
            return  # a duplicate (an item an executor ran again after it came back): saved once
        self.settled.add(outcome.index)
        unit = self.units[outcome.index]
        self._announce(unit)
        handle = {"done": self._done, "failed": self._failed, "dropped": self._dropped, "lost": self._lost}[outcome.status]
        handle(unit, outcome)

    def _done(self, unit: Unit, outcome: Outcome) -> None:
        job, key = self.job, unit.method.key
        reported = self.reported.get(outcome.index, 0)
        usable = len(unit.refs) - outcome.unusable
        if usable > reported:  # what the executor did not report batch by batch
            self._scored(unit, usable - reported, outcome.seconds / max(1.0, self.executor.parallelism), usable)
        self.save(unit_rows(unit, outcome.results))
        job.stats.cache_hits += outcome.cache_hits
        job.stats.cache_misses += outcome.cache_misses
        if outcome.unusable:
            job.progress.dropped(key, outcome.unusable)

    def save(self, rows: list[ScoreRow]) -> None:
        """Save one unit's rows as a part file of the store and count them."""
        job = self.job
        job.store.write_chunk(rows)
        job.stats.chunks_written += 1
        job.stats.scored += sum(r.status == "ok" for r in rows)
        job.stats.skipped += sum(r.status != "ok" for r in rows)

    def _failed(self, unit: Unit, outcome: Outcome) -> None:
        spec, remaining = unit.method, len(unit.refs) - outcome.scored
        if (spec.key, unit.target) not in self.failed:
            self.failed[(spec.key, unit.target)] = Failure(spec.name, spec.label, unit.target, outcome.error)
            self.job.console.print(f"[yellow]warning:[/] {markup(spec.label)} failed under {markup(unit.target)}: "
                                   f"{markup(outcome.error)}; its remaining work there is skipped")
        self.job.progress.dropped(spec.key, remaining)

    def _dropped(self, unit: Unit, outcome: Outcome) -> None:
        self.job.progress.dropped(unit.method.key, len(unit.refs))

    def _lost(self, unit: Unit, outcome: Outcome) -> None:
        """A unit the executor could not score: left unsaved (the next run computes it), reported
        once per method and target."""
        entry = self.lost.setdefault((unit.method.key, unit.target), [unit, 0, 0, outcome.error])
        entry[1] += 1
        entry[2] += len(unit.refs)
        self.job.progress.dropped(unit.method.key, len(unit.refs))

    def unreturned(self) -> None:
        """Units the executor never returned are lost too; then every loss is reported."""
        for index, unit in enumerate(self.units):
            if index not in self.settled:
                self._lost(unit, Outcome(index, "lost", error=f"executor {self.executor.name!r} did not return them"))
        for (key, target), (unit, n_units, n_images, why) in self.lost.items():
            error = f"UnitLost: {n_units} unit(s), {n_images} image(s) not scored: {why}; rerun to score them (saved work is kept)"
            self.job.console.print(f"[yellow]warning:[/] {markup(unit.method.label)} under {markup(target)}: {markup(error)}")
            if (key, target) not in self.failed:
                self.failed[(key, target)] = Failure(unit.method.name, unit.method.label, target, error)
        self.lost.clear()
