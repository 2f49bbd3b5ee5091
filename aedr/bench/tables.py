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


@dataclass(frozen=True)
class Estimate:
    """A figure with its confidence interval; renderers write it as ``74.6 [68.1, 80.9]``."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def __json__(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def estimate(value: float, low: float | None, high: float | None) -> "Estimate | float":
    """``value`` with its interval when both ends are finite numbers, else the bare value."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or not math.isfinite(value):
        return value
    return Estimate(float(value), float(low), float(high))


@dataclass
class Table:
    key: str
    title: str
    columns: list[str]
    formats: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""
    secondary: tuple[str, ...] = ()  # columns a narrow terminal leaves out (the result files keep them)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.columns)

    @property
    def has_figures(self) -> bool:
        """Whether any cell after the row labels holds a finite figure (a run with one model has no
        model pairs, a run without real images no real figures: their tables are left out)."""
        return any(_is_figure(c) for row in self.rows for c in row[1:])


def _is_figure(cell: Any) -> bool:
    value = cell.value if isinstance(cell, Estimate) else cell
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    # filled by apply_uncertainty: "<scope>:<metric>" -> (low, high), scopes "pair", "real",
    # "family:<f>", "real-family:<f>"; the rank with ties ("1", "1="); the paired comparison with
    # the leader per "<scope>:<metric>" (difference, low, high, p_holm, tied)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    rank: str = ""
    versus_leader: dict[str, dict[str, Any]] = field(default_factory=dict)
    # with perturbations (aedr.bench.robustness): "auc" / "accuracy" -> the mean over the run's
    # perturbations of the mean over model pairs; intervals under "robust:<metric>"
    robust: dict[str, float] = field(default_factory=dict)

    def cell(self, scope: str, metric: str) -> "Estimate | float":
        """A summary figure with its interval when there is one (scope "pair", "real", "family:f" ...)."""
        if scope == "pair":
            value = self.pair.get(metric, float("nan"))
        elif scope == "real":
            value = self.real.get(metric, float("nan"))
        elif scope == "robust":
            value = self.robust.get(metric, float("nan"))
        elif scope.startswith("family:") and metric == "accuracy":
            value = self.family_pair_accuracy.get(scope.split(":", 1)[1], float("nan"))
        elif scope.startswith("real-family:") and metric == "accuracy":
            value = self.family_real_accuracy.get(scope.split(":", 1)[1], float("nan"))
        else:
            value = float("nan")
        low, high = self.intervals.get(f"{scope}:{metric}", (None, None))
        return estimate(value, low, high)

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
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        pair, real, robust = d.pop("pair"), d.pop("real"), d.pop("robust")
        head = {k: d.pop(k) for k in ("method", "options_hash", "label")}
        return {**head, **{f"pair_{k}": v for k, v in pair.items()}, **{f"real_{k}": v for k, v in real.items()},
                **{f"robust_{k}": v for k, v in robust.items()}, **d}


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


def ranking_scope(summaries: Sequence[MethodSummary]) -> str:
    """What a leaderboard ranks by: "pair" (mean accuracy over model pairs), or "real" (accuracy
    against the real images) for a run without model pairs (one model) that has real images."""
    return "pair" if any(s.n_pairs for s in summaries) or not any(s.n_real_pairs for s in summaries) else "real"


