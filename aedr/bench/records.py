"""What a benchmark run records as it goes: its statistics, the failures of methods under targets
and the progress events it sends. Sources, executors and the runner report into them; the run's
result (:mod:`aedr.bench.result`) carries them."""

from __future__ import annotations

from dataclasses import dataclass


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
