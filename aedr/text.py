"""Text from users and from the file system, made safe to write and to print; the consoles it is
printed on.

Two hazards, one helper each:

- :func:`safe_str`: a file name that is not valid UTF-8 (``bad\\xff.png``) reaches Python as a
  string with surrogate escapes, which no UTF-8 file (CSV, Parquet, JSON) and no UTF-8 terminal can
  take. The undecodable bytes become backslash escapes (``bad\\\\xff.png``), readable and lossless
  for a reader; every other character is kept as it is.
- :func:`markup`: rich reads ``[...]`` in printed strings as markup, so a path like ``x[red]y.png``
  is shown mangled and one with ``[/]`` raises. Every user-provided string (paths, names, config
  text, error messages) goes through :func:`markup` before it is printed with rich.

Fitting a console's width: :func:`fold_name` breaks a name after its separators,
:func:`names_folded_to_fit` and :func:`print_widest_fitting` choose a table's layout,
:func:`progress_display` is the one progress display.

One pair of consoles: :func:`console` gives the process's rich console for standard output and the
one for standard error (``aedr.cli.out`` and ``aedr.cli.err`` are these two). Every command, built-in
or a plugin's, prints through them, so that a setting (a width, a capture) applies to all output.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console


def safe_str(value: Any) -> str:
    """``value`` as text that encodes as UTF-8: surrogate escapes become ``\\xNN`` escapes."""
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if isinstance(text, bytes):
        return text.decode("utf-8", "backslashreplace")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the bytes of an undecodable file name, as os.fsencode gives them back
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not file-name escapes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def markup(value: Any) -> str:
    """User-provided text for a rich ``print`` or table cell: UTF-8 safe and shown verbatim."""
    return escape(safe_str(value))


_consoles: dict[bool, Console] = {}
_consoles_lock = threading.Lock()


def console(stderr: bool = False) -> Console:
    """The process's rich console for standard output (results: tables, JSON, lines to pipe on) or,
    with ``stderr=True``, for standard error (errors, notes, progress bars). On a terminal a long
    line is wrapped at words to the terminal's width; in a pipe or a file it is written whole (soft
    wrap), never broken. Made on first use; each writes to whatever ``sys.stdout`` / ``sys.stderr``
    is when it prints (a test runner's capture too)."""
    found = _consoles.get(stderr)
    if found is not None:
        return found
    with _consoles_lock:
        if stderr not in _consoles:
            from rich.console import Console

            made = Console(stderr=stderr)
            made.soft_wrap = not made.is_terminal
            _consoles[stderr] = made
        return _consoles[stderr]


# A name is broken after one of these when it must fold (zoo-kl-a -> "zoo-kl-" / "a"), never mid-word
# where it has one.
NAME_BREAKS = "-_/.,+ "


def fold_name(name: str, width: int) -> str:
    """``name`` in lines of at most ``width`` characters, broken after separators (``-``, ``_``,
    ``/``, ``.`` ...; not the point of a version number, 1.0) and before brackets; a piece longer
    than ``width`` is split after an ``=`` (``iterations=`` / ``100``), else where it must."""
    pieces, piece = [], ""
    for i, ch in enumerate(name):
        if ch in "[(" and piece:  # an option list starts a piece of its own
            pieces.append(piece)
            piece = ""
        piece += ch
        version_point = ch == "." and name[i - 1 : i].isdigit() and name[i + 1 : i + 2].isdigit()
        if ch in NAME_BREAKS and not version_point:
            pieces.append(piece)
            piece = ""
    pieces += [piece] if piece else []
    lines = [""]
    for p in pieces:
        if len(lines[-1]) + len(p.rstrip()) > width and lines[-1]:
            lines.append("")
        while len(p) > width:
            cut = p.rfind("=", 0, width) + 1 or width
            lines[-1:] = [p[:cut], ""]
            p = p[cut:]
        lines[-1] += p
    return "\n".join(line.rstrip() for line in lines if line.strip())



def fold_words(text: str, width: int) -> str:
    """``text`` with every word longer than ``width`` folded as :func:`fold_name` folds a name (a
    repository id in a description, say), so that a table's wrapping never splits it mid-word."""
    return " ".join(fold_name(w, width) if len(w) > width else w for w in text.split(" "))


def natural_width(target: Console, renderable: Any) -> int:
    """How wide ``renderable`` is drawn with room to spare (a table: every cell on one line)."""
    from rich.measure import Measurement

    return Measurement.get(target, target.options.update_width(1_000_000), renderable).maximum


def print_widest_fitting(target: Console, *layouts: Any) -> None:
    """The first of ``layouts`` (widest first) that fits ``target``'s width without wrapping a
    cell, else the last (the narrow one, whose long cells wrap at spaces); not soft-wrapped."""
    chosen = next((r for r in layouts if natural_width(target, r) <= target.width), layouts[-1])
    target.print(chosen, soft_wrap=False)


def format_seconds(s: float | None) -> str:
    """A duration as a progress display writes it: ``m:ss``, ``h:mm:ss``; ``–:––`` when unknown."""
    if s is None or s != s:
        return "–:––"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def mean_rate_time_left() -> Any:
    """A progress column: the time left at the mean rate so far (elapsed / done x to do). Rich's own
    column measures the rate over the last 30 seconds, so work whose steps take longer than that
    (an image of several megapixels) never gets an estimate."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class TimeLeft(ProgressColumn):
        def render(self, task) -> Text:
            if not task.completed or task.total is None or task.elapsed is None:
                return Text("ETA " + format_seconds(None), style="progress.remaining")
            return Text("ETA " + format_seconds(task.elapsed * (task.total - task.completed) / task.completed), style="progress.remaining")

    return TimeLeft()


def progress_display(target: Console, time_left: Any = None, **options: Any):
    """The one progress display (``aedr score``, ``calibrate``, ``attribute``, ``reconstruct``, the
    bench): what is being done, cut with an ellipsis to the room the others leave, then a bar,
    done/total, the elapsed time and the time left, which therefore always show, at 80 columns too.
    ``time_left``: a column of the caller's own for the last one (default: :func:`mean_rate_time_left`);
    ``options`` go to rich's Progress."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    what = TextColumn("{task.description}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=8))
    return Progress(what, BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(), time_left or mean_rate_time_left(),
                    console=target, expand=True, **options)


def names_folded_to_fit(target: Console, build: Any, least: int = 12, name_columns: int = 1) -> Any:
    """``build(width)`` makes a table whose name cells (in ``name_columns`` columns) are folded to
    ``width`` (None: whole). The table with whole names where it fits ``target``, else with names
    folded to an equal share of the room the other columns leave (at least ``least``)."""
    whole = build(None)
    if natural_width(target, whole) <= target.width:
        return whole
    narrowest = build(1)
    return build(max(least, 1 + (target.width - natural_width(target, narrowest)) // name_columns))