def apply_uncertainty(summaries: Sequence[MethodSummary], boot, level: float = 0.05) -> None:
    """Fill each summary's intervals, its rank with ties and its paired comparison with the leader
    (the first summary) from a joint bootstrap (``aedr.bench.stats.bootstrap_bench``).

    Ranks follow the summaries' order (mean pair accuracy, then real accuracy). Walking down it, a
    method shares the rank of the method heading its group ("1=") unless their paired difference in
    mean pair accuracy is significant: against the leader, Holm-corrected over every method (the p
    the leaderboard prints); against a later group's head, uncorrected. Otherwise it heads a new
    group, ranked by its position. A run without model pairs (one model) compares accuracy against
    the real images instead."""
    from .stats import compare_to_leader, paired_p_value

    if not summaries:
        return
    by_key = {(s.method, s.options_hash): s for s in summaries}
    for r in boot.summaries.itertuples(index=False):
        s = by_key.get((r.method, r.options_hash))
        if s is not None:
            s.intervals[f"{r.scope}:{r.metric}"] = (float(r.low), float(r.high))
    leader = summaries[0]
    present = set(boot.methods())  # a method with no usable score has no replicates
    if (leader.method, leader.options_hash) not in present:
        for i, s in enumerate(summaries, 1):
            s.rank = str(i)
        return
    scope = ranking_scope(summaries)
    for sc, metric in {("pair", "accuracy"), ("pair", "auc"), (scope, "accuracy"), (scope, "auc")}:
        table = compare_to_leader(boot, (leader.method, leader.options_hash), metric, sc, level=level)
        for r in table.itertuples(index=False):
            s = by_key.get((r.method, r.options_hash))
            if s is not None and s is not leader:
                s.versus_leader[f"{sc}:{metric}"] = {
                    "difference": float(r.difference), "low": float(r.low), "high": float(r.high),
                    "p_value": float(r.p_value), "p_holm": float(r.p_holm), "tied": bool(r.tied),
                }
    head, leader.rank = leader, "1"
    for i, s in enumerate(summaries[1:], 2):
        if (s.method, s.options_hash) not in present:
            s.rank = str(i)
            continue
        if head is leader:
            p = s.versus_leader.get(f"{scope}:accuracy", {}).get("p_holm", float("nan"))
        else:
            d = boot.replicates(s.method, s.options_hash, scope, "accuracy") - boot.replicates(head.method, head.options_hash, scope, "accuracy")
            p = paired_p_value(d)
        if math.isfinite(p) and p >= level:
            s.rank = head.rank + "="
        else:
            head, s.rank = s, str(i)


def _per_target(pairs: pd.DataFrame, kind: str, summaries: Sequence[MethodSummary], targets: Sequence[str]) -> list[list[Any]]:
    """Accuracy per target (Table 1: mean over sources; Table 2: the one pair against real images,
    with its interval) and the method's mean, with its interval."""
    rows = []
    for s in summaries:
        g = pairs[(pairs["method"] == s.method) & (pairs["options_hash"] == s.options_hash) & (pairs["pair_kind"] == kind)]
        per: list[Any] = []
        for t in targets:
            x = g[g["target"] == t]
            if len(x) == 1 and "accuracy_low" in x.columns:
                per.append(estimate(float(x["accuracy"].iloc[0]), float(x["accuracy_low"].iloc[0]), float(x["accuracy_high"].iloc[0])))
            else:
                per.append(_mean(x["accuracy"]))
        rows.append([s.label, *per, s.cell("pair" if kind == "model" else "real", "accuracy")])
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
            [[s.label, *[s.cell(f"family:{f}", "accuracy") for f in families], *[s.cell(f"real-family:{f}", "accuracy") for f in families]] for s in summaries],
            "Family f: mean over pairs whose target's autoencoder belongs to f (f · real: against real images). " + SHORT_DIRECTION,
        )
    )
    free = [m for m in present if not m.uses_threshold]
    if free:
        tables.append(_metrics_table(
            "threshold_free", "Threshold-free", free, summaries,
            "Target T's evaluation images are positives, the source's are negatives; lower score = more likely T's. "
            + " ".join(f"{m.title}: {m.description}." for m in free if m.description),
        ))
    at_tau = [m for m in present if m.uses_threshold and m.name != "accuracy"]
    if at_tau:
        tables.append(_metrics_table(
            "at_threshold", "At τ_T", at_tau, summaries,
            " ".join(f"{m.title}: {m.description}." for m in at_tau if m.description) + " " + SHORT_DIRECTION,
        ))
    return [t for t in tables if t.has_figures]


def _metrics_table(key: str, heading: str, metrics: Sequence[MetricLike], summaries: Sequence[MethodSummary], note: str) -> Table:
    """Each method's pair mean and real mean of ``metrics``, with their intervals."""
    return Table(
        key, f"{heading}: " + ", ".join(m.title for m in metrics),
        ["method", *[f"pairs {m.title}" for m in metrics], *[f"real {m.title}" for m in metrics]],
        ["text", *[m.format for m in metrics] * 2],
        [[s.label, *[s.cell("pair", m.name) for m in metrics], *[s.cell("real", m.name) for m in metrics]] for s in summaries],
        note,
    )


