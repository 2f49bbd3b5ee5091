"""Leaderboards: one run's, or several runs merged (``aedr leaderboard DIR...``).

Runs are merged at the level of (method, options hash, target, source) pairs: a method benchmarked
in one run and another method in a second run land on one board. When two runs hold the same pair,
the one that finished last wins (and the merge says so). Means are over the pairs each method has,
so the "pairs" and "targets" columns tell whether two rows are averaged over the same work.
A board is made of the clean pairs; a method benchmarked with perturbations in one run keeps that
run's robust AUC.

Honesty across runs: a method whose pairs all come from one run keeps that run's intervals, rank and
paired comparison with its leader. Ranks and paired differences come from a run's own joint
bootstrap over its images, so none spans runs: when the board's methods come from more than one
run, each keeps the rank it had in its own run (and the board says so), the paired differences from
a leader are left out, and a method whose pairs come from several runs has neither interval nor rank.
(Runs of one configuration score the same images; a joint bootstrap over their score files could
rank them together, which this merge does not do.)
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import jsonable, write_text_atomic
from .merged import Merged, RunRecord
from .outputs import METRICS_JSON
from .render.format import first_line
from .schema import BenchDocument, SchemaError
from .tables import DIRECTION, MethodSummary, summarize

FORMAT = "aedr-leaderboard/1"
# What a run's figures depend on besides the method: runs that differ in any of these are compared with care.
RUN_SETTINGS = ("n_cal", "n_eval", "n_real", "alpha", "seed", "real", "real_cal", "perturbations", "calibrate_perturbed")


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
    keyed = {(s.method, s.options_hash): s for s in doc.summaries}
    name = path.parent.name if path.name == METRICS_JSON else path.stem
    return RunRecord(path.parent, name, doc.finished, doc.config, doc.models, pairs, doc.timings_frame(), doc.metrics, not_run,
                     {k: s.intervals for k, s in keyed.items()}, {k: s.robust for k, s in keyed.items() if s.robust},
                     {k: s.rank for k, s in keyed.items()}, {k: dict(s.versus_leader) for k, s in keyed.items()})


def distinct_names(paths: list[Path]) -> list[str]:
    """Each run's name: its folder's name, with as many parent folders as tell it from the others
    (``x/run``, ``y/run``)."""
    parts = [p.resolve().parts for p in paths]
    names = []
    for mine in parts:
        for k in range(1, len(mine) + 1):
            if sum(1 for other in parts if other[-k:] == mine[-k:]) == 1 or k == len(mine):
                names.append("/".join(mine[-k:]))
                break
    return names


def differing_settings(runs: list[RunRecord]) -> list[str]:
    """The settings (and the model sets) in which the runs differ."""
    differ = [k for k in RUN_SETTINGS if len({json.dumps(r.config.get(k), sort_keys=True, default=str) for r in runs}) > 1]
    if len({tuple(sorted(m.get("name", "") for m in r.models)) for r in runs}) > 1:
        differ.append("models")
    return differ


def merge_runs(runs: list[RunRecord]) -> Merged:
    if not runs:
        raise LeaderboardError("no runs to merge")
    for r, name in zip(runs, distinct_names([r.path for r in runs])):
        r.name = name
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
    runs_of = {(str(m), str(h)): list(dict.fromkeys(g["run"])) for (m, h), g in pairs.groupby(["method", "options_hash"], sort=False)}
    differ = differing_settings(runs)
    if differ:
        notes.append(f"the runs differ in {', '.join(differ)} (see the run list): compare rows with care")
    metrics = list({m.name: m for r in ordered for m in r.metrics}.values())  # order of first appearance; the latest run describes each
    summaries = summarize(pairs, timings, metrics)
    within = keep_run_figures(summaries, runs_of, {r.name: r for r in ordered})
    if within:  # the table's note says why
        order = {r.name: i for i, r in enumerate(ordered)}

        def run_order(s: MethodSummary) -> int:
            names = runs_of.get((s.method, s.options_hash), [])
            return order[names[0]] if len(names) == 1 else len(order)

        summaries.sort(key=lambda s: (run_order(s), *s.rank_key()))
    runs_by_method = {k: ", ".join(names) for k, names in runs_of.items()}  # as the tables show them
    return Merged(ordered, pairs, timings, summaries, runs_by_method, notes, metrics, within)


def keep_run_figures(summaries: list[MethodSummary], runs_of: dict[tuple[str, str], list[str]], by_name: dict[str, RunRecord]) -> bool:
    """Give each method whose pairs all come from one run (``runs_of``: the runs of each method's
    pairs) that run's intervals, robust figures and rank, and (when every method comes from the same
    run) its paired comparison with the leader. Returns whether the methods come from more than one
    run (ranks are then each run's own)."""
    sources = {tuple(runs_of.get((s.method, s.options_hash), ())) for s in summaries}
    within = len(sources) > 1
    for s in summaries:
        k = (s.method, s.options_hash)
        names = runs_of.get(k, [])
        run = by_name.get(names[0]) if len(names) == 1 else None
        if run is None:  # pairs from several runs: no interval or rank of any one run describes them
            s.rank = "–"
            continue
        s.intervals = dict(run.intervals.get(k, {}))
        s.robust = dict(run.robust.get(k, {}))
        s.rank = run.ranks.get(k, "")
        s.versus_leader = {} if within else dict(run.versus_leader.get(k, {}))
    return within


def merged_json(m: Merged) -> dict[str, Any]:
    return jsonable(
        {
            "format": FORMAT,
            "score_direction": DIRECTION,
            "runs": [{"name": r.name, "path": str(r.path), "finished": r.finished, "config": r.config, "models": r.models, "not_run": r.not_run} for r in m.runs],
            "notes": m.notes,
            "metrics": [asdict(x) for x in m.metrics],
            "ranks_within_runs": m.ranked_within_runs,
            "leaderboard": [{**s.record(), "runs": m.runs_by_method.get((s.method, s.options_hash), "")} for s in m.summaries],
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
