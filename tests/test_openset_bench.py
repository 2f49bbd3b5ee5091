"""The bench's open-set attribution against ``aedr attribute``: a small run (three zoo models, AEDR,
real photographs), cards calibrated on the run's calibration images, and the same evaluation images
attributed by the command's function; the verdicts, the matrix and the result files agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import aedr
from aedr.attribution import attribute
from aedr.bench import OpenSetMetric, load_config, run_bench
from aedr.bench.schema import BenchDocument, OpenSetRecord, SchemaError
from aedr.calibration import kde_tail_probability
from aedr.card import calibrate
from test_bench_support import make_real_folder

pytestmark = pytest.mark.usefixtures("single_thread")
MODELS = ("zoo-kl-a", "zoo-kl-b", "zoo-vq")  # zoo-kl-b is zoo-kl-a's twin: their images are easily confused


def several_share(sample):
    """A plugin's open-set figure: the share of images more than one candidate accepts, mean over sources."""
    return np.nanmean(sample.per_source(sample.accepted.sum(axis=2) >= 2), axis=1)


class OpenSetPlugin:
    @aedr.hookimpl
    def register_metrics(self, register):
        register(OpenSetMetric("several_share", "several %", several_share, "pct", "accepted by several candidates",
                               leaderboard=True, higher_is_better=False))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("openset")
    plugins = aedr.load_plugins(extra=[OpenSetPlugin()])
    cfg = load_config("default", models=list(MODELS), methods=["aedr"], real=str(make_real_folder(base / "real", n=6)), real_cal="none",
                      n_cal=6, n_eval=4, out=str(base / "out"), bootstrap=200, report=False,
                      perturbations=["jpeg:70"], calibrate_perturbed=True)
    return run_bench(cfg, plugins=plugins, progress=False), plugins


def attributed(result, plugins):
    """image id -> the verdict of ``aedr attribute`` with a card per model, calibrated on the run's images."""
    spec = result.plan.runnable[0]
    cards = [calibrate(plugins.model(m), spec.method, [r.load() for r in result.plan.sources[m].cal], alpha=result.config.alpha)
             for m in MODELS]
    refs = [r for src in result.plan.sources.values() for r in src.eval]
    out, skipped = attribute([r.load() for r in refs], cards, plugins=plugins)
    assert not skipped
    by_id = {a.image: (a.attributed_to[:1] or ["none"])[0] for a in out}
    return cards, {(r.source, r.id): by_id[r.load().id] for r in refs}


def test_the_bench_matrix_is_what_aedr_attribute_decides(run):
    result, plugins = run
    cards, verdicts = attributed(result, plugins)
    taus = {t.target: t.threshold for t in result.evaluation.thresholds}
    for card in cards:  # the bench's thresholds (scores agree to float rounding: batches differ)
        assert card.threshold == pytest.approx(taus[card.model], rel=1e-4)
    record = result.openset.clean.records[0]
    columns = [*record.candidates, "none"]
    for i, source in enumerate(record.sources):
        mine = [v for (s, _), v in verdicts.items() if s == source]
        expected = [mine.count(c) / len(mine) for c in columns]
        np.testing.assert_allclose(record.matrix[i], expected, err_msg=source)
    assert record.n_images == [len(result.plan.sources[s].eval) for s in record.sources]


def test_figures_have_intervals_and_the_leaderboard_shows_them(run):
    result, _ = run
    s = result.summaries[0]
    for name in ("open_set_accuracy", "false_accusation_rate", "closed_set_accuracy", "unknown_auroc", "oscr"):
        low, high = s.intervals[f"openset:{name}"]
        assert low <= s.openset[name] <= high or np.isclose(low, high)
    from aedr.bench.tables import leaderboard_table

    board = leaderboard_table(result.summaries, metrics=result.board_metrics)
    assert "open-set acc %" in board.columns and "false acc. %" in board.columns and "open-set rank" in board.columns
    assert {t.key for t in result.tables} >= {"openset", "false_accusation"}


