"""The comparison tables (the AEDR paper's Tables 1 to 4, plus the other registered metrics) and the
per-method summaries, aggregated from the per-pair metrics. ``aedr.bench.render`` draws them as
Markdown, HTML or a rich terminal table.

Every table carries the score convention in its note: lower score = belonging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pandas as pd

from ..models import HIGH_FIDELITY_FAMILIES
from .metrics import BUILTIN_METRICS, SHARED, Metric, MetricInfo
from .schema import Scope, ScopedMetric, SummaryRecord, robust_name

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
class MethodSummary(SummaryRecord):
    """One method's headline figures: every metric's mean over the model pairs (Table 1's kind of
    pair) and over the pairs against real images (Table 2's), and the accuracy per target family.
    The fields are those of :class:`aedr.bench.schema.SummaryRecord` (its form in metrics.json):
    ``pair`` and ``real`` map metric names to means; ``apply_uncertainty`` fills ``intervals``
    (``ScopedMetric.key`` -> (low, high)), ``rank`` (with ties: "1", "1=") and ``versus_leader``
    (the paired comparison with the leader per ``ScopedMetric.key``: difference, low, high, p_holm,
    tied); with perturbations (aedr.bench.robustness) ``robust`` holds the robust figures
    (``aedr.bench.schema.robust_name``), their intervals under scope "robust"."""

    def figure(self, scope: Scope | str, metric: str) -> float:
        """A summary figure (NaN when it has none); per target family only accuracy."""
        sc = Scope.of(scope)
        if sc.kind == "family" and metric == "accuracy":
            return self.family_pair_accuracy.get(sc.family, float("nan"))
        if sc.kind == "real-family" and metric == "accuracy":
            return self.family_real_accuracy.get(sc.family, float("nan"))
        figures = {"pair": self.pair, "real": self.real, "robust": self.robust, "openset": self.openset, "hard": self.hard}.get(sc.kind, {})
        return figures.get(metric, float("nan"))

    def cell(self, scope: Scope | str, metric: str) -> "Estimate | float":
        """A summary figure with its interval when there is one (scope "pair", "real", "family:f" ...)."""
        low, high = self.intervals.get(ScopedMetric(Scope.of(scope), metric).key, (None, None))
        return estimate(self.figure(scope, metric), low, high)

    @property
    def pair_accuracy(self) -> float:
        return self.pair.get("accuracy", float("nan"))

    @property
    def real_accuracy(self) -> float:
        return self.real.get("accuracy", float("nan"))

    def rank_key(self, metric: "MetricLike | None" = None) -> tuple[float, float]:
        """Best first in ``metric``'s direction (accuracy unless given): its mean over model pairs
        (Table 1), then against real images (Table 2); NaN last."""
        name, higher = ("accuracy", True) if metric is None else (metric.name, metric.higher_is_better)
        sign = -1.0 if higher else 1.0
        return tuple(sign * v if not math.isnan(v) else math.inf for v in (self.pair.get(name, math.nan), self.real.get(name, math.nan)))


MetricLike = Metric | MetricInfo


def column_format(metric: MetricLike) -> str:
    """A metric's column format: its ``format``, "rpct" for a percentage where lower is better (shaded the other way)."""
    return "rpct" if metric.format == "pct" and not metric.higher_is_better else metric.format


def _metric_names(pairs: pd.DataFrame, metrics: Sequence[MetricLike]) -> list[str]:
    return [m.name for m in metrics if m.name in pairs.columns]


def ranking_metric(metrics: Sequence[MetricLike], name: str = "accuracy") -> MetricInfo:
    """The metric a leaderboard is ranked by: ``name``, one of the leaderboard metrics of ``metrics``."""
    for m in metrics:
        if m.name == name and m.leaderboard:
            return MetricInfo.of(m)
    raise ValueError(f"cannot rank by {name!r}: not a leaderboard metric ({', '.join(m.name for m in metrics if m.leaderboard)})")


def summarize(
    pairs: pd.DataFrame, timings: pd.DataFrame, metrics: Sequence[MetricLike] = BUILTIN_METRICS, *, rank_by: str = "accuracy"
) -> list[MethodSummary]:
    """Per-method summaries from the pair metrics and timings (of one run or several pooled), best
    first by the leaderboard metric ``rank_by`` in its direction (``MethodSummary.rank_key``)."""
    out: list[MethodSummary] = []
    if not len(pairs):
        return out
    ranked_by = ranking_metric(metrics, rank_by)
    names = _metric_names(pairs, metrics)
    for (method, ohash), g in pairs.groupby(["method", "options_hash"], sort=False):
        models = g[g["pair_kind"] == "model"]
        real = g[g["pair_kind"] == "real"]
        hard = models[models["hard"].eq(True)] if "hard" in models.columns else models.iloc[0:0]
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
                family_pair_accuracy=fam_pair, family_real_accuracy=fam_real, n_shared_pairs=int((g["pair_kind"] == SHARED).sum()),
                hard={n: _mean(hard[n]) for n in names} if len(hard) else {}, n_hard_pairs=int(hard["accuracy"].notna().sum()),
            )
        )
    return sorted(out, key=lambda s: s.rank_key(ranked_by))


