"""A registered metric carries its statistics: intervals from the joint bootstrap (vectorised or,
without ``replicates``, one ``compute`` per replicate), paired comparisons and ranks in its
direction, in a run's files and on a merged leaderboard; and the results document's schema
(typed scopes, format versions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import aedr
from aedr.bench import Metric, load_config, run_bench, stats
from aedr.bench.leaderboard import LeaderboardError, merge_runs, read_run
from aedr.bench.metrics import BUILTIN_METRICS, accuracy
from aedr.bench.schema import FORMAT, Scope, ScopedMetric
from aedr.bench.tables import apply_uncertainty, summarize
from aedr.methods.aedr_method import AEDR
from test_bench_support import BenchModels, make_models
from test_stats import make_scores

pytestmark = pytest.mark.usefixtures("single_thread")


# -- the metrics a plugin registers ------------------------------------------------------------------------
def error_rate(belonging, other, threshold):
    return 1.0 - accuracy(belonging, other, threshold)


def balanced_accuracy(belonging, other, threshold):
    if not np.isfinite(threshold) or not belonging.size or not other.size:
        return float("nan")
    return float((np.mean(belonging < threshold) + np.mean(other >= threshold)) / 2)


def balanced_accuracy_replicates(belonging, other, tau, *, belonging_counts, other_counts):
    """Vectorised: counts are multiplicities, one row per replicate."""
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = (belonging_counts * (belonging[None, :] < tau[:, None])).sum(axis=1) / belonging_counts.sum(axis=1)
        tnr = (other_counts * (other[None, :] >= tau[:, None])).sum(axis=1) / other_counts.sum(axis=1)
    out = (tpr + tnr) / 2
    return np.where(np.isfinite(tau) & (belonging_counts.sum(axis=1) > 0) & (other_counts.sum(axis=1) > 0), out, np.nan)


ERROR_RATE = Metric("error_rate", "error %", error_rate, "pct", "1 - accuracy at tau_T", uses_threshold=True, leaderboard=True,
                    higher_is_better=False)
BALANCED = Metric("balanced_accuracy", "bal. acc %", balanced_accuracy, "pct", "mean of TPR and TNR at tau_T", uses_threshold=True,
                  leaderboard=True, replicates=balanced_accuracy_replicates)
BALANCED_LOOPED = Metric("balanced_looped", "bal. acc % (loop)", balanced_accuracy, "pct", uses_threshold=True)
METRICS = (*BUILTIN_METRICS, ERROR_RATE, BALANCED, BALANCED_LOOPED)


# -- the bootstrap and the paired statistics, on a constructed bench -------------------------------------------
@pytest.fixture(scope="module")
def boot():
    scores = make_scores(n_models=4, n_methods=3, n_cal=10, n_eval=9, n_real=7, seed=4, families=("kl", "vq"))
    return stats.bootstrap_bench(scores, alpha=0.1, n_resamples=300, seed=2, metrics=METRICS)


def test_every_given_metric_gets_intervals_and_the_built_ins_are_unchanged(boot):
    scores = make_scores(n_models=4, n_methods=3, n_cal=10, n_eval=9, n_real=7, seed=4, families=("kl", "vq"))
    builtin = stats.bootstrap_bench(scores, alpha=0.1, n_resamples=300, seed=2)
    mine = boot.pairs["metric"].isin(stats.METRICS).to_numpy()
    assert np.array_equal(boot.pair_replicates[mine], builtin.pair_replicates, equal_nan=True)
    assert boot.pairs[mine].reset_index(drop=True).equals(builtin.pairs)
    s = boot.summaries
    for metric in ("error_rate", "balanced_accuracy", "balanced_looped"):
        for scope in ("pair", "real", "family:kl", "real-family:vq"):
            row = s[(s["metric"] == metric) & (s["scope"] == scope)]
            assert len(row) == 3 and row[["estimate", "low", "high"]].notna().all().all() and (row["low"] <= row["high"]).all()
    assert [m.name for m in boot.metrics] == [m.name for m in METRICS]
    assert boot.metric("error_rate").higher_is_better is False


def test_compute_once_per_replicate_equals_the_vectorised_replicates(boot):
    """The fallback resamples the same images under the same refitted thresholds."""
    p = boot.pairs
    err = boot.pair_replicates[(p["metric"] == "error_rate").to_numpy()]
    acc = boot.pair_replicates[(p["metric"] == "accuracy").to_numpy()]
    assert np.allclose(err, 1.0 - acc, equal_nan=True, atol=1e-12)
    looped = boot.pair_replicates[(p["metric"] == "balanced_looped").to_numpy()]
    vectorised = boot.pair_replicates[(p["metric"] == "balanced_accuracy").to_numpy()]
    assert np.isfinite(looped).any() and np.allclose(looped, vectorised, equal_nan=True, atol=1e-12)


def test_a_lower_is_better_metric_ranks_ascending_with_the_same_ties(boot):
    for scope in ("pair", Scope.REAL):
        by_acc = stats.ranks_with_ties(boot, "accuracy", scope)
        by_err = stats.ranks_with_ties(boot, "error_rate", scope)
        assert list(by_err["estimate"]) == sorted(by_err["estimate"])  # ascending: the lowest error first
        assert list(by_acc["estimate"]) == sorted(by_acc["estimate"], reverse=True)
        assert list(by_err["method"]) == list(by_acc["method"]) and list(by_err["rank"]) == list(by_acc["rank"])
        leader = (by_err["method"].iloc[0], by_err["options_hash"].iloc[0])
        versus_err = stats.compare_to_leader(boot, leader, "error_rate", scope).set_index("method")
        versus_acc = stats.compare_to_leader(boot, leader, "accuracy", scope).set_index("method")
        assert (versus_err["difference"] > 0).all()  # more errors than the leader: a positive difference
        assert np.allclose(versus_err["difference"], -versus_acc["difference"])
        assert list(versus_err["tied"]) == list(versus_acc["tied"])


def test_only_leaderboard_metrics_are_compared(boot):
    with pytest.raises(ValueError, match="leaderboard metric"):
        stats.ranks_with_ties(boot, "balanced_looped")
    with pytest.raises(ValueError, match="scope"):
        stats.compare_to_leader(boot, ("meth0", "h0"), "error_rate", "family:kl")


def test_summaries_are_ordered_and_ranked_in_the_metric_direction(boot):
    scores = make_scores(n_models=4, n_methods=3, n_cal=10, n_eval=9, n_real=7, seed=4, families=("kl", "vq"))
    from test_stats import reference_evaluation

    pairs, _ = reference_evaluation(scores, 0.1)
    pairs["error_rate"] = 1.0 - pairs["accuracy"]
    timings = pd.DataFrame(columns=["method", "options_hash", "target", "images", "seconds"])
    metrics = [*BUILTIN_METRICS, ERROR_RATE]
    by_error = summarize(pairs, timings, metrics, rank_by="error_rate")
    errors = [s.pair["error_rate"] for s in by_error]
    assert errors == sorted(errors) and len(set(errors)) == 3  # ascending, and no two alike
    apply_uncertainty(by_error, boot, rank_by="error_rate")
    by_accuracy = summarize(pairs, timings, metrics)
    apply_uncertainty(by_accuracy, boot)
    # error = 1 - accuracy pair by pair: the same order, and the same ties (paired differences negated)
    assert [(s.method, s.rank) for s in by_error] == [(s.method, s.rank) for s in by_accuracy]
    for s in by_error[1:]:
        versus = s.versus_leader["pair:error_rate"]
        # the p-values agree up to the replicates whose difference is zero but for rounding (1 - a - (1 - b))
        assert versus["difference"] > 0 and versus["p_holm"] == pytest.approx(s.versus_leader["pair:accuracy"]["p_holm"], abs=0.02)
    with pytest.raises(ValueError, match="not a leaderboard metric"):
        summarize(pairs, timings, BUILTIN_METRICS, rank_by="tpr_at_1pct_fpr")


# -- a tiny bench: the metrics in every file and on the merged leaderboard -------------------------------------
class Flipped(AEDR):
    """AEDR's score negated: attributes to the wrong model, so it ranks last."""

    name = "flipped"

    def score_batch(self, ctx, x0):
        return -super().score_batch(ctx, x0)


