"""The comparison tables (the AEDR paper's Tables 1 to 4, plus threshold-free figures), built from the
per-pair metrics and rendered as Markdown, HTML or a rich terminal table.

Every table carries the score convention in its note: lower score = belonging.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd

DIRECTION = "Scores: lower = belonging; an image is attributed to target T iff its score < τ_T (fitted on T's calibration images)."
SHORT_DIRECTION = "Scores: lower = belonging; attributed to T iff score < τ_T."

# Column formats: "pct" 0..1 shown as a percentage, "auc" 0..1 with 3 decimals, "sec" seconds,
# "int", "num" (general float), "text".


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    formats: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.columns)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(value: Any, kind: str) -> str:
    if _missing(value):
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


# -- building ---------------------------------------------------------------------------------------
def _mean(series: pd.Series) -> float:
    s = pd.to_numeric(series, errors="coerce").dropna()
    return float(s.mean()) if len(s) else float("nan")


@dataclass
class MethodSummary:
    """One method's headline figures (means over targets / pairs, as the paper averages)."""

    method: str
    options_hash: str
    label: str
    pair_accuracy: float
    real_accuracy: float
    pair_auc: float
    real_auc: float
    pair_tpr_at_1pct_fpr: float
    pair_tpr_at_5pct_fpr: float
    real_tpr_at_1pct_fpr: float
    real_tpr_at_5pct_fpr: float
    seconds_per_image: float
    n_pairs: int
    n_real_pairs: int
    n_targets: int
    images_timed: int
    family_pair_accuracy: dict[str, float] = field(default_factory=dict)
    family_real_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def rank_key(self) -> tuple[float, float]:
        """Mean pair accuracy first (Table 1), then accuracy against real images (Table 2)."""
        a = self.pair_accuracy if not math.isnan(self.pair_accuracy) else -1.0
        b = self.real_accuracy if not math.isnan(self.real_accuracy) else -1.0
        return (-a, -b)


def summarize(pairs: pd.DataFrame, timings: pd.DataFrame) -> list[MethodSummary]:
    """Per-method summaries from the pair metrics and timings (of one run or several pooled)."""
    out: list[MethodSummary] = []
    if not len(pairs):
        return out
    for (method, ohash), g in pairs.groupby(["method", "options_hash"], sort=False):
        models = g[g["pair_kind"] == "model"]
        real = g[g["pair_kind"] == "real"]
        t = timings[(timings["method"] == method) & (timings["options_hash"] == ohash)] if len(timings) else timings
        images = int(t["images"].sum()) if len(t) else 0
        seconds = float(t["seconds"].sum()) if len(t) else 0.0
        fam_pair = {f: _mean(x["accuracy"]) for f, x in models.groupby("target_family", sort=True)}
        fam_real = {f: _mean(x["accuracy"]) for f, x in real.groupby("target_family", sort=True)}
        out.append(
            MethodSummary(
                method=str(method), options_hash=str(ohash), label=str(g["label"].iloc[0]),
                pair_accuracy=_mean(models["accuracy"]), real_accuracy=_mean(real["accuracy"]),
                pair_auc=_mean(models["auc"]), real_auc=_mean(real["auc"]),
                pair_tpr_at_1pct_fpr=_mean(models["tpr_at_1pct_fpr"]), pair_tpr_at_5pct_fpr=_mean(models["tpr_at_5pct_fpr"]),
                real_tpr_at_1pct_fpr=_mean(real["tpr_at_1pct_fpr"]), real_tpr_at_5pct_fpr=_mean(real["tpr_at_5pct_fpr"]),
                seconds_per_image=seconds / images if images else float("nan"),
                n_pairs=int(models["accuracy"].notna().sum()), n_real_pairs=int(real["accuracy"].notna().sum()),
                n_targets=int(g["target"].nunique()), images_timed=images,
                family_pair_accuracy=fam_pair, family_real_accuracy=fam_real,
            )
        )
    return sorted(out, key=lambda s: s.rank_key)


def _per_target(pairs: pd.DataFrame, kind: str, summaries: Sequence[MethodSummary], targets: Sequence[str]) -> list[list[Any]]:
    rows = []
    for s in summaries:
        g = pairs[(pairs["method"] == s.method) & (pairs["options_hash"] == s.options_hash) & (pairs["pair_kind"] == kind)]
        per = [_mean(g[g["target"] == t]["accuracy"]) for t in targets]
        rows.append([s.label, *per, s.pair_accuracy if kind == "model" else s.real_accuracy])
    return rows