def ranking_scope(summaries: Sequence[MethodSummary]) -> Scope:
    """What a leaderboard ranks by: Scope.PAIR (means over model pairs), or Scope.REAL (against the
    real images) for a run without model pairs (one model) that has real images."""
    return Scope.PAIR if any(s.n_pairs for s in summaries) or not any(s.n_real_pairs for s in summaries) else Scope.REAL


def attach_intervals(summaries: Sequence[MethodSummary], boot, scopes: Sequence[Scope] | None = None) -> None:
    """Give each summary the intervals of its figures in the bootstrap ``boot`` (those of ``scopes``
    only, when given)."""
    by_key = {(s.method, s.options_hash): s for s in summaries}
    for r in boot.summaries.itertuples(index=False):
        s, scope = by_key.get((r.method, r.options_hash)), Scope.of(r.scope)
        if s is not None and (scopes is None or scope in scopes):
            s.intervals[ScopedMetric(scope, r.metric).key] = (float(r.low), float(r.high))


def apply_uncertainty(summaries: Sequence[MethodSummary], boot, level: float = 0.05, *, rank_by: str = "accuracy") -> None:
    """Fill each summary's intervals, its rank with ties and its paired comparison with the leader
    (the first summary) in every leaderboard metric, from a joint bootstrap
    (``aedr.bench.stats.bootstrap_bench``).

    Ranks follow the summaries' order (``summarize``'s, by ``rank_by``: its mean over model pairs,
    then against real images). Walking down it, a method shares the rank of the method heading its
    group ("1=") unless their paired difference in the pair mean of ``rank_by`` is significant:
    against the leader, Holm-corrected over every method (the p the leaderboard prints); against a
    later group's head, uncorrected. Otherwise it heads a new group, ranked by its position. A run
    without model pairs (one model) compares the means against the real images instead."""
    if not summaries:
        return
    attach_intervals(summaries, boot)
    leader = summaries[0]
    present = set(boot.methods())  # a method with no usable score has no replicates
    if (leader.method, leader.options_hash) not in present:
        for i, s in enumerate(summaries, 1):
            s.rank = str(i)
        return
    scope = ranking_scope(summaries)
    for figure in {ScopedMetric(sc, m.name) for sc in (Scope.PAIR, scope) for m in boot.metrics if m.leaderboard}:
        versus_leader(summaries, boot, figure, level)
    _rank_with_ties(summaries, boot, ScopedMetric(scope, rank_by), present, level)


def versus_leader(summaries: Sequence[MethodSummary], boot, figure: ScopedMetric, level: float) -> None:
    """Each summary's paired comparison with the leader (the first) on ``figure``."""
    from .stats import compare_to_leader

    by_key = {(s.method, s.options_hash): s for s in summaries[1:]}
    table = compare_to_leader(boot, (summaries[0].method, summaries[0].options_hash), figure.metric, figure.scope, level=level)
    for r in table.itertuples(index=False):
        s = by_key.get((r.method, r.options_hash))
        if s is not None:
            s.versus_leader[figure.key] = {
                "difference": float(r.difference), "low": float(r.low), "high": float(r.high),
                "p_value": float(r.p_value), "p_holm": float(r.p_holm), "tied": bool(r.tied),
            }


