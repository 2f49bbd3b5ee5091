"""Tables in the terminal (rich), fitted to its width.

A table is drawn in the first of these layouts that fits the console's width (a pipe or a file:
``COLUMNS``, else 80): every figure with its interval on one line; intervals on a second line and
long names folded; the table's secondary columns left out; figures without their intervals; then
the figure columns split over several tables, each repeating the row labels. Figures are never cut
and names fold only after separators; what a layout leaves out is said under the table (the files
hold it all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...text import fold_name, markup
from ..tables import Estimate, Table
from .format import fmt

NAME_WIDTH = 20  # names fold to this width once a table is too wide for them whole


@dataclass(frozen=True)
class Layout:
    intervals: str  # "inline", "stacked" or "none"
    keep_secondary: bool
    name_width: int | None  # None: names whole


LAYOUTS = (
    Layout("inline", True, None),
    Layout("stacked", True, NAME_WIDTH),
    Layout("stacked", False, NAME_WIDTH),
    Layout("none", False, NAME_WIDTH),
    Layout("none", False, 12),
)


def cell_text(value: Any, kind: str, layout: Layout) -> str:
    if isinstance(value, Estimate) and layout.intervals != "inline":
        head = fmt(value.value, kind)
        return head if layout.intervals == "none" else f"{head}\n[{fmt(value.low, kind)}, {fmt(value.high, kind)}]"
    text = fmt(value, kind)
    return fold_name(text, layout.name_width) if kind == "text" and layout.name_width else text


def column_width(header: str, cells: list[str]) -> int:
    """The narrowest a column can be: its widest cell line, and its header's longest word (a header
    folds at its spaces)."""
    widest = max((len(line) for c in cells for line in c.splitlines()), default=1)
    return max(widest, *(len(w) for w in header.split() or [header]))


def table_width(widths: list[int]) -> int:
    return sum(widths) + 3 * len(widths) + 1  # padding of one each side, a rule between and at both edges


def _columns(table: Table, layout: Layout) -> list[int]:
    secondary = set(table.secondary)
    return [i for i, c in enumerate(table.columns) if layout.keep_secondary or c not in secondary]


def _rich(table: Table, cols: list[int], cells: list[list[str]], widths: list[int], width: int):
    """The columns at their natural widths where they fit ``width``, else each at its narrowest (the
    headers wrap at their spaces), so rich never has to cut one."""
    from rich.table import Table as RichTable

    natural = [max(w, len(table.columns[i])) for i, w in zip(cols, widths)]
    fixed = table_width(natural) > width
    if fixed:  # the room to spare widens the columns whose headers would wrap, left to right
        spare, widened = width - table_width(widths), []
        for w, n in zip(widths, natural):
            extra = max(0, min(spare, n - w))
            widened.append(w + extra)
            spare -= extra
        widths = widened
    t = RichTable(show_lines=any("\n" in row[i] for row in cells for i in cols))
    for i, w in zip(cols, widths):
        header, justify = markup(table.columns[i]), "left" if table.formats[i] == "text" else "right"
        t.add_column(header, justify=justify, width=w if fixed else None, min_width=w)  # names come folded to w; figures fit it whole
    for row in cells:  # cells hold names from plugins and configs: never read as markup
        t.add_row(*(markup(row[i]) for i in cols))
    return t


def fitted(table: Table, width: int) -> list:
    """``table`` as rich renderables that fit ``width`` columns: the title, one or more tables, the
    note (with what this width left out)."""
    from rich.text import Text

    for layout in LAYOUTS:
        cols = _columns(table, layout)
        cells = [[cell_text(v, f, layout) for v, f in zip(row, table.formats)] for row in table.rows]
        widths = {i: column_width(table.columns[i], [r[i] for r in cells]) for i in cols}
        if table_width([widths[i] for i in cols]) <= width or layout is LAYOUTS[-1]:
            break
    labels = [i for i in cols if table.formats[i] == "text" and i < 2]  # the row labels, repeated in each part
    parts, part = [], []
    for i in (i for i in cols if i not in labels):
        if part and table_width([widths[j] for j in labels + part + [i]]) > width:
            parts.append(part)
            part = []
        part.append(i)
    parts.append(part)
    shown = [_rich(table, labels + p, cells, [widths[j] for j in labels + p], width) for p in parts]
    left_out = [c.strip() for c in table.columns if c in table.secondary and not layout.keep_secondary]
    said = []
    if layout.intervals == "none" and any(isinstance(v, Estimate) for row in table.rows for v in row):
        said.append("intervals")
    if left_out:
        said.append("the columns " + ", ".join(left_out))
    note = table.note + (f" Not shown at {width} columns: {' and '.join(said)} (the result files hold them)." if said else "")
    return [Text(table.title, style="bold"), *shown, *([Text(note, style="dim")] if note.strip() else [])]


def print_table(console, table: Table) -> None:
    """``table`` on ``console``, fitted to its width (not soft-wrapped: the note wraps there too)."""
    for r in fitted(table, console.width):
        console.print(r, soft_wrap=False)

