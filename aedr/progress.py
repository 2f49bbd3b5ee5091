"""The progress of long work, shown the same way by the command line and the Python API.

:func:`progress_bar` is the one bar (``aedr score``, ``calibrate``, ``attribute``, ``reconstruct``):
on a terminal a live bar on standard error; elsewhere (a pipe, CI) a line as the work starts and
one as it ends. :func:`api_progress` decides what a Python API call (:func:`aedr.calibrate`,
:func:`aedr.attribute`, :func:`aedr.score_images`) shows for its ``progress`` argument: a callable
is called as images are done; ``False`` shows nothing; ``True`` shows the bar; ``None`` (the
default) shows it where a person is watching (standard error is a terminal, or a notebook), so a
call that runs for minutes is never silent there and a script's output stays clean.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterator

from .methods.base import watch_batches
from .text import console, markup, progress_display

# A batch at least this large is named while it runs (on a terminal in the bar, else in a line).
LONG_BATCH_PIXELS = 1024 * 1024

Advance = Callable[[int], None]


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Advance]:
    """A progress bar on stderr (``total`` None: not known ahead); yields ``advance(n)``. Not on a
    terminal (a pipe, CI), a line as the work starts and one as it ends instead. While a large batch
    (one huge image, say) is scored, the bar names it (a line when not on a terminal), so that a long
    wait on one image is visibly work on it."""
    err = console(stderr=True)
    plain = markup(description)
    live = err.is_terminal
    if not live:
        err.print(f"{plain}{'' if total is None else f' ({total})'} ...", soft_wrap=False)
    t0 = time.perf_counter()
    with progress_display(err, transient=True, disable=not live) as bar:
        task = bar.add_task(plain, total=total)

        def on_batch(images, size: tuple[int, int]) -> None:
            if size[0] * size[1] * len(images) < LONG_BATCH_PIXELS:
                bar.update(task, description=plain)
                return
            what = images[0].id if len(images) == 1 else f"{len(images)} images"
            note = f"{what} at {size[0]}x{size[1]} ({size[0] * size[1] * len(images) / 1e6:.1f} MP)"
            bar.update(task, description=f"{plain} · {markup(note)}")
            if not live:
                err.print(f"scoring {markup(note)} ...")

        with watch_batches(on_batch):
            yield lambda n: bar.advance(task, n)
        if not live:
            err.print(f"{plain}: done in {time.perf_counter() - t0:.1f} s", soft_wrap=False)


def watched() -> bool:
    """A person is watching: standard error is a terminal, or this runs in a notebook."""
    err = console(stderr=True)
    return bool(err.is_terminal or err.is_jupyter)


def api_progress(progress: "bool | Advance | None", description: str, total: int | None) -> ContextManager[Advance | None]:
    """The ``advance(n)`` callback of a Python API call for its ``progress`` argument (see the
    module's docstring); None when nothing is to be shown."""
    if callable(progress):
        return nullcontext(progress)
    if progress is True or (progress is None and watched()):
        return progress_bar(description, total)
    if progress not in (None, False):
        raise TypeError(f"progress must be True, False, None or a callable taking a count of images, got {progress!r}")
    return nullcontext(None)