def _rank_with_ties(summaries: Sequence[MethodSummary], boot, figure: ScopedMetric, present: set, level: float) -> None:
    """Ranks down the summaries' order: tied with the group's head unless the paired difference on
    ``figure`` is significant (against the leader: its Holm-corrected p in ``versus_leader``)."""
    from .stats import paired_p_value

    leader = summaries[0]
    head, leader.rank = leader, "1"
    for i, s in enumerate(summaries[1:], 2):
        if (s.method, s.options_hash) not in present:
            s.rank = str(i)
            continue
        if head is leader:
            p = s.versus_leader.get(figure.key, {}).get("p_holm", float("nan"))
        else:
            mine = boot.replicates(s.method, s.options_hash, figure.scope, figure.metric)
            p = paired_p_value(mine - boot.replicates(head.method, head.options_hash, figure.scope, figure.metric))
        if math.isfinite(p) and p >= level:
            s.rank = head.rank + "="
        else:
            head, s.rank = s, str(i)


def _per_target(pairs: pd.DataFrame, kind: str, summaries: Sequence[MethodSummary], targets: Sequence[str]) -> list[list[Any]]:
    """Accuracy per target (Table 1: mean over sources; Table 2: the one pair against real images)
    and the method's mean, with its interval. A target's cell has an interval where it is one pair's
    figure, for every target of the row alike (a mean over sources has none)."""
    rows = []
    for s in summaries:
        g = pairs[(pairs["method"] == s.method) & (pairs["options_hash"] == s.options_hash) & (pairs["pair_kind"] == kind)]
        single = "accuracy_low" in g.columns and g.groupby("target").size().max() == 1 if len(g) else False
        per: list[Any] = []
        for t in targets:
            x = g[g["target"] == t]
            if single and len(x) == 1:
                per.append(estimate(float(x["accuracy"].iloc[0]), float(x["accuracy_low"].iloc[0]), float(x["accuracy_high"].iloc[0])))
            else:
                per.append(_mean(x["accuracy"]))
        rows.append([s.label, *per, s.cell(Scope.PAIR if kind == "model" else Scope.REAL, "accuracy")])
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
            "table3", "Table 3 · Milliseconds per image",
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
            [[s.label, *[s.cell(Scope.target_family(f), "accuracy") for f in families],
              *[s.cell(Scope.target_family(f, real=True), "accuracy") for f in families]] for s in summaries],
            "Family f: mean over pairs whose target's autoencoder belongs to f (f · real: against real images). " + SHORT_DIRECTION,
        )
    )
    tables += shared_table(pairs, summaries)
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


def shared_table(pairs: pd.DataFrame, summaries: Sequence[MethodSummary]) -> list[Table]:
    """The pairs of models on one autoencoder (kind "shared"), apart from Table 1: each method's
    accuracy on each, with its interval; none when the run has no such pair."""
    shared = pairs[pairs["pair_kind"] == SHARED] if len(pairs) else pairs
    if not len(shared):
        return []
    cells = list(dict.fromkeys(zip(shared["target"], shared["source"])))
    rows = []
    for s in summaries:
        mine = shared[(shared["method"] == s.method) & (shared["options_hash"] == s.options_hash)].set_index(["target", "source"])
        row: list[Any] = [s.label]
        for cell in cells:
            x = mine.loc[cell] if cell in mine.index else None
            row.append(float("nan") if x is None else estimate(float(x["accuracy"]), x.get("accuracy_low"), x.get("accuracy_high")))
        rows.append(row)
    return [Table(
        "shared", "Shared autoencoders · accuracy (%) between models on one and the same autoencoder",
        ["method", *[f"{t} / {src}" for t, src in cells]], ["text", *["pct"] * len(cells)], rows,
        "Column T / S: T's evaluation images against S's under τ_T, where T and S share their autoencoder (identical weights). No method that "
        "reads an image through the autoencoder can separate such models (50 % is chance), so these pairs are left out of Table 1, every "
        "mean and the ranks. " + SHORT_DIRECTION,
    )]


def _metrics_table(key: str, heading: str, metrics: Sequence[MetricLike], summaries: Sequence[MethodSummary], note: str) -> Table:
    """Each method's pair mean and real mean of ``metrics``, with their intervals."""
    return Table(
        key, f"{heading}: " + ", ".join(m.title for m in metrics),
        ["method", *[f"pairs {m.title}" for m in metrics], *[f"real {m.title}" for m in metrics]],
        ["text", *[column_format(m) for m in metrics] * 2],
        [[s.label, *[s.cell(Scope.PAIR, m.name) for m in metrics], *[s.cell(Scope.REAL, m.name) for m in metrics]] for s in summaries],
        note,
    )