class DirectionPlugin:
    @aedr.hookimpl
    def register_metrics(self, register):
        register(ERROR_RATE)
        register(BALANCED)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("metric-statistics")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(make_models(base / "models", n=2), methods=[Flipped]), DirectionPlugin()])
    cfg = load_config("default", models=["tiny-*"], methods=["aedr", "flipped"], out=str(base / "out"), n_cal=6, n_eval=6,
                      chunk_size=6, real="none", bootstrap=200)
    return run_bench(cfg, plugins=plugins, progress=False)


def test_a_registered_metric_gets_intervals_in_every_file(run):
    out = Path(run.config.out)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == FORMAT
    described = {m["name"]: m for m in doc["metrics"]}
    assert described["error_rate"]["higher_is_better"] is False and described["accuracy"]["higher_is_better"] is True
    assert {"error_rate", "balanced_accuracy"} <= set(doc["uncertainty"]["metrics_with_intervals"])
    for s in doc["summaries"]:
        for metric in ("error_rate", "balanced_accuracy"):
            low, high = s["intervals"][f"pair:{metric}"]
            assert 0 <= low <= high <= 1
    model_pairs = [p for p in doc["pairs"] if p["pair_kind"] == "model"]
    assert all(p["error_rate_low"] is not None and p["error_rate_low"] <= p["error_rate_high"] for p in model_pairs)
    leader, other = doc["summaries"]
    assert leader["pair_error_rate"] < other["pair_error_rate"]  # precondition: the runs differ
    assert other["versus_leader"]["pair:error_rate"]["difference"] > 0
    assert other["versus_leader"]["pair:balanced_accuracy"]["difference"] < 0
    board = [line.split(" | ") for line in (out / "leaderboard.md").read_text().split("## ")[1].splitlines() if line.startswith("| ")]
    for column in ("pairs error %", "pairs bal. acc %"):  # on the leaderboard, every figure with its interval
        at = board[0].index(column)
        assert all(row[at].count("[") == 1 for row in board[2:]) and len(board) == 4


