"""How models relate, as the bench sees it. Models on one and the same autoencoder (a fine-tuned
checkpoint that kept its base model's VAE): no autoencoder-based method can separate them, so the
bench reports their pairs apart, out of every mean and rank, and ``aedr attribute`` warns when two
candidate cards share an autoencoder. Hard pairs: the third of the model pairs whose models' samples
are closest (a distance no method's score enters) get a mean of their own on the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import aedr
from aedr.attribution import shared_autoencoders
from aedr.bench import load_config, run_bench
from aedr.bench.leaderboard import merge_runs, read_run
from aedr.bench.schema import Scope
from conftest import FolderModel, cli_runner, photo_crops
from test_bench_support import BenchModels, make_models


DISTANCES = {frozenset({"tiny-0", "tiny-1"}): 0.5, frozenset({"tiny-1", "tiny-0-sibling"}): 0.1}


class Related(FolderModel):
    """A tiny model that knows how alike its samples are to the others' (as the zoo records it)."""

    def sample_distance(self, other):
        return DISTANCES.get(frozenset({self.name, other.name}))


class Sibling(Related):
    """A second generator on another model's autoencoder folder: its own images, the same weights."""

    def generate(self, n, seed=0, prompts=None, device="cpu"):
        return super().generate(n, seed=seed + 1000, prompts=prompts, device=device)

    def generator_fingerprint(self) -> str:
        return "sibling"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("shared-ae")
    tiny = [Related(m.name, m.folder) for m in make_models(base / "models", n=2)]
    for m, family in zip(tiny, ("kl", "kl16")):  # tiny-1 stands for a high-fidelity autoencoder
        m.family = family
    return [*tiny, Sibling("tiny-0-sibling", tiny[0].folder)]


@pytest.fixture(scope="module")
def run(models, tmp_path_factory):
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])
    cfg = load_config("default", models=["tiny-*"], methods=["aedr"], out=str(tmp_path_factory.mktemp("shared-run")), n_cal=6, n_eval=6,
                      chunk_size=6, real="none", bootstrap=200)
    return run_bench(cfg, plugins=plugins, progress=False)


def test_pairs_on_one_autoencoder_are_their_own_kind_and_in_no_mean(run):
    assert run.plan.shared_pairs() == {("tiny-0", "tiny-0-sibling"), ("tiny-0-sibling", "tiny-0")}
    pairs = run.evaluation.pairs_frame()
    kinds = {(t, s): k for t, s, k in zip(pairs["target"], pairs["source"], pairs["pair_kind"])}
    assert kinds[("tiny-0", "tiny-0-sibling")] == kinds[("tiny-0-sibling", "tiny-0")] == "shared"
    assert kinds[("tiny-0", "tiny-1")] == kinds[("tiny-0-sibling", "tiny-1")] == "model"
    (summary,) = run.summaries
    model_pairs = pairs[pairs["pair_kind"] == "model"]
    assert summary.n_pairs == 4 and summary.n_shared_pairs == 2
    assert summary.pair["accuracy"] == pytest.approx(model_pairs["accuracy"].mean())  # the mean leaves the shared pairs out
    boot = run.uncertainty.summaries
    row = boot[(boot["scope"] == Scope.PAIR.key) & (boot["metric"] == "accuracy")]
    assert int(row["n_pairs"].iloc[0]) == 4  # and so do the intervals


def test_the_shared_pairs_have_their_own_table_and_the_leaderboard_says_so(run):
    shared = next(t for t in run.tables if t.key == "shared")
    assert shared.columns == ["method", "tiny-0 / tiny-0-sibling", "tiny-0-sibling / tiny-0"]
    assert "left out of Table 1" in shared.note
    table1 = next(t for t in run.tables if t.key == "table1")
    assert "shared-autoencoder table" in run_board(run).note
    assert len(table1.rows) == 1
    doc = json.loads((Path(run.config.out) / "metrics.json").read_text())
    assert doc["summaries"][0]["n_shared_pairs"] == 2
    merged = merge_runs([read_run(run.config.out)])
    assert merged.summaries[0].n_shared_pairs == 2 and "shared-autoencoder table" in merged.table().note