def leaderboard_table(
    summaries: Sequence[MethodSummary], *, with_runs: dict[tuple[str, str], str] | None = None, metrics: Sequence[MetricLike] = BUILTIN_METRICS,
    rank_pools: dict[str, list[str]] | None = None,
) -> Table:
    """Methods in rank order. With intervals (a run's joint bootstrap): every figure with its interval,
    ranks with ties ("1=": not distinguishable from the method heading its group), and each method's
    paired difference from the leader in mean pair accuracy and AUC with its Holm-corrected p-value.
    ``rank_pools`` (a board merged from runs that did not all score the same images: letter -> the
    runs of a pool, see :mod:`aedr.bench.leaderboard`): each rank is followed by its pool's letter,
    and the note says why ranks of different pools are not compared."""
    scope = ranking_scope(summaries)  # a run without model pairs is ranked and summed up against the real images
    board = Board(summaries, scope, metrics, with_runs, rank_pools)
    columns = board.columns()
    rows = [[cell(i, s) for _, _, cell in columns] for i, s in enumerate(summaries, 1)]
    cols = [title for title, _, _ in columns]
    heading = "mean accuracy over model pairs" if scope == Scope.PAIR else "accuracy against real images"
    secondary = [f"real {m.title}" for m in board.shown[1:] if scope == Scope.PAIR] + \
        [c for c in cols if "AUC vs #1" in c or c in ("p AUC (Holm)", "ms / image", "pairs", "targets")]
    return Table("leaderboard", f"Leaderboard · methods ranked by {heading}", cols, [f for _, f, _ in columns], rows,
                 board.note(), tuple(secondary))


Cell = Callable[[int, MethodSummary], Any]  # (place on the board, the method's summary) -> the cell