def build_tables(pairs: pd.DataFrame, timings: pd.DataFrame, summaries: Sequence[MethodSummary] | None = None) -> list[Table]:
    """Tables 1 to 4 and the threshold-free table, methods in leaderboard order."""
    summaries = list(summaries) if summaries is not None else summarize(pairs, timings)
    targets = list(dict.fromkeys(pairs["target"])) if len(pairs) else []
    families = sorted(set(pairs["target_family"])) if len(pairs) else []
    tables = [
        Table(
            "table1", "Table 1 · Attribution accuracy (%) between models: target T against every other model S",
            ["method", *targets, "mean"], ["text", *["pct"] * len(targets), "pct"], _per_target(pairs, "model", summaries, targets),
            "Column T: mean over sources S ≠ T of (TP + TN) / (N_T + N_S) under τ_T. Mean: over all ordered pairs. " + SHORT_DIRECTION,
        ),
        Table(
            "table2", "Table 2 · Accuracy (%) against real images",
            ["method", *targets, "mean"], ["text", *["pct"] * len(targets), "pct"], _per_target(pairs, "real", summaries, targets),
            "Column T: T's evaluation images against the real evaluation images under τ_T. " + SHORT_DIRECTION,
        ),
    ]
    time_rows = []
    for s in summaries:
        t = timings[(timings["method"] == s.method) & (timings["options_hash"] == s.options_hash)] if len(timings) else timings
        per = []
        for target in targets:
            x = t[t["target"] == target] if len(t) else t
            per.append(float(x["seconds"].sum() / x["images"].sum()) if len(x) and x["images"].sum() else float("nan"))
        time_rows.append([s.label, *per, s.seconds_per_image])
    tables.append(
        Table(
            "table3", "Table 3 · Seconds per image",
            ["method", *targets, "mean"], ["text", *["sec"] * len(targets), "sec"], time_rows,
            "Wall time of scoring divided by images scored under each target (model loading excluded). Methods share "
            "first reconstructions: the first method to need one pays for it.",
        )
    )
    fam_cols = [*families, *[f"{f} · real" for f in families]]
    tables.append(
        Table(
            "table4", "Table 4 · Accuracy (%) per autoencoder family of the target model",
            ["method", *fam_cols], ["text", *["pct"] * len(fam_cols)],
            [[s.label, *[s.family_pair_accuracy.get(f, float("nan")) for f in families], *[s.family_real_accuracy.get(f, float("nan")) for f in families]] for s in summaries],
            "Family f: mean over pairs whose target's autoencoder belongs to f (f · real: against real images). " + SHORT_DIRECTION,
        )
    )
    tables.append(
        Table(
            "threshold_free", "Threshold-free: ROC AUC and TPR at fixed false-positive rates",
            ["method", "pairs AUC", "pairs TPR@1%FPR", "pairs TPR@5%FPR", "real AUC", "real TPR@1%FPR", "real TPR@5%FPR"],
            ["text", "auc", "pct", "pct", "auc", "pct", "pct"],
            [[s.label, s.pair_auc, s.pair_tpr_at_1pct_fpr, s.pair_tpr_at_5pct_fpr, s.real_auc, s.real_tpr_at_1pct_fpr, s.real_tpr_at_5pct_fpr] for s in summaries],
            "Target T's evaluation images are positives, the source's are negatives; lower score = more likely T's. "
            "TPR at x % FPR: best TPR of any threshold whose FPR ≤ x %.",
        )
    )
    return tables


def leaderboard_table(summaries: Sequence[MethodSummary], *, with_runs: dict[tuple[str, str], str] | None = None) -> Table:
    cols = ["rank", "method", "pairs acc %", "real acc %", "pairs AUC", "real AUC", "s / image", "pairs", "targets"]
    formats = ["int", "text", "pct", "pct", "auc", "auc", "sec", "int", "int"]
    if with_runs is not None:
        cols.append("runs")
        formats.append("text")
    rows = []
    for i, s in enumerate(summaries, 1):
        row = [i, s.label, s.pair_accuracy, s.real_accuracy, s.pair_auc, s.real_auc, s.seconds_per_image, s.n_pairs, s.n_targets]
        if with_runs is not None:
            row.append(with_runs.get((s.method, s.options_hash), ""))
        rows.append(row)
    return Table(
        "leaderboard", "Leaderboard · methods ranked by mean accuracy over model pairs", cols, formats, rows,
        "Ranked by mean accuracy over ordered model pairs (Table 1), ties by accuracy against real images. " + SHORT_DIRECTION,
    )


# -- rendering --------------------------------------------------------------------------------------
def to_markdown(table: Table, *, heading: str = "###") -> str:
    head = "| " + " | ".join(table.columns) + " |"
    align = "| " + " | ".join("---" if f == "text" else "---:" for f in table.formats) + " |"
    body = ["| " + " | ".join(fmt(v, f).replace("|", "\\|") for v, f in zip(row, table.formats)) + " |" for row in table.rows]
    parts = [f"{heading} {table.title}", "", head, align, *body]
    if table.note:
        parts += ["", f"_{table.note}_"]
    return "\n".join(parts) + "\n"


def _cell_style(value: Any, kind: str) -> str:
    """Background shade for accuracy-like cells: red (0.5 = chance) to green (1.0)."""
    if kind not in ("pct", "auc") or _missing(value):
        return ""
    x = min(max((float(value) - 0.5) / 0.5, 0.0), 1.0)
    hue = int(120 * x)
    return f' style="background:hsl({hue},70%,88%)"'


def to_html(table: Table, *, anchor: bool = True) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = []
        for v, f in zip(row, table.formats):
            cls = ' class="l"' if f == "text" else ""
            cells.append(f"<td{cls}{_cell_style(v, f)}>{html.escape(fmt(v, f))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{table.key}"' if anchor else ""
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f'<section class="table"{ident}><h3>{html.escape(table.title)}</h3>'
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{note}</section>'
    )


def to_rich(table: Table):
    from rich.table import Table as RichTable

    from ..text import markup

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
