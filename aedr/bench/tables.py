"""The comparison tables (the AEDR paper's Tables 1 to 4, plus the other registered metrics) and the
per-method summaries, aggregated from the per-pair metrics. ``aedr.bench.render`` draws them as
Markdown, HTML or a rich terminal table.

Every table carries the score convention in its note: lower score = belonging.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import pandas as pd

from .metrics import BUILTIN_METRICS, Metric, MetricInfo

DIRECTION = "Scores: lower = belonging; an image is attributed to target T iff its score < τ_T (fitted on T's calibration images)."
SHORT_DIRECTION = "Scores: lower = belonging; attributed to T iff score < τ_T."

# Column formats: "pct" 0..1 shown as a percentage, "auc" 0..1 with 3 decimals, "sec" seconds,
# "int", "num" (general float), "text" (aedr.bench.render.format draws them).


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


# -- building ---------------------------------------------------------------------------------------
def _mean(series: pd.Series) -> float:
    s = pd.to_numeric(series, errors="coerce").dropna()
    return float(s.mean()) if len(s) else float("nan")


@dataclass
class MethodSummary:
    """One method's headline figures: every metric's mean over the model pairs (Table 1's kind of
    pair) and over the pairs against real images (Table 2's), and the accuracy per target family.
    ``pair`` and ``real`` map metric names to means; ``record()`` flattens them to ``pair_<metric>``
    and ``real_<metric>``."""

    method: str
    options_hash: str
    label: str
    pair: dict[str, float]
    real: dict[str, float]
    seconds_per_image: float
    n_pairs: int
    n_real_pairs: int
    n_targets: int
    images_timed: int
    family_pair_accuracy: dict[str, float] = field(default_factory=dict)
    family_real_accuracy: dict[str, float] = field(default_factory=dict)

    @property
    def pair_accuracy(self) -> float:
        return self.pair.get("accuracy", float("nan"))

    @property
    def real_accuracy(self) -> float:
        return self.real.get("accuracy", float("nan"))

    @property
    def rank_key(self) -> tuple[float, float]:
        """Mean pair accuracy first (Table 1), then accuracy against real images (Table 2)."""
        a = self.pair_accuracy if not math.isnan(self.pair_accuracy) else -1.0
        b = self.real_accuracy if not math.isnan(self.real_accuracy) else -1.0
        return (-a, -b)

    def record(self) -> dict[str, Any]:
        d = asdict(self)
        pair, real = d.pop("pair"), d.pop("real")
        head = {k: d.pop(k) for k in ("method", "options_hash", "label")}
        return {**head, **{f"pair_{k}": v for k, v in pair.items()}, **{f"real_{k}": v for k, v in real.items()}, **d}


MetricLike = Metric | MetricInfo


def _metric_names(pairs: pd.DataFrame, metrics: Sequence[MetricLike]) -> list[str]:
    return [m.name for m in metrics if m.name in pairs.columns]


def summarize(pairs: pd.DataFrame, timings: pd.DataFrame, metrics: Sequence[MetricLike] = BUILTIN_METRICS) -> list[MethodSummary]:
    """Per-method summaries from the pair metrics and timings (of one run or several pooled)."""
    out: list[MethodSummary] = []
    if not len(pairs):
        return out
    names = _metric_names(pairs, metrics)
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
                pair={n: _mean(models[n]) for n in names}, real={n: _mean(real[n]) for n in names},
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


def build_tables(
    pairs: pd.DataFrame, timings: pd.DataFrame, summaries: Sequence[MethodSummary] | None = None, metrics: Sequence[MetricLike] = BUILTIN_METRICS
) -> list[Table]:
    """Tables 1 to 4, the threshold-free table and (when a registered metric other than accuracy
    uses the threshold) the table of figures at tau_T; methods in leaderboard order."""
    summaries = list(summaries) if summaries is not None else summarize(pairs, timings, metrics)
    present = [m for m in metrics if m.name in pairs.columns]
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
    free = [m for m in present if not m.uses_threshold]
    if free:
        tables.append(
            Table(
                "threshold_free", "Threshold-free: " + ", ".join(m.title for m in free),
                ["method", *[f"pairs {m.title}" for m in free], *[f"real {m.title}" for m in free]],
                ["text", *[m.format for m in free] * 2],
                [[s.label, *[s.pair.get(m.name, float("nan")) for m in free], *[s.real.get(m.name, float("nan")) for m in free]] for s in summaries],
                "Target T's evaluation images are positives, the source's are negatives; lower score = more likely T's. "
                + " ".join(f"{m.title}: {m.description}." for m in free if m.description),
            )
        )
    at_tau = [m for m in present if m.uses_threshold and m.name != "accuracy"]
    if at_tau:
        tables.append(
            Table(
                "at_threshold", "At τ_T: " + ", ".join(m.title for m in at_tau),
                ["method", *[f"pairs {m.title}" for m in at_tau], *[f"real {m.title}" for m in at_tau]],
                ["text", *[m.format for m in at_tau] * 2],
                [[s.label, *[s.pair.get(m.name, float("nan")) for m in at_tau], *[s.real.get(m.name, float("nan")) for m in at_tau]] for s in summaries],
                " ".join(f"{m.title}: {m.description}." for m in at_tau if m.description) + " " + SHORT_DIRECTION,
            )
        )
    return tables


def leaderboard_table(
    summaries: Sequence[MethodSummary], *, with_runs: dict[tuple[str, str], str] | None = None, metrics: Sequence[MetricLike] = BUILTIN_METRICS
) -> Table:
    shown = [m for m in metrics if m.leaderboard]
    cols, formats = ["rank", "method"], ["int", "text"]
    for m in shown:
        cols += [f"pairs {m.title}", f"real {m.title}"]
        formats += [m.format, m.format]
    cols += ["s / image", "pairs", "targets"]
    formats += ["sec", "int", "int"]
    if with_runs is not None:
        cols.append("runs")
        formats.append("text")
    rows = []
    for i, s in enumerate(summaries, 1):
        row: list[Any] = [i, s.label]
        for m in shown:
            row += [s.pair.get(m.name, float("nan")), s.real.get(m.name, float("nan"))]
        row += [s.seconds_per_image, s.n_pairs, s.n_targets]
        if with_runs is not None:
            row.append(with_runs.get((s.method, s.options_hash), ""))
        rows.append(row)
    return Table(
        "leaderboard", "Leaderboard · methods ranked by mean accuracy over model pairs", cols, formats, rows,
        "Ranked by mean accuracy over ordered model pairs (Table 1), ties by accuracy against real images. " + SHORT_DIRECTION,
    )