def test_attribute_warns_when_two_cards_share_an_autoencoder(models, tmp_path, monkeypatch):
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])
    method = plugins.method("aedr")
    paths = []
    for model in models:
        own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))]
        card = aedr.calibrate(model, method, own, progress=False)
        paths.append(tmp_path / f"{model.name}.json")
        card.save(paths[-1])
    cards = [aedr.CalibrationCard.load(p) for p in paths]
    assert shared_autoencoders(cards) == [["tiny-0", "tiny-0-sibling"]]
    assert shared_autoencoders(cards[:2]) == []
    image = tmp_path / "photo.png"
    photo_crops(1, seed=5)[0].to_pil().save(image)
    cli = cli_runner(plugins, monkeypatch)
    result = cli("attribute", image, *[x for p in paths for x in ("--card", p)])
    assert "tiny-0 and tiny-0-sibling share one autoencoder" in " ".join(result.output.split())


def test_the_hard_pairs_are_the_closest_third_without_the_shared_ones(run):
    # three pairs of models, one of them shared: of the other two the closer one (tiny-1 / sibling) is hard
    assert run.plan.hard_pairs() == {("tiny-1", "tiny-0-sibling"), ("tiny-0-sibling", "tiny-1")}
    pairs = run.evaluation.pairs_frame()
    hard = pairs[pairs["hard"].eq(True)]
    assert sorted(zip(hard["target"], hard["source"])) == [("tiny-0-sibling", "tiny-1"), ("tiny-1", "tiny-0-sibling")]
    (summary,) = run.summaries
    assert summary.n_hard_pairs == 2 and summary.hard["accuracy"] == pytest.approx(hard["accuracy"].mean())
    assert "hard:accuracy" in summary.intervals  # from the run's bootstrap, like every summary figure
    table = run_board(run)
    assert "hard pairs acc %" in table.columns and "hardest third of the model pairs (2)" in table.note
    doc = json.loads((Path(run.config.out) / "metrics.json").read_text())
    assert doc["summaries"][0]["n_hard_pairs"] == 2 and doc["summaries"][0]["hard_accuracy"] == pytest.approx(summary.hard["accuracy"])
    merged = merge_runs([read_run(run.config.out)])
    assert merged.summaries[0].hard["accuracy"] == pytest.approx(summary.hard["accuracy"]) and "hard pairs acc %" in merged.table().columns


def test_the_high_fidelity_pairs_have_their_own_leaderboard_column(run):
    """The pairs whose target has a high-fidelity autoencoder (family kl16: SD3, FLUX, zoo-kl16) get a
    mean of their own beside the pair mean, with the interval of the run's bootstrap."""
    pairs = run.evaluation.pairs_frame()
    mine = pairs[(pairs["target_family"] == "kl16") & (pairs["pair_kind"] == "model")]
    (summary,) = run.summaries
    cell = summary.cell(Scope.target_family("kl16"), "accuracy")
    assert len(mine) == 2 and cell.value == pytest.approx(mine["accuracy"].mean()) and cell.low <= cell.value <= cell.high
    table = run_board(run)
    assert table.columns.index("kl16 pairs acc %") == table.columns.index("hard pairs acc %") + 1
    assert "high-fidelity 16-channel autoencoder" in table.note


def test_a_run_without_known_distances_has_no_hard_pairs(models):
    from aedr.bench.plan import Plan

    plain = [FolderModel(m.name, m.folder) for m in models]
    assert Plan(None, plain, [], {}).hard_pairs() == frozenset()


def run_board(run):
    from aedr.bench.tables import leaderboard_table

    return leaderboard_table(run.summaries, metrics=run.board_metrics)
