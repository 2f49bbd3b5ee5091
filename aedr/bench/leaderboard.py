"""Leaderboards: one run's, or several runs merged (``aedr leaderboard DIR...``).

Runs are merged at the level of (method, options hash, target, source) pairs: a method benchmarked
in one run and another method in a second run land on one board. When two runs hold the same pair,
the one that finished last wins (and the merge says so). Means are over the pairs each method has,
so the "pairs" and "targets" columns tell whether two rows are averaged over the same work.
A board is made of the clean pairs; a method benchmarked with perturbations in one run keeps that
run's robust AUC.

Honesty across runs: ranks and paired differences come from a joint bootstrap over the images, so
they compare methods only where paired data exist. Runs that scored the same images (the same
image hashes in every image set, the same clusters and bootstrap settings: runs of one config and
seed) form a pool; the methods of a pool are ranked again by one joint bootstrap over the score
files of its runs, which gives each method the very intervals its own run gave (the draws depend
only on the seed and the images) and ranks them as one run holding them all would. Methods of
different pools are not ranked against each other: each pool has its own ranks, the board says
which pool each rank belongs to and why, and the paired differences from a leader are left out.
A method whose pairs come from several runs has neither interval nor rank.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..files import jsonable, write_text_atomic
from ..fingerprint import digest
from .merged import Merged, RunRecord
from .metrics import BUILTIN_METRICS, SHARED, Metric
from .outputs import METRICS_JSON, SCORES
from .render.format import first_line
from .schema import BenchDocument, SchemaError
from .tables import DIRECTION, MethodSummary, apply_uncertainty, summarize

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
    alphas = {(str(t["method"]), str(t["options_hash"]), str(t["target"])): float(t["alpha"]) for t in doc.thresholds
              if not t.get("perturbation") and isinstance(t.get("alpha"), (int, float)) and math.isfinite(t["alpha"])}
    return RunRecord(path.parent, name, doc.finished, doc.config, doc.models, pairs, doc.timings_frame(), doc.metrics, not_run,
                     alphas, doc.uncertainty,
                     {k: s.intervals for k, s in keyed.items()}, {k: s.robust for k, s in keyed.items() if s.robust},
                     {k: s.rank for k, s in keyed.items()}, {k: dict(s.versus_leader) for k, s in keyed.items()},
                     any(s.openset for s in doc.summaries))


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


def merge_runs(runs: list[RunRecord], metrics: list[Metric] | None = None) -> Merged:
    """One board of ``runs`` (see the module's docstring). ``metrics``: the registered pair metrics,
    which a joint re-ranking gives intervals (the built-in ones when not given)."""
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
    if any(r.has_openset for r in runs):
        notes.append("the open-set figures are left out: each is over its own run's candidate models (see each run's leaderboard)")
    board_metrics = list({m.name: m for r in ordered for m in r.metrics}.values())  # order of first appearance; the latest run describes each
    summaries = summarize(pairs, timings, board_metrics)
    pools = RankPools(ordered, summaries, runs_of, list(metrics or BUILTIN_METRICS))
    summaries, rank_pools = pools.rank()
    notes += pools.notes
    runs_by_method = {k: ", ".join(names) for k, names in runs_of.items()}  # as the tables show them
    return Merged(ordered, pairs, timings, summaries, runs_by_method, notes, board_metrics, rank_pools)


class RankPools:
    """The ranks of a merged board: its methods, each from one run, pooled by the images their runs
    scored; one ranking per pool (see the module's docstring)."""

    def __init__(self, runs: list[RunRecord], summaries: list[MethodSummary], runs_of: dict[tuple[str, str], list[str]], metrics: list[Metric]):
        self.runs, self.summaries, self.runs_of, self.metrics = runs, summaries, runs_of, metrics
        self.by_name = {r.name: r for r in runs}
        self.scores: dict[str, pd.DataFrame] = {}
        self.notes: list[str] = []

    def rank(self) -> tuple[list[MethodSummary], dict[str, list[str]]]:
        """The summaries in board order (pool by pool, each in rank order) and the pools, by letter."""
        members: dict[str, list[MethodSummary]] = {}
        keys = self.pairing_keys()
        for s in self.summaries:
            names = self.runs_of.get((s.method, s.options_hash), [])
            if len(names) != 1:  # pairs from several runs: no interval or rank of any one run describes them
                s.rank = "–"
                continue
            s.robust = dict(self.by_name[names[0]].robust.get((s.method, s.options_hash), {}))
            members.setdefault(keys[names[0]], []).append(s)
        pools: dict[str, list[str]] = {}
        ordered: list[MethodSummary] = []
        position = {r.name: i for i, r in enumerate(self.runs)}
        first_run = {key: min(position[self.runs_of[(s.method, s.options_hash)][0]] for s in pool) for key, pool in members.items()}
        for letter, key in zip(letters(), sorted(members, key=first_run.__getitem__)):  # pools in the order their runs finished
            pool = members[key]
            runs = list(dict.fromkeys(self.runs_of[(s.method, s.options_hash)][0] for s in pool))
            self.rank_pool(pool, runs)
            pools[letter] = runs
            ordered += pool
        if len(pools) > 1:  # each pool is ranked on its own: no paired difference spans the board
            for s in ordered:
                s.versus_leader = {}
        return ordered + [s for s in self.summaries if s.rank == "–"], pools

    def pairing_keys(self) -> dict[str, str]:
        """Each run's pairing key: runs with equal keys scored the same images under the same
        bootstrap settings. A run whose score file cannot be read, or that has no intervals, pairs with no other."""
        keys = {}
        for run in self.runs:
            scores, settings = self.clean_scores(run), run.uncertainty or {}
            if scores is None or not settings.get("n_resamples") or "clusters" not in settings:
                keys[run.name] = f"run:{run.name}"
                continue
            images = scores[["source", "split", "image_hash"]].drop_duplicates().sort_values(["source", "split", "image_hash"])
            clusters = {h: settings["clusters"][h] for h in images["image_hash"] if h in settings["clusters"]}
            keys[run.name] = digest(images.to_csv(index=False), json.dumps(clusters, sort_keys=True),
                                    json.dumps([settings["n_resamples"], settings.get("seed"), settings.get("confidence")]))
        return keys

    def clean_scores(self, run: RunRecord) -> pd.DataFrame | None:
        """The run's usable clean scores (its scores.parquet), or None when they cannot be read."""
        if run.name not in self.scores:
            try:
                frame = pd.read_parquet(run.path / SCORES)
                frame = frame[(frame["perturbation"] == "") & (frame["status"] == "ok")]
                frame = frame[np.isfinite(pd.to_numeric(frame["score"], errors="coerce"))]
            except (OSError, ValueError, KeyError):
                return None
            self.scores[run.name] = frame
        return self.scores[run.name]

    def rank_pool(self, pool: list[MethodSummary], runs: list[str]) -> None:
        """Intervals, ranks and paired comparisons for a pool's methods (in rank order): its run's,
        or, for a pool of several runs, those of one joint bootstrap over their scores."""
        if len(runs) == 1:
            run = self.by_name[runs[0]]
            for s in pool:
                k = (s.method, s.options_hash)
                s.intervals, s.rank, s.versus_leader = dict(run.intervals.get(k, {})), run.ranks.get(k, ""), dict(run.versus_leader.get(k, {}))
            return
        from .stats import bootstrap_bench

        frames, alphas, shared, hard = [], {}, set(), set()
        for s in pool:
            run = self.by_name[self.runs_of[(s.method, s.options_hash)][0]]
            scores = self.clean_scores(run)
            frames.append(scores[(scores["method"] == s.method) & (scores["options_hash"] == s.options_hash)])
            alphas.update({k: a for k, a in run.alphas.items() if k[:2] == (s.method, s.options_hash)})
            shared.update(zip(*(run.pairs.loc[run.pairs["pair_kind"] == SHARED, c] for c in ("target", "source"))))
            hard.update(zip(*(run.pairs.loc[run.pairs["hard"].eq(True), c] for c in ("target", "source"))))
        settings = self.by_name[runs[-1]].uncertainty or {}
        named = set(settings.get("metrics_with_intervals") or ())
        boot = bootstrap_bench(pd.concat(frames, ignore_index=True), alpha=alphas, n_resamples=int(settings["n_resamples"]),
                               seed=int(settings.get("seed") or 0), confidence=float(settings.get("confidence") or 0.95),
                               clusters=settings.get("clusters") or None, metrics=[m for m in self.metrics if m.name in named],
                               shared_pairs=frozenset(shared), hard_pairs=frozenset(hard))
        apply_uncertainty(pool, boot)
        self.notes.append(f"runs {', '.join(runs)} scored the same images: their methods are ranked together by one joint bootstrap over their scores")


def letters():
    """A, B, ..., Z, AA, AB, ... (the names of rank pools)."""
    n = 0
    while True:
        n += 1
        name, k = "", n
        while k:
            k, r = divmod(k - 1, 26)
            name = chr(65 + r) + name
        yield name


def merged_json(m: Merged) -> dict[str, Any]:
    return jsonable(
        {
            "format": FORMAT,
            "score_direction": DIRECTION,
            "runs": [{"name": r.name, "path": str(r.path), "finished": r.finished, "config": r.config, "models": r.models, "not_run": r.not_run} for r in m.runs],
            "notes": m.notes,
            "metrics": [asdict(x) for x in m.metrics],
            "rank_pools": m.rank_pools,
            "leaderboard": [{**s.record(), "runs": m.runs_by_method.get((s.method, s.options_hash), "")} for s in m.summaries],
            "pairs": m.pairs.to_dict("records"),
        }
    )


def write_leaderboard(folders: list[str | Path], out: str | Path, metrics: list[Metric] | None = None) -> tuple[Merged, dict[str, Path]]:
    from .render.html import merged_html
    from .render.markdown import merged_markdown

    merged = merge_runs([read_run(f) for f in folders], metrics)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"md": out / "leaderboard.md", "html": out / "leaderboard.html", "json": out / "leaderboard.json"}
    write_text_atomic(files["md"], merged_markdown(merged))
    write_text_atomic(files["html"], merged_html(merged))
    write_text_atomic(files["json"], json.dumps(merged_json(merged), indent=1, allow_nan=False))
    return merged, files
