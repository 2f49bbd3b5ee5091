"""Progress over the whole plan, with an ETA that knows methods cost differently.

The ETA adds, per method, the images it still has to score times its measured seconds per image
(before a method's first batch: its rate saved by an earlier run, else the mean rate of the others).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Hashable

from rich.console import Console

from ..text import console as text_console
from ..text import format_seconds, markup, progress_display
from rich.progress import Progress, TaskID, TextColumn


@dataclass
class RateEta:
    """Remaining work per key (a method) and its measured seconds per image."""

    remaining: dict[Hashable, int]
    priors: dict[Hashable, float] = field(default_factory=dict)
    seconds: dict[Hashable, float] = field(default_factory=dict)
    images: dict[Hashable, int] = field(default_factory=dict)

    def record(self, key: Hashable, n: int, seconds: float) -> None:
        self.remaining[key] = max(0, self.remaining.get(key, 0) - n)
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        self.images[key] = self.images.get(key, 0) + n

    def drop(self, key: Hashable, n: int) -> None:
        self.remaining[key] = max(0, self.remaining.get(key, 0) - n)

    def rate(self, key: Hashable) -> float | None:
        if self.images.get(key):
            return self.seconds[key] / self.images[key]
        return self.priors.get(key)

    def eta(self) -> float | None:
        known = [r for k in self.remaining if (r := self.rate(k)) is not None]
        if not known:
            return None
        fallback = sum(known) / len(known)
        total = 0.0
        for key, n in self.remaining.items():
            r = self.rate(key)
            total += n * (fallback if r is None else r)
        return total


class PlanProgress:
    """Two rich bars on stderr: image generation, then scoring of the whole plan (images)."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or text_console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        # Not a terminal (a log file, CI): one plain line per target instead of live bars.
        self.log_lines = enabled and not self.console.is_terminal
        self._target: str | None = None
        self._total = 0
        self._done = 0
        self._progress: Progress | None = None
        self._gen: TaskID | None = None
        self._gen_started = 0.0
        self._score: TaskID | None = None
        self.eta_model: RateEta | None = None

    def __enter__(self) -> "PlanProgress":
        if self.enabled:
            # what is scored goes in the description, cut to the room left: the bar and the figures always show
            self._progress = progress_display(self.console, TextColumn("ETA {task.fields[eta]}"), transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    # -- generation -------------------------------------------------------------------------------
    def start_generation(self, total: int) -> None:
        self._gen_started = time.perf_counter()
        if self._progress is not None and total:
            self._gen = self._progress.add_task("generating images", total=total, eta="–:––")

    def generated(self, n: int) -> None:
        if self._progress is None or self._gen is None:
            return
        self._progress.advance(self._gen, n)
        task = self._progress.tasks[self._gen]
        elapsed = time.perf_counter() - self._gen_started
        eta = elapsed / task.completed * (task.total - task.completed) if task.completed and task.total else None
        self._progress.update(self._gen, eta=format_seconds(eta))

    # -- scoring ----------------------------------------------------------------------------------
    def start_scoring(self, total: int, remaining: dict[Hashable, int], priors: dict[Hashable, float]) -> None:
        self.eta_model = RateEta(dict(remaining), dict(priors))
        self._total = total
        if self._progress is not None and self._gen is not None:  # its line gives way to scoring's, summed up
            done = int(self._progress.tasks[self._gen].completed)
            self._progress.remove_task(self._gen)
            self._gen = None
            self._progress.console.print(f"generated {done} images in {time.perf_counter() - self._gen_started:.1f} s")
        if self.log_lines:
            self.console.print(f"scoring: {total} image scores to compute")
        if self._progress is not None:
            self._score = self._progress.add_task("scoring", total=total, eta=format_seconds(self.eta_model.eta()))
            if not total:
                self._progress.update(self._score, total=1, completed=1, description="scoring: nothing left to do, every score is saved")

    def unit(self, description: str, target: str | None = None) -> None:
        if self.log_lines and target is not None and target != self._target:
            self._target = target
            eta = self.eta_model.eta() if self.eta_model else None
            self.console.print(f"scoring under {markup(target)}: {self._done}/{self._total} done, ETA {format_seconds(eta)}")
        if self._progress is not None and self._score is not None:
            self._progress.update(self._score, description=f"scoring · {markup(description)}")

    def scored(self, key: Hashable, n: int, seconds: float) -> None:
        if self.eta_model is not None:
            self.eta_model.record(key, n, seconds)
        self._advance(n)

    def dropped(self, key: Hashable, n: int) -> None:
        """Work that will not happen (a method failed under a target)."""
        if self.eta_model is not None:
            self.eta_model.drop(key, n)
        self._advance(n)

    def _advance(self, n: int) -> None:
        self._done += n
        if self._progress is not None and self._score is not None:
            eta = self.eta_model.eta() if self.eta_model else None
            self._progress.update(self._score, advance=n, eta=format_seconds(eta))
