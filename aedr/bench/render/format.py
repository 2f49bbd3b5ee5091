"""How a table cell is written: one function for every renderer.

Column formats: "pct" a fraction shown as a percentage, "auc" three decimals, "sec" seconds,
"int", "num" (a general float), "text"."""

from __future__ import annotations

import math
from typing import Any


def missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(value: Any, kind: str) -> str:
    if missing(value):
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "auc":
        return f"{value:.3f}"
    if kind == "sec":
        return f"{value:.3g}" if value >= 0.001 else f"{value:.2e}"
    if kind == "int":
        return str(int(value))
    if kind == "num":
        return f"{value:.4g}"
    return str(value)


def first_line(text: str) -> str:
    """The first line of a message (set-up errors explain at length what to do, below it)."""
    return text.strip().splitlines()[0] if text.strip() else ""
