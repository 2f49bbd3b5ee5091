"""Leaderboards: one run's, or several runs merged (``aedr leaderboard DIR...``).

Runs are merged at the level of (method, options hash, target, source) pairs: a method benchmarked
in one run and another method in a second run land on one board. When two runs hold the same pair,
the one that finished last wins (and the merge says so). Means are over the pairs each method has,
so the "pairs" and "targets" columns tell whether two rows are averaged over the same work.
A board is made of the clean pairs; a method benchmarked with perturbations in one run keeps that
run's robust AUC.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import jsonable, write_text_atomic
from .metrics import MetricInfo
from .outputs import METRICS_JSON
from .render.format import first_line
from .schema import BenchDocument, SchemaError, Scope, ScopedMetric
from .tables import DIRECTION, MethodSummary, summarize

FORMAT = "aedr-leaderboard/1"


@dataclass
class RunRecord:
    """What a leaderboard needs from one run folder (its ``metrics.json``)."""

    path: Path
    name: str
    finished: str
    config: dict[str, Any]
    models: list[dict[str, Any]]
    pairs: pd.DataFrame
    timings: pd.DataFrame
    metrics: list[MetricInfo] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    intervals: dict[tuple[str, str], dict[str, tuple[float, float]]] = field(default_factory=dict)  # per method's summary
    robust: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)  # per method's robust figures

    def describe(self) -> str:
        c = self.config
        models = ", ".join(m["name"] for m in self.models)
        return f"{self.name}: config {c.get('name', '?')}, models [{models}], {c.get('n_cal')} cal / {c.get('n_eval')} eval images, alpha {c.get('alpha')}, finished {self.finished}"


class LeaderboardError(ValueError):
    pass


def read_run(folder: str | Path) -> RunRecord:
    """A run's metrics.json (``aedr.bench.schema.BenchDocument``; an aedr-bench/1 file is converted)."""
    folder = Path(folder)
    path = folder / METRICS_JSON if folder.is_dir() else folder
    try:
        text = json.loads(path.read_text())
    except OSError:
        raise LeaderboardError(f"{folder}: no {METRICS_JSON} (is it the --out folder of an `aedr bench` run?)") from None
    except ValueError as exc:
        raise LeaderboardError(f"{path}: not valid JSON ({exc})") from None
    try:
        doc = BenchDocument.from_json(text, str(path))
    except SchemaError as exc:
        raise LeaderboardError(str(exc)) from None
    pairs = doc.pairs_frame(perturbation="").drop(columns="perturbation")
    not_run = [f"{m['name']}: {first_line(m['error'])}" for m in doc.methods if m.get("error")]
    intervals = {(s.method, s.options_hash): s.intervals for s in doc.summaries}
    robust = {(s.method, s.options_hash): s.robust for s in doc.summaries if s.robust}
    name = path.parent.name if path.name == METRICS_JSON else path.stem
    return RunRecord(path.parent, name, doc.finished, doc.config, doc.models, pairs, doc.timings_frame(), doc.metrics, not_run, intervals, robust)


@dataclass
class Merged:
    runs: list[RunRecord]
    pairs: pd.DataFrame
    timings: pd.DataFrame
    summaries: list[MethodSummary]
    runs_by_method: dict[tuple[str, str], str]
    notes: list[str]
    metrics: list[MetricInfo] = field(default_factory=list)