def test_a_lower_is_better_metric_ranks_the_run_and_the_merged_board_ascending(run):
    order = [s.method for s in summarize(run.evaluation.pairs_frame(), run.evaluation.timings_frame(), run.metrics, rank_by="error_rate")]
    errors = {s.method: s.pair["error_rate"] for s in run.summaries}
    assert order == sorted(errors, key=errors.get) and errors[order[0]] < errors[order[1]]
    ranks = stats.ranks_with_ties(run.uncertainty, "error_rate")
    assert list(ranks["method"]) == order
    merged = merge_runs([read_run(run.config.out)])
    for s in merged.summaries:
        assert ScopedMetric(Scope.PAIR, "error_rate").key in s.intervals and s.pair["error_rate"] == pytest.approx(errors[s.method])
    assert {m.name: m.higher_is_better for m in merged.metrics}["error_rate"] is False


def test_a_lower_is_better_percentage_is_shaded_as_a_rate(run):
    """On the leaderboard and the metrics table an error percentage gets the lower-is-better format
    (green at 0), a percentage where higher is better keeps its own."""
    from aedr.bench.tables import leaderboard_table

    table = leaderboard_table(run.summaries, metrics=run.metrics)
    formats = dict(zip(table.columns, table.formats))
    assert formats["pairs error %"] == "rpct" and formats["pairs bal. acc %"] == "pct" and formats["pairs acc %"] == "pct"
    metrics_tables = [t for t in run.tables if "error %" in " ".join(t.columns) and t.key != "leaderboard"]
    assert metrics_tables and all(dict(zip(t.columns, t.formats))["pairs error %"] == "rpct" for t in metrics_tables)


# -- the results document ----------------------------------------------------------------------------------------
def test_scopes_are_typed_values_with_one_text_key():
    assert Scope.PAIR.key == "pair" and Scope.target_family("kl", real=True).key == "real-family:kl"
    for key in ("pair", "real", "robust", "family:kl", "real-family:dc-ae"):
        assert Scope.of(key).key == key and Scope.of(Scope.of(key)) == Scope.of(key)
    figure = ScopedMetric(Scope.target_family("kl"), "auc")
    assert figure.key == "family:kl:auc" and ScopedMetric.parse(figure.key) == figure
    with pytest.raises(ValueError, match="scope kind"):
        Scope.of("pairs")
    with pytest.raises(ValueError, match="family"):
        Scope("family")


def test_an_older_document_is_read_and_an_unknown_one_refused(run, tmp_path):
    doc = json.loads((Path(run.config.out) / "metrics.json").read_text())
    old = {**doc, "format": "aedr-bench/1", "metrics": [{k: v for k, v in m.items() if k != "higher_is_better"} for m in doc["metrics"]],
           "pairs": [{k: v for k, v in p.items() if k != "perturbation"} for p in doc["pairs"]]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    record = read_run(tmp_path / "old.json")
    assert len(record.pairs) == len(doc["pairs"]) and all(m.higher_is_better for m in record.metrics)  # a version-1 file has no direction
    assert record.intervals == read_run(run.config.out).intervals
    (tmp_path / "new.json").write_text(json.dumps({**doc, "format": "aedr-bench/9"}))
    with pytest.raises(LeaderboardError, match=r"new\.json: format 'aedr-bench/9' is not one this aedr reads"):
        read_run(tmp_path / "new.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "aedr-leaderboard/1"}))
    with pytest.raises(LeaderboardError, match=r"other\.json: not an aedr bench metrics file"):
        read_run(tmp_path / "other.json")