def test_metrics_json_carries_matrices_and_curves_and_reads_back(run):
    result, _ = run
    path = Path(result.files["metrics.json"])
    doc = json.loads(path.read_text())
    assert doc["format"] == "aedr-bench/3"
    assert [m["name"] for m in doc["openset_metrics"]][:2] == ["open_set_accuracy", "false_accusation_rate"]
    rec = doc["openset"][0]
    assert len(rec["matrix"]) == len(rec["sources"]) and len(rec["matrix"][0]) == len(rec["candidates"]) + 1
    assert len(rec["oscr_curve"]["false_acceptance"]) == 101
    back = BenchDocument.from_json(doc, str(path))
    assert back.openset[0] == OpenSetRecord.from_record(rec)
    assert back.summaries[0].openset["open_set_accuracy"] == pytest.approx(result.summaries[0].openset["open_set_accuracy"])
    older = {**doc, "format": "aedr-bench/2"}
    older.pop("openset"), older.pop("openset_metrics")
    assert BenchDocument.from_json(older, "old.json").openset == []
    with pytest.raises(SchemaError, match="aedr-bench/4"):
        BenchDocument.from_json({**doc, "format": "aedr-bench/4"}, "new.json")


def test_a_plugin_adds_an_open_set_figure_through_the_metric_seam(run):
    result, _ = run
    record = result.openset.clean.records[0]
    assert record.figures["several_share"] == pytest.approx(np.mean(record.several))
    s = result.summaries[0]
    assert s.openset["several_share"] == record.figures["several_share"] and "openset:several_share" in s.intervals
    from aedr.bench.tables import leaderboard_table

    assert "several %" in leaderboard_table(result.summaries, metrics=result.board_metrics).columns
    assert "several %" in next(t for t in result.tables if t.key == "openset").columns


def by_hand(scores, thresholds, cal, candidates, sources):
    """The matrix recomputed image by image, as a reader would: accepted below tau, most typical first."""
    rows = []
    for source in sources:
        images = scores[scores["source"] == source].pivot_table(index="clean_hash", columns="target", values="score").reindex(columns=candidates)
        verdicts = []
        for _, image in images.iterrows():
            tails = {t: float(kde_tail_probability(cal[t], [image[t]])[0]) for t in candidates}
            accepted = [t for t in candidates if image[t] < thresholds[t]]
            verdicts.append(sorted(accepted, key=lambda t: -tails[t])[0] if accepted else "none")
        rows.append([verdicts.count(c) / len(verdicts) for c in [*candidates, "none"]])
    return rows


def test_perturbed_views_under_both_threshold_policies(run):
    result, _ = run
    views = {(v.perturbation, v.policy) for v in result.openset.views}
    assert views == {("", "clean"), ("jpeg:70", "clean"), ("jpeg:70", "recalibrated")}
    frame = result.scores[result.scores["status"] == "ok"]
    for policy, cal_pert, ev in (("clean", "", result.evaluation), ("recalibrated", "jpeg:70", result.robustness.results[0].evaluation)):
        record = next(v for v in result.openset.views if v.perturbation == "jpeg:70" and v.policy == policy).records[0]
        taus = {t.target: t.threshold for t in ev.thresholds}
        cal_rows = frame[(frame["split"] == "cal") & (frame["perturbation"] == cal_pert) & (frame["source"] == frame["target"])]
        cal = {t: cal_rows[cal_rows["target"] == t]["score"].to_numpy() for t in MODELS}
        evals = frame[(frame["split"] == "eval") & (frame["perturbation"] == "jpeg:70")]
        np.testing.assert_allclose(record.matrix, by_hand(evals, taus, cal, list(MODELS), record.sources), err_msg=policy)
    table = next(t for t in result.tables if t.key == "openset_perturbed")
    assert table.columns[2:4] == ["open-set acc % (clean τ)", "open-set acc % (recalibrated τ)"]