def merge_runs(runs: list[RunRecord]) -> Merged:
    if not runs:
        raise LeaderboardError("no runs to merge")
    ordered = sorted(runs, key=lambda r: r.finished)
    pairs = pd.concat([r.pairs.assign(run=r.name) for r in ordered], ignore_index=True)
    timings = pd.concat([r.timings.assign(run=r.name) for r in ordered], ignore_index=True)
    notes = []
    key = ["method", "options_hash", "target", "source"]
    dup = pairs.duplicated(key, keep="last")
    if dup.any():
        notes.append(f"{int(dup.sum())} (method, target, source) cell(s) appear in more than one run; the latest run's values are used")
    pairs = pairs[~dup].reset_index(drop=True)
    timings = timings.drop_duplicates(["method", "options_hash", "target"], keep="last").reset_index(drop=True)
    runs_by_method: dict[tuple[str, str], str] = {}
    for (m, h), g in pairs.groupby(["method", "options_hash"], sort=False):
        runs_by_method[(str(m), str(h))] = ", ".join(dict.fromkeys(g["run"]))
    configs = {json.dumps({k: r.config.get(k) for k in ("n_cal", "n_eval", "alpha", "seed")}, sort_keys=True) for r in runs}
    if len(configs) > 1:
        notes.append("the runs differ in budgets, alpha or seed (see the run list): compare rows with care")
    metrics = list({m.name: m for r in ordered for m in r.metrics}.values())  # order of first appearance; the latest run describes each
    summaries = summarize(pairs, timings, metrics)
    by_name = {r.name: r for r in ordered}
    for s in summaries:  # a method benchmarked in one run keeps that run's intervals
        runs_of = runs_by_method.get((s.method, s.options_hash), "").split(", ")
        if len(runs_of) == 1 and runs_of[0] in by_name:
            s.intervals = dict(by_name[runs_of[0]].intervals.get((s.method, s.options_hash), {}))
            s.robust = dict(by_name[runs_of[0]].robust.get((s.method, s.options_hash), {}))
    rank_by_overlap(summaries)
    if any(s.intervals for s in summaries):
        notes.append("ranks: \"k=\" where a method's pair-accuracy interval overlaps that of the method heading its group "
                     "(intervals are each run's own; no paired comparison spans runs)")
    return Merged(ordered, pairs, timings, summaries, runs_by_method, notes, metrics)


def rank_by_overlap(summaries: list[MethodSummary], metric: MetricInfo | None = None) -> None:
    """Ranks with ties for a merged board, where no joint bootstrap spans the runs: a method whose
    pair interval of ``metric`` (accuracy unless given) overlaps that of the method heading its
    group, in the metric's direction, shares its rank (a conservative, unpaired rule). Methods
    without an interval get plain ranks."""
    key = ScopedMetric(Scope.PAIR, "accuracy" if metric is None else metric.name).key
    higher = metric is None or metric.higher_is_better
    head = None
    for i, s in enumerate(summaries, 1):
        mine = s.intervals.get(key)
        lead = head.intervals.get(key) if head is not None else None
        if head is not None and mine and lead and (mine[1] >= lead[0] if higher else mine[0] <= lead[1]):
            s.rank = f"{head.rank.rstrip('=')}="
        else:
            head, s.rank = s, str(i)


def merged_json(m: Merged) -> dict[str, Any]:
    return jsonable(
        {
            "format": FORMAT,
            "score_direction": DIRECTION,
            "runs": [{"name": r.name, "path": str(r.path), "finished": r.finished, "config": r.config, "models": r.models, "not_run": r.not_run} for r in m.runs],
            "notes": m.notes,
            "metrics": [asdict(x) for x in m.metrics],
            "leaderboard": [{"rank": i, **s.record(), "runs": m.runs_by_method.get((s.method, s.options_hash), "")} for i, s in enumerate(m.summaries, 1)],
            "pairs": m.pairs.to_dict("records"),
        }
    )


def write_leaderboard(folders: list[str | Path], out: str | Path) -> tuple[Merged, dict[str, Path]]:
    from .render.html import merged_html
    from .render.markdown import merged_markdown

    merged = merge_runs([read_run(f) for f in folders])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"md": out / "leaderboard.md", "html": out / "leaderboard.html", "json": out / "leaderboard.json"}
    write_text_atomic(files["md"], merged_markdown(merged))
    write_text_atomic(files["html"], merged_html(merged))
    write_text_atomic(files["json"], json.dumps(merged_json(merged), indent=1, allow_nan=False))
    return merged, files