class Board:
    """What a leaderboard shows for these summaries: its columns, each with a format and how its
    cell is read from a summary, and the note that explains them."""

    def __init__(self, summaries: Sequence[MethodSummary], scope: Scope, metrics: Sequence[MetricLike],
                 with_runs: dict[tuple[str, str], str] | None, rank_pools: dict[str, list[str]] | None):
        self.summaries, self.scope, self.with_runs, self.rank_pools = summaries, scope, with_runs, rank_pools
        self.pool_of_run = {run: letter for letter, runs in (rank_pools or {}).items() for run in runs}
        self.shown = [m for m in metrics if m.leaderboard and getattr(m, "kind", "pair") == "pair"]
        self.opened = [m for m in metrics if m.leaderboard and getattr(m, "kind", "pair") == "openset"
                       and any(m.name in s.openset for s in summaries)]
        self.scopes = (Scope.PAIR, Scope.REAL) if scope == Scope.PAIR else (Scope.REAL,)
        self.robust_key = robust_name(scope, "auc")
        self.compared = any(s.versus_leader for s in summaries)
        self.robust = any(math.isfinite(s.robust.get(self.robust_key, math.nan)) for s in summaries)
        self.openset_ranked = any(s.openset_rank for s in summaries)
        self.hard = scope == Scope.PAIR and any(s.n_hard_pairs for s in summaries)
        self.high_fidelity = sorted(f for f in HIGH_FIDELITY_FAMILIES if any(f in s.family_pair_accuracy for s in summaries)) \
            if scope == Scope.PAIR else []

    def columns(self) -> list[tuple[str, str, Cell]]:
        out: list[tuple[str, str, Cell]] = [("rank (pool)" if self.rank_pools else "rank", "text", self.rank_cell),
                                            ("method", "text", lambda i, s: s.label)]
        for m in self.shown:
            out += [(f"{'pairs' if sc == Scope.PAIR else 'real'} {m.title}", column_format(m), lambda i, s, sc=sc, m=m: s.cell(sc, m.name))
                    for sc in self.scopes]
        if self.hard:  # beside the pair mean: the hardest third of the pairs, which a saturated mean hides
            out.insert(3, ("hard pairs acc %", "pct", lambda i, s: s.cell(Scope.HARD, "accuracy")))
        at = 4 if self.hard else 3  # and the pairs of the high-fidelity autoencoders, where the AEDR paper's claim lies
        for f in reversed(self.high_fidelity):
            out.insert(at, (f"{f} pairs acc %", "pct", lambda i, s, f=f: s.cell(Scope.target_family(f), "accuracy")))
        if self.robust:
            out.append(("robust AUC" if self.scope == Scope.PAIR else "robust real AUC", "auc", lambda i, s: s.cell(Scope.ROBUST, self.robust_key)))
        out += [(m.title, column_format(m), lambda i, s, m=m: s.cell(Scope.OPENSET, m.name)) for m in self.opened]
        if self.openset_ranked:
            out.append(("open-set rank", "text", lambda i, s: s.openset_rank or "–"))
        if self.compared:
            out += self.versus_leader_columns()
        out += [("ms / image", "sec", lambda i, s: s.seconds_per_image)]
        out += [("pairs", "int", lambda i, s: s.n_pairs)] if self.scope == Scope.PAIR else []
        out += [("targets", "int", lambda i, s: s.n_targets)]
        if self.with_runs is not None:
            out.append(("runs", "text", lambda i, s: self.with_runs.get((s.method, s.options_hash), "")))
        return out

    def rank_cell(self, i: int, s: MethodSummary) -> str:
        if not self.rank_pools:
            return s.rank or str(i)
        pool = self.pool_of_run.get((self.with_runs or {}).get((s.method, s.options_hash), ""))
        return f"{s.rank} {pool}" if pool and s.rank not in ("", "–") else "–"

    def versus_leader_columns(self) -> list[tuple[str, str, Cell]]:
        name = "pairs" if self.scope == Scope.PAIR else "real"

        def part(metric: str, which: int) -> Cell:
            def cell(i: int, s: MethodSummary) -> Any:
                v = s.versus_leader.get(ScopedMetric(self.scope, metric).key)
                if not v:
                    return float("nan")
                return estimate(v["difference"], v["low"], v["high"]) if which == 0 else v["p_holm"]
            return cell

        return [(f"Δ {name} acc vs #1", "dpct", part("accuracy", 0)), ("p acc (Holm)", "p", part("accuracy", 1)),
                (f"Δ {name} AUC vs #1", "dauc", part("auc", 0)), ("p AUC (Holm)", "p", part("auc", 1))]

    def note(self) -> str:
        pair = self.scope == Scope.PAIR
        if pair:
            note = "Ranked by mean accuracy over ordered model pairs (Table 1), ties by accuracy against real images. " + SHORT_DIRECTION
        else:
            note = "No model pairs (one model): ranked by accuracy against real images (Table 2). " + SHORT_DIRECTION
        if any(s.intervals for s in self.summaries):
            note += " [low, high]: bootstrap confidence interval (95 % unless the run's confidence says otherwise)."
        if any(s.rank.endswith("=") for s in self.summaries):
            note += " Rank \"k=\": not distinguishable (paired bootstrap, p >= 0.05) from the method heading its group."
        if self.compared:
            note += " Δ: paired difference from the leader, p Holm-corrected over the methods."
        if self.rank_pools:
            pools = "; ".join(f"{letter}: {', '.join(runs)}" for letter, runs in self.rank_pools.items())
            note += (f" Rank (pool): ranks hold within a pool of runs ({pools}); the runs of a pool scored the same images and are"
                     " ranked by one paired bootstrap, while different pools scored different images, so no paired comparison, and no"
                     " rank, spans two pools.")
        if self.with_runs is not None and any(s.rank == "–" for s in self.summaries):
            note += " –: a method whose pairs come from several runs, unranked."
        if self.hard:
            n = max(s.n_hard_pairs for s in self.summaries)
            note += (f" Hard pairs acc: the mean over the hardest third of the model pairs ({n}), those whose two models' generated images"
                     " are closest (a distance between their samples that involves no method's score, ModelPlugin.sample_distance).")
        if self.high_fidelity:
            names = ", ".join(self.high_fidelity)
            note += (f" {names} pairs acc: the mean over the model pairs whose target has a high-fidelity 16-channel autoencoder"
                     " (family " + names + ": SD3, FLUX, zoo-kl16), which reconstructs every image, its own or not, several dB better than a 4-channel VAE.")
        if any(s.n_shared_pairs for s in self.summaries):
            note += (" Pairs of models on one and the same autoencoder are left out of every pair mean and rank (no autoencoder-based"
                     " method can separate them): see the shared-autoencoder table.")
            if self.opened:
                note += (" The open-set figures keep both models as candidates: either accepts the other's images (see the false-accusation"
                         " table).")
        if self.robust:
            over = "model pairs" if pair else "the targets against real images"
            note += f" Robust{'' if pair else ' real'} AUC: the mean, over the run's perturbations, of the mean AUC over {over} (see the robustness tables)."
        if self.opened:
            note += (" Open-set columns: every model a candidate, the verdict as `aedr attribute` gives it (see the open-set table);"
                     " open-set rank: by open-set accuracy, with ties.")
        return note
