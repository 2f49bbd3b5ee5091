"""Executing a plan's units: load each chunk once, score it with every method (sharing first
reconstructions through one cache per chunk), save it as a part file, and keep going when a method
fails under one target."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from rich.console import Console

from ..images import ImageLoadError, LoadedImage
from ..preprocess import target_size
from ..reconstruction import ReconstructionCache
from ..text import markup
from .plan import Plan, Unit
from .progress import PlanProgress
from .store import ScoreRow, ScoreStore


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
    generated: int = 0
    generation_seconds: float = 0.0
    already_saved: int = 0
    scored: int = 0  # image scores computed and saved by this run
    skipped: int = 0  # images recorded as skipped by this run
    chunks_written: int = 0
    scoring_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    load_average_start: list[float] | None = None
    load_average_end: list[float] | None = None


class Executor:
    def __init__(self, plan: Plan, store: ScoreStore, progress: PlanProgress, stats: RunStats, console: Console, callback):
        self.plan, self.store, self.progress, self.stats, self.console = plan, store, progress, stats, console
        self.callback = callback
        self.models = {m.name: m for m in plan.models}
        self.failed: dict[tuple, Failure] = {}
        self._chunk: int | None = None
        self._images: dict[str, LoadedImage] = {}
        self._cache: ReconstructionCache | None = None

    def _enter_chunk(self, unit: Unit) -> None:
        if unit.chunk == self._chunk:
            return
        self._collect_cache_stats()
        self._chunk = unit.chunk
        self._images = {}
        # One cache per chunk and target: every method scoring this chunk reuses its first passes,
        # and memory stays bounded by the chunk size.
        self._cache = ReconstructionCache(max_items=64 * self.plan.config.chunk_size) if self.plan.config.share_reconstructions else None

    def _collect_cache_stats(self) -> None:
        if self._cache is not None:
            self.stats.cache_hits += self._cache.hits
            self.stats.cache_misses += self._cache.misses
            self._cache = None

    def _fail(self, unit: Unit, exc: BaseException, remaining: int) -> None:
        spec = unit.method
        failure = Failure(spec.name, spec.label, unit.target, f"{type(exc).__name__}: {exc}")
        self.failed[(spec.key, unit.target)] = failure
        self.console.print(
            f"[yellow]warning:[/] {markup(spec.label)} failed under {markup(unit.target)}: {markup(failure.error)}; its remaining work there is skipped"
        )
        self.progress.dropped(spec.key, remaining)

    def run(self) -> list[Failure]:
        t0 = time.perf_counter()
        try:
            for unit in self.plan.units:
                self._run_unit(unit)
        finally:
            self._collect_cache_stats()
            self.stats.scoring_seconds += time.perf_counter() - t0
        return list(self.failed.values())

    def _run_unit(self, unit: Unit) -> None:
        spec, model = unit.method, self.models[unit.target]
        assert spec.method is not None
        if (spec.key, unit.target) in self.failed:
            self.progress.dropped(spec.key, len(unit.refs))
            return
        self._enter_chunk(unit)
        self.progress.unit(f"{spec.label} · {unit.target} ← {unit.sets}", unit.target)
        try:
            policy = spec.method.autoencoder(model).size_policy  # loaded once, outside the timing
        except Exception as exc:
            self._fail(unit, exc, len(unit.refs))
            return
        rows: list[ScoreRow] = []
        good: list[tuple] = []
        for ref in unit.refs:
            try:
                image = self._images.get(ref.content_hash) or ref.load()
                self._images[ref.content_hash] = image
                target_size(image, policy)
                good.append((ref, image))
            except ImageLoadError as exc:
                rows.append(unit.row(ref, math.nan, 0.0, "skipped", str(exc)))
        if rows:
            self.progress.dropped(spec.key, len(rows))
        reported = 0
        last = time.perf_counter()
        start = last

        def on_batch(n: int) -> None:
            nonlocal reported, last
            t = time.perf_counter()
            reported += n
            self.progress.scored(spec.key, n, t - last)
            last = t
            if self.callback is not None:
                self.callback(ProgressEvent(spec.name, unit.target, unit.sets, n, self.stats.scored + reported))

        scores: np.ndarray = np.array([])
        if good:
            try:
                scores = spec.method.score(model, [im for _, im in good], cache=self._cache, progress=on_batch)
            except Exception as exc:
                self._fail(unit, exc, len(good) - reported)
                return
        per_image = (time.perf_counter() - start) / len(good) if good else 0.0
        for (ref, _), value in zip(good, scores):
            if np.isfinite(value):
                rows.append(unit.row(ref, float(value), per_image))
            else:
                rows.append(unit.row(ref, math.nan, per_image, "skipped", "method returned a non-finite score"))
        self.store.write_chunk(rows)
        self.stats.chunks_written += 1
        self.stats.scored += sum(r.status == "ok" for r in rows)
        self.stats.skipped += sum(r.status != "ok" for r in rows)
