"""Tables in the terminal (rich)."""

from __future__ import annotations

from ...text import markup
from ..tables import Table
from .format import fmt


def to_rich(table: Table):
    from rich.table import Table as RichTable

    t = RichTable(title=markup(table.title), caption=markup(table.note) if table.note else None, caption_justify="left")
    for i, (c, f) in enumerate(zip(table.columns, table.formats)):
        if f == "text":  # names stay whole: they are what the reader looks for
            width = max([len(c), *(len(fmt(row[i], f)) for row in table.rows)])
            t.add_column(markup(c), justify="left", no_wrap=True, min_width=min(width, 48), overflow="ellipsis")
        else:  # numbers never break; headers wrap at spaces
            width = max([1, *(len(fmt(row[i], f)) for row in table.rows)], default=1)
            t.add_column(markup(c), justify="right", min_width=max(width, *(len(w) for w in c.split() or [c])))
    for row in table.rows:  # cells hold names from plugins and configs: never read as markup
        t.add_row(*(markup(fmt(v, f)) for v, f in zip(row, table.formats)))
    return t
