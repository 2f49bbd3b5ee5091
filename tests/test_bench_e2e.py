"""A small benchmark end to end (two zoo models, every registered method with small budgets, real
photographs): its result files, checked against computations that do not use the bench code."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve
from typer.testing import CliRunner

import aedr
from aedr.bench import load_config, run_bench
from test_bench_support import make_real_folder, small_budgets

ROOT = Path(__file__).resolve().parents[1]
N_CAL, N_EVAL = 5, 4
ZOO_PAIR = ("zoo-kl-a", "zoo-vq")  # a KL and a VQ model of the shipped zoo

# One real benchmark run (every method, two zoo models) shared by the module: half a minute and more.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench-e2e")
    plugins = aedr.load_plugins()
    models = [plugins.model(name) for name in ZOO_PAIR]
    real = make_real_folder(base / "real")
    cfg = load_config(
        "default", models=list(ZOO_PAIR), methods=["*"], real=str(real), real_cal="none", n_cal=N_CAL, n_eval=N_EVAL,
        out=str(base / "out"), chunk_size=8, method_options=small_budgets(plugins),
    )
    result = run_bench(cfg, plugins=plugins, progress=False)
    return result, plugins, models, real


def test_every_registered_method_ran_or_says_why(bench):
    result, plugins, _, _ = bench
    doc = json.loads((Path(result.config.out) / "metrics.json").read_text())
    by_name = {m["name"]: m for m in doc["methods"]}
    assert set(by_name) == set(plugins.methods.names())
    ranked = {s["method"] for s in doc["summaries"]}
    for name, m in by_name.items():
        if m["error"]:
            print(f"{name} cannot run here: {m['error']}")
            assert name not in ranked
        else:
            assert name in ranked, name
    assert "aedr" in ranked
    assert doc["failures"] == []


def test_shared_first_passes_save_work_and_change_no_score(bench):
    """The same plan without the shared reconstruction cache gives the same scores, at a higher cost."""
    result, plugins, models, _ = bench
    assert result.stats.cache_hits > 0  # e.g. AEROBLADE's reconstruction and RONAN's latent shape, taken from AEDR's pass
    names = [m.name for m in result.plan.runnable][:3]
    cfg = dataclasses.replace(result.config, methods=names, real=None, share_reconstructions=False, report=False,
                              out=str(Path(result.config.out).parent / "unshared"))
    unshared = run_bench(cfg, plugins=plugins, progress=False)
    assert unshared.stats.cache_hits == 0 and unshared.stats.cache_misses == 0
    key = ["method", "options_hash", "target", "image_hash"]
    merged = unshared.scores.merge(result.scores, on=key, suffixes=("", "_shared"))
    assert len(merged) == len(unshared.scores) == len(names) * len(models) * (N_CAL + N_EVAL * len(models))
    # Without real images the chunks hold other images, so batches differ: the conformance suite's
    # tolerance for batch splits applies (float rounding of convolutions depends on the batch).
    np.testing.assert_allclose(merged["score"].to_numpy(float), merged["score_shared"].to_numpy(float), rtol=1e-5)


def test_scores_file_is_the_plan(bench):
    result, _, models, _ = bench
    scores = pd.read_parquet(Path(result.config.out) / "scores.parquet")
    runnable = [m for m in result.plan.methods if m.error is None]
    # Per method and target: own calibration images, every model's evaluation images, the real ones.
    per_target = N_CAL + N_EVAL * len(models) + N_EVAL
    assert len(scores) == len(runnable) * len(models) * per_target
    assert set(scores["status"]) == {"ok"}
    assert {"method", "options_hash", "label", "target", "source", "image_id", "image_hash", "score", "seconds"} <= set(scores.columns)
    assert scores.groupby(["method", "options_hash", "target", "image_hash", "split"]).size().max() == 1
    assert (scores["seconds"] > 0).all()


def test_metrics_match_an_independent_computation(bench):
    result, _, models, _ = bench
    out = Path(result.config.out)
    scores = pd.read_parquet(out / "scores.parquet")
    metrics = pd.read_csv(out / "metrics.csv")
    doc = json.loads((out / "metrics.json").read_text())
    checked = 0
    for (method, ohash, target), g in scores.groupby(["method", "options_hash", "target"]):
        cal = g[(g["source"] == target) & (g["split"] == "cal")]["score"].to_numpy(float)
        tau = aedr.kde_threshold(cal, 0.05)
        b = g[(g["source"] == target) & (g["split"] == "eval")]["score"].to_numpy(float)
        for source in ["real", *[m.name for m in models if m.name != target]]:
            o = g[(g["source"] == source) & (g["split"] == "eval")]["score"].to_numpy(float)
            row = metrics[(metrics["method"] == method) & (metrics["options_hash"] == ohash) & (metrics["target"] == target) & (metrics["source"] == source)]
            assert len(row) == 1
            row = row.iloc[0]
            tp, fn = int(sum(x < tau for x in b)), int(sum(x >= tau for x in b))
            fp, tn = int(sum(x < tau for x in o)), int(sum(x >= tau for x in o))
            assert (row.tp, row.fn, row.fp, row.tn) == (tp, fn, fp, tn)
            assert row.accuracy == pytest.approx((tp + tn) / (len(b) + len(o)))
            y = np.r_[np.ones(len(b)), np.zeros(len(o))]
            assert row.auc == pytest.approx(roc_auc_score(y, -np.r_[b, o]))
            fpr, tpr, _ = sk_roc_curve(y, -np.r_[b, o], drop_intermediate=False)
            assert row.tpr_at_5pct_fpr == pytest.approx(tpr[fpr <= 0.05].max())
            assert row.threshold == pytest.approx(tau)
            checked += 1
    assert checked == len(result.plan.runnable) * len(models) * len(models)
    # Table 1 and Table 2 means: over ordered model pairs, and over targets against real images.
    for s in doc["summaries"]:
        mine = metrics[(metrics["method"] == s["method"]) & (metrics["options_hash"] == s["options_hash"])]
        assert s["pair_accuracy"] == pytest.approx(mine[mine["pair_kind"] == "model"]["accuracy"].mean())
        assert s["real_accuracy"] == pytest.approx(mine[mine["pair_kind"] == "real"]["accuracy"].mean())
        assert s["pair_auc"] == pytest.approx(mine[mine["pair_kind"] == "model"]["auc"].mean())
        fam = mine[(mine["pair_kind"] == "model") & (mine["target_family"] == "kl")]["accuracy"].mean()
        assert s["family_pair_accuracy"]["kl"] == pytest.approx(fam)


def test_one_pairs_intervals_recomputed_independently(bench):
    """The documented bootstrap, written out plainly (one replicate at a time, the scalar KDE threshold,
    counts drawn as the docs say): it reproduces the interval metrics.json gives for one pair."""
    result, _, models, _ = bench
    out = Path(result.config.out)
    scores = pd.read_parquet(out / "scores.parquet")
    doc = json.loads((out / "metrics.json").read_text())
    unc = doc["uncertainty"]
    assert unc["n_resamples"] == 1000 and unc["confidence"] == 0.95 and "single images" in unc["resampling"]
    target, source = models[0].name, models[1].name
    ok = scores[(scores["method"] == "aedr") & (scores["status"] == "ok")]
    # every image set is drawn once per replicate, sets in sorted (source, split) order, images by hash
    rng = np.random.default_rng(result.config.seed)
    draws = {}
    for key in sorted(set(zip(ok["source"], ok["split"]))):
        hashes = np.unique(ok[(ok["source"] == key[0]) & (ok["split"] == key[1])]["image_hash"].to_numpy(str))
        picks = rng.integers(0, hashes.size, size=(unc["n_resamples"], hashes.size))
        draws[key] = (hashes, np.stack([np.bincount(row, minlength=hashes.size) for row in picks]))

    def resampled(src, split, b):
        rows = ok[(ok["target"] == target) & (ok["source"] == src) & (ok["split"] == split)]
        hashes, counts = draws[(src, split)]
        by_hash = dict(zip(rows["image_hash"].astype(str), rows["score"].astype(float)))
        return np.repeat([by_hash[h] for h in hashes], counts[b])

    accs = []
    for b in range(unc["n_resamples"]):
        cal = resampled(target, "cal", b)
        try:
            tau = aedr.kde_threshold(cal, 0.05)
        except ValueError:  # a resample of identical scores
            accs.append(np.nan)
            continue
        mine, other = resampled(target, "eval", b), resampled(source, "eval", b)
        accs.append((np.sum(mine < tau) + np.sum(other >= tau)) / (mine.size + other.size))
    low, high = np.nanquantile(accs, [0.025, 0.975])
    (pair,) = [p for p in doc["pairs"] if p["method"] == "aedr" and p["target"] == target and p["source"] == source]
    assert pair["accuracy_low"] == pytest.approx(low, abs=1e-9) and pair["accuracy_high"] == pytest.approx(high, abs=1e-9)
    assert pair["accuracy_low"] <= pair["accuracy"] <= pair["accuracy_high"]


def test_leaderboard_ranks_with_ties_and_paired_differences(bench):
    result, _, _, _ = bench
    doc = json.loads((Path(result.config.out) / "metrics.json").read_text())
    ranks = [s["rank"] for s in doc["summaries"]]
    assert ranks[0] == "1" and all(r for r in ranks)
    leader = doc["summaries"][0]
    assert not leader["versus_leader"]
    for s in doc["summaries"][1:]:
        v = s["versus_leader"]["pair:accuracy"]
        assert v["low"] <= v["difference"] <= v["high"] and 0 < v["p_holm"] <= 1
        assert v["difference"] == pytest.approx(s["pair_accuracy"] - leader["pair_accuracy"])
    group = [s for s in doc["summaries"][1:] if s["rank"] == "1="]  # tied with the leader: not distinguishable from it
    assert all(s["versus_leader"]["pair:accuracy"]["p_holm"] >= 0.05 for s in group)
    after = doc["summaries"][1 + len(group):]
    if after:  # the first method ranked below the leader's group differs from the leader
        assert after[0]["versus_leader"]["pair:accuracy"]["p_holm"] < 0.05 and after[0]["rank"] == str(2 + len(group))
    numbers = [int(s["rank"].rstrip("=")) for s in doc["summaries"]]
    assert numbers == sorted(numbers)  # ranks follow the leaderboard's order
    board = (Path(result.config.out) / "leaderboard.md").read_text()
    assert "Δ pairs acc vs #1" in board and "Intervals: 95 % from 1000 joint bootstrap resamples" in board
    report = (Path(result.config.out) / "report.html").read_text()
    assert 'id="forest"' in report and "forest plot aedr" in report


def test_stored_scores_are_the_methods_own_scores(bench):
    """Rescore a few images straight through the method API: the bench stored the same numbers."""
    result, plugins, models, _ = bench
    scores = pd.read_parquet(Path(result.config.out) / "scores.parquet")
    target, other = models
    spec = next(m for m in result.plan.methods if m.name == "aedr")
    method = plugins.method("aedr", **result.config.options_for("aedr"))
    refs = result.plan.sources[other.name].eval[:3]
    direct = method.score(target, [r.load() for r in refs])
    stored = scores[(scores["method"] == "aedr") & (scores["target"] == target.name) & (scores["source"] == other.name) & (scores["split"] == "eval")]
    stored = stored.set_index("image_hash").loc[[r.content_hash for r in refs], "score"].to_numpy()
    np.testing.assert_allclose(stored, direct, rtol=1e-5)  # another batch: the batch-split tolerance
    assert spec.options_hash == method.options_hash()


def test_result_files_carry_protocol_and_provenance(bench):
    result, _, _, real = bench
    out = Path(result.config.out)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["n_cal"] == N_CAL and doc["config"]["alpha"] == 0.05
    assert doc["provenance"]["versions"]["torch"] and doc["provenance"]["machine"]["cpu_count"]
    assert "revision" in doc["provenance"]["git"]
    assert "lower" in doc["score_direction"]
    real_set = next(s for s in doc["image_sets"] if s["name"] == "real")
    assert real_set["formats"] == {"PNG": 3, "JPEG": 1}  # the first four readable files, sorted by name
    assert [Path(s["id"]).name for s in real_set["skipped"]] == ["photo-00-broken.png"]
    assert "not a readable image" in real_set["skipped"][0]["error"]
    board = (out / "leaderboard.md").read_text()
    assert "lower = belonging" in board.splitlines()[2]
    for s in result.summaries:
        assert s.label in board
    ranks = [s.pair_accuracy for s in result.summaries]
    assert ranks == sorted(ranks, reverse=True)


def test_report_is_self_contained_with_tables_and_plots(bench):
    result, _, models, _ = bench
    html = (Path(result.config.out) / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "the report must not load anything from elsewhere"
    n_methods = len(result.plan.runnable)
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # one heatmap, one forest plot, one histogram panel and one attribution matrix per method, one ROC figure per
    # target, the OSCR curves, one time chart
    assert len(images) == 4 * n_methods + len(models) + 2
    for key in ("table1", "table2", "table3", "table4", "threshold_free", "leaderboard", "openset", "false_accusation", "openset-figures"):
        assert f'id="{key}"' in html
    assert "lower = belonging" in html


def test_cli_bench_and_leaderboard(bench, tmp_path, monkeypatch):
    result, plugins, _, real = bench
    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    from aedr.cli import build_app

    app, runner = build_app(), CliRunner()
    out = tmp_path / "run"
    args = ["bench", "--models", *ZOO_PAIR, "--methods", "aedr", "--real", str(real), "--n-cal", "3", "--n-eval", "2",
            "--seed", "1", "--out", str(out), "--no-progress", "--no-report"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Leaderboard" in res.output and "aedr(seed=1)" in res.output and "18 scores computed" in res.output, res.output
    # a finished configuration reruns without computing anything
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "0 images generated, 0 scores computed, 18 reused" in res.output
    board = tmp_path / "board"
    res = runner.invoke(app, ["leaderboard", result.config.out, str(out), "--out", str(board)])
    assert res.exit_code == 0, res.output
    merged = json.loads((board / "leaderboard.json").read_text())
    assert len(merged["runs"]) == 2
    labels = [row["label"] for row in merged["leaderboard"]]
    assert set(labels) == {s.label for s in result.summaries} | {"aedr(seed=1)"}
    assert "<table>" in (board / "leaderboard.html").read_text()
    assert "aedr(seed=1)" in (board / "leaderboard.md").read_text()
    res = runner.invoke(app, ["bench", "--models", "nosuch-*", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no model matches 'nosuch-*'" in res.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(bench, tmp_path):
    result = bench[0]
    shot = tmp_path / "report.png"
    proc = subprocess.run([str(ROOT / "benchmarks" / "screenshot_report.sh"), str(Path(result.config.out) / "report.html"), str(shot), "1400,2400"],
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr
    image = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert image.shape == (2400, 1400)
    # not a blank page: rows of text, tables and figures give many distinct grey levels down the page
    assert all(image[y : y + 400].std() > 10 for y in range(0, 2400, 400))
