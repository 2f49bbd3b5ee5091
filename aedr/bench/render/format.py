"""How a table cell is written: one function for every renderer.

Column formats: "pct" a fraction shown as a percentage ("rpct": a rate where lower is better), "auc" three decimals, "dpct" / "dauc" signed
differences of those, "p" a p-value, "sig" four significant digits (thresholds), "sec" seconds (written in milliseconds, two decimals: one format down a column), "int", "num" (a general float), "text". A cell
holding an :class:`aedr.bench.tables.Estimate` is written with its interval: ``74.6 [68.1, 80.9]``."""

from __future__ import annotations

import math
from typing import Any


def missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(value: Any, kind: str) -> str:
    from ..tables import Estimate

    if isinstance(value, Estimate):
        return f"{fmt(value.value, kind)} [{fmt(value.low, kind)}, {fmt(value.high, kind)}]"
    if missing(value):
        return "–"
    if kind == "dpct":
        return f"{100 * value:+.1f}"
    if kind == "dauc":
        return f"{value:+.3f}"
    if kind == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if kind in ("pct", "rpct"):
        return f"{100 * value:.1f}"
    if kind == "auc":
        return f"{value:.3f}"
    if kind == "sec":  # milliseconds, two decimals: 0.11 and 127.00 down one column, never 0.000113 beside 0.127
        return f"{1000 * value:.2f}"
    if kind == "int":
        return str(int(value))
    if kind == "num":
        return f"{value:.4g}"
    if kind == "sig":  # four significant digits, trailing zeros kept: 1.030 beside 0.8019
        return f"{value:#.4g}"
    return str(value)


def first_line(text: str) -> str:
    """The first line of a message (set-up errors explain at length what to do, below it)."""
    return text.strip().splitlines()[0] if text.strip() else ""
