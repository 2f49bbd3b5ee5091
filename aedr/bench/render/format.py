"""How a table cell is written: one function for every renderer.

Column formats: "pct" a fraction shown as a percentage ("rpct": a rate where lower is better), "auc" three decimals, "dpct" / "dauc" signed
differences of those, "p" a p-value, "sec" seconds, "int", "num" (a general float), "text". A cell
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
    if kind == "sec":  # three significant digits, always in plain decimals (no 4.68e-04 beside 0.00243)
        return significant(value, 3)
    if kind == "int":
        return str(int(value))
    if kind == "num":
        return f"{value:.4g}"
    return str(value)


def significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits in plain decimal notation (0.000468, 0.00243, 1.23, 1230)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def first_line(text: str) -> str:
    """The first line of a message (set-up errors explain at length what to do, below it)."""
    return text.strip().splitlines()[0] if text.strip() else ""
