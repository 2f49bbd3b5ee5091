"""Markdown: tables, a run's leaderboard file and a merged leaderboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..tables import DIRECTION, Table, build_tables, leaderboard_table
from .format import first_line, fmt

if TYPE_CHECKING:
    from ..merged import Merged
    from ..result import BenchResult


def to_markdown(table: Table, *, heading: str = "###") -> str:
    head = "| " + " | ".join(table.columns) + " |"
    align = "| " + " | ".join("---" if f == "text" else "---:" for f in table.formats) + " |"
    body = ["| " + " | ".join(fmt(v, f).replace("|", "\\|") for v, f in zip(row, table.formats)) + " |" for row in table.rows]
    parts = [f"{heading} {table.title}", "", head, align, *body]
    if table.note:
        parts += ["", f"_{table.note}_"]
    return "\n".join(parts) + "\n"


def run_markdown(result: "BenchResult") -> str:
    cfg = result.config
    models = ", ".join(f"{m.name} ({m.family})" for m in result.plan.models)
    lines = [
        f"# aedr leaderboard · {cfg.name} config",
        "",
        f"**{DIRECTION}**",
        "",
        f"Models: {models}. Real images: {'yes' if 'real' in result.plan.sources else 'no'}. "
        f"Calibration / evaluation images per model: {cfg.n_cal} / {cfg.n_eval}; alpha: {cfg.alpha}; seed {cfg.seed}; device {cfg.device}.",
        "",
        *([f"Perturbations ({len(result.robustness.ids)}): {', '.join(result.robustness.ids)}; applied to the evaluation images of every "
           f"source; thresholds: {result.robustness.threshold_rule()}.", ""] if result.robustness is not None else []),
        *([f"Intervals: {100 * result.uncertainty.confidence:g} % from {result.uncertainty.n_resamples} joint bootstrap resamples; "
           f"{result.uncertainty.resampling}.", ""] if result.uncertainty is not None else []),
        to_markdown(leaderboard_table(result.summaries, metrics=result.board_metrics), heading="##"),
    ]
    failed = [m for m in result.plan.methods if m.error] + result.failures  # type: ignore[operator]
    if failed:
        lines += ["Not run here:", ""]
        lines += [f"- {m.name}: {first_line(m.error or '')}" for m in result.plan.methods if m.error]
        lines += [f"- {f.label} under {f.target}: {first_line(f.error)}" for f in result.failures]
        lines += ["", "(full messages in metrics.json and report.html)"]
        lines.append("")
    lines += [to_markdown(t, heading="##") for t in result.tables]
    return "\n".join(lines)


def merged_markdown(m: "Merged") -> str:
    lines = ["# aedr leaderboard", "", f"**{DIRECTION}**", "", "Runs:", ""]
    lines += [f"- {r.describe()}" for r in m.runs]
    lines += [""] + [f"> {n}" for n in m.notes] + ([""] if m.notes else [])
    lines.append(to_markdown(m.table(), heading="##"))
    not_run = [f"- {r.name}: {x}" for r in m.runs for x in r.not_run]
    if not_run:
        lines += ["Not run:", "", *not_run, ""]
    lines += [to_markdown(t, heading="##") for t in build_tables(m.pairs, m.timings, m.summaries, m.metrics)]
    return "\n".join(lines)