def leaderboard_table(
    summaries: Sequence[MethodSummary], *, with_runs: dict[tuple[str, str], str] | None = None, metrics: Sequence[MetricLike] = BUILTIN_METRICS,
    ranks_within_runs: bool = False,
) -> Table:
    """Methods in rank order. With intervals (a run's joint bootstrap): every figure with its interval,
    ranks with ties ("1=": not distinguishable from the method heading its group), and each method's
    paired difference from the leader in mean pair accuracy and AUC with its Holm-corrected p-value.
    ``ranks_within_runs`` (a board merged from several runs): each rank is the method's rank in its
    own run, the column says so and the note says why."""
    shown = [m for m in metrics if m.leaderboard]
    scope = ranking_scope(summaries)  # a run without model pairs is ranked and summed up against the real images
    scopes = ("pair", "real") if scope == "pair" else ("real",)
    robust_key = "auc" if scope == "pair" else "real_auc"
    compared = any(s.versus_leader for s in summaries)
    robust = any(math.isfinite(s.robust.get(robust_key, math.nan)) for s in summaries)
    cols, formats = ["rank in run" if ranks_within_runs else "rank", "method"], ["text", "text"]
    for m in shown:
        cols += [f"{'pairs' if sc == 'pair' else 'real'} {m.title}" for sc in scopes]
        formats += [m.format] * len(scopes)
    if robust:
        cols.append("robust AUC" if scope == "pair" else "robust real AUC")
        formats.append("auc")
    if compared:
        name = "pairs" if scope == "pair" else "real"
        cols += [f"Δ {name} acc vs #1", "p (Holm)", f"Δ {name} AUC vs #1", "p (Holm) "]
        formats += ["dpct", "p", "dauc", "p"]
    cols += ["s / image", "pairs", "targets"] if scope == "pair" else ["s / image", "targets"]
    formats += ["sec", "int", "int"] if scope == "pair" else ["sec", "int"]
    if with_runs is not None:
        cols.append("runs")
        formats.append("text")
    rows = []
    for i, s in enumerate(summaries, 1):
        row: list[Any] = [s.rank or ("–" if ranks_within_runs else str(i)), s.label]
        for m in shown:
            row += [s.cell(sc, m.name) for sc in scopes]
        if robust:
            row.append(s.cell("robust", robust_key))
        if compared:
            for metric in ("accuracy", "auc"):
                v = s.versus_leader.get(f"{scope}:{metric}")
                row += [estimate(v["difference"], v["low"], v["high"]), v["p_holm"]] if v else [float("nan"), float("nan")]
        row += [s.seconds_per_image, s.n_pairs, s.n_targets] if scope == "pair" else [s.seconds_per_image, s.n_targets]
        if with_runs is not None:
            row.append(with_runs.get((s.method, s.options_hash), ""))
        rows.append(row)
    if scope == "pair":
        note = "Ranked by mean accuracy over ordered model pairs (Table 1), ties by accuracy against real images. " + SHORT_DIRECTION
    else:
        note = "No model pairs (one model): ranked by accuracy against real images (Table 2). " + SHORT_DIRECTION
    if any(s.intervals for s in summaries):
        note += " [low, high]: bootstrap confidence interval (95 % unless the run's confidence says otherwise)."
    if any(s.rank.endswith("=") for s in summaries):
        note += " Rank \"k=\": not distinguishable (paired bootstrap, p >= 0.05) from the method heading its group."
    if compared:
        note += " Δ: paired difference from the leader, p Holm-corrected over the methods."
    if ranks_within_runs:
        note += (" Rank in run: the method's rank in the run it comes from (column runs), from that run's paired bootstrap; no rank"
                 " compares methods of different runs (–: pairs from several runs, unranked).")
    if robust:
        over = "model pairs" if scope == "pair" else "the targets against real images"
        note += f" Robust{'' if scope == 'pair' else ' real'} AUC: the mean, over the run's perturbations, of the mean AUC over {over} (see the robustness tables)."
    heading = "mean accuracy over model pairs" if scope == "pair" else "accuracy against real images"
    secondary = [f"real {m.title}" for m in shown[1:] if scope == "pair"] + [c for c in cols if "AUC vs #1" in c or c in ("p (Holm) ", "s / image", "pairs", "targets")]
    return Table("leaderboard", f"Leaderboard · methods ranked by {heading}", cols, formats, rows, note, tuple(secondary))
