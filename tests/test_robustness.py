"""The perturbation axis: the perturbations themselves against independent computations, the bench's
perturbed images (deterministic, every source perturbed alike), its resumable store, its results
(clean figures unchanged, per-perturbation pairs, robust AUC, report), the `uncertain` verdict of
`aedr attribute --stability`, and the command-line paths with their one-line errors."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aedr
from aedr.bench import BenchInterrupted, ConfigError, load_config, run_bench
from aedr.bench.store import ScoreStore
from aedr.perturbations import perturb_image, perturbation_seed
from conftest import ModelsPlugin, cli_runner, photo_crops, photo_folder
from test_bench_support import BenchModels, make_models, make_real_folder

pytestmark = pytest.mark.usefixtures("single_thread")

PLUGINS = aedr.load_plugins(entry_points=False)
SPECS = ["jpeg:70", "crop:0.5", "noise:0.1"]
RUN = dict(models=["tiny-*"], methods=["aedr"], n_cal=4, n_eval=3, n_real=4, chunk_size=4, bootstrap=200, report=False)


def photo(size=(48, 40), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


# -- the perturbations, against computations that do not use them ----------------------------------
def test_webp_is_a_pil_round_trip():
    im = photo()
    buf = io.BytesIO()
    im.save(buf, format="WEBP", quality=60)
    expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal(np.asarray(PLUGINS.perturbation("webp:60").apply(im)), expected)


def test_resize_is_pil_bicubic_with_rounded_sides():
    im = photo((50, 41))
    out = PLUGINS.perturbation("resize:0.75").apply(im)
    assert out.size == (round(50 * 0.75), round(41 * 0.75)) == (38, 31)
    assert np.array_equal(np.asarray(out), np.asarray(im.resize((38, 31), Image.Resampling.BICUBIC)))
    flat = Image.new("RGB", (40, 40), (120, 30, 200))  # bicubic keeps a constant image constant
    assert np.all(np.asarray(PLUGINS.perturbation("resize:0.3").apply(flat)) == (120, 30, 200))
    assert PLUGINS.perturbation("resize:0.001").apply(flat).size == (1, 1)


def test_crop_is_centred_with_the_extra_pixel_right_and_below():
    im = photo((51, 40))
    out = np.asarray(PLUGINS.perturbation("crop:0.7").apply(im))
    cw, ch = round(51 * 0.7), round(40 * 0.7)  # 36 x 28: 15 columns and 12 rows to remove
    left, top = (51 - cw) // 2, (40 - ch) // 2
    assert out.shape == (ch, cw, 3) and np.array_equal(out, np.asarray(im)[top : top + ch, left : left + cw])


def test_noise_is_seeded_normal_noise_on_the_unit_scale():
    im = photo()
    seed = 12345
    x = np.asarray(im, dtype=np.float64) / 255.0
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0])  # step 0 of the chain
    expected = np.clip(np.rint((x + rng.normal(0.0, 0.2, size=x.shape)) * 255.0), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(PLUGINS.perturbation("noise:0.2").apply(im, seed=seed)), expected)


def test_a_chain_applies_its_steps_left_to_right_each_with_its_own_stream():
    im = photo()
    chain = PLUGINS.perturbation("jpeg:80+noise:0.05+crop:0.5")
    step1 = PLUGINS.perturbation("jpeg:80").apply(im)
    x = np.asarray(step1, dtype=np.float64) / 255.0
    rng = np.random.default_rng([7, 1])  # the noise is the chain's second step
    step2 = np.clip(np.rint((x + rng.normal(0.0, 0.05, size=x.shape)) * 255.0), 0, 255).astype(np.uint8)
    expected = np.asarray(Image.fromarray(step2).crop((12, 10, 36, 30)))
    assert np.array_equal(np.asarray(chain.apply(im, seed=7)), expected)
    assert chain.kind == "jpeg+noise+crop" and chain.level is None


def test_identity_levels_leave_an_image_unchanged():
    im = photo()
    for kind in ("crop", "resize"):
        cls = PLUGINS.perturbations.get(kind)
        assert np.array_equal(np.asarray(PLUGINS.perturbation(f"{kind}:{cls.identity:g}").apply(im)), np.asarray(im))
    assert PLUGINS.perturbations.get("jpeg").stronger_below() and not PLUGINS.perturbations.get("blur").stronger_below()
    assert PLUGINS.perturbation("jpeg:50").describe() == {
        "id": "jpeg:50", "kind": "jpeg", "level": 50, "parameter": "quality", "identity": 100, "stronger_below": True}


def test_the_seed_of_an_image_s_perturbation_depends_on_its_pixels_and_the_run_seed_only():
    a = aedr.LoadedImage.from_array(np.asarray(photo()), "a.png")
    b = aedr.LoadedImage.from_array(np.asarray(photo()), "other-name.png")
    chain = PLUGINS.perturbation("noise:0.1")
    pa, pb = perturb_image(chain, a, 3), perturb_image(chain, b, 3)
    assert pa.content_hash == pb.content_hash and pa.id == "a.png"
    assert pa.meta == {"perturbation": "noise:0.1", "clean_hash": a.content_hash}
    assert perturb_image(chain, a, 4).content_hash != pa.content_hash
    assert np.array_equal(pa.rgb, np.asarray(chain.apply(a.to_pil(), perturbation_seed(3, a.content_hash))))
    # every level of a kind draws the same numbers: noise 0.1 is noise 0.05 doubled before rounding
    x = a.rgb.astype(np.float64)
    small = perturb_image(PLUGINS.perturbation("noise:0.05"), a, 3).rgb.astype(np.float64) - x
    big = pa.rgb.astype(np.float64) - x
    inside = (pa.rgb > 5) & (pa.rgb < 250) & (x > 30) & (x < 225)
    assert np.abs(big[inside] - 2 * small[inside]).max() <= 1.5


# -- the bench -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("robustness")
    models = make_models(base / "models")
    real = make_real_folder(base / "real", n=5)  # 4 readable photographs (the fifth file is broken)
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])
    return base, plugins, str(real)


@pytest.fixture(scope="module")
def runs(setup):
    base, plugins, real = setup
    clean = run_bench(load_config("default", out=str(base / "clean"), real=real, **RUN), plugins=plugins, progress=False)
    perturbed = run_bench(load_config("default", out=str(base / "perturbed"), real=real, perturbations=SPECS, **RUN), plugins=plugins, progress=False)
    return clean, perturbed


def test_every_source_of_a_pair_is_perturbed(runs):
    _, result = runs
    s = result.scores
    assert set(s["perturbation"]) == {"", *SPECS}
    per = s[(s["perturbation"] != "")].groupby(["perturbation", "target", "source", "split"]).size()
    # under each target, for each perturbation: every source's evaluation images, no calibration image
    expected = {(p, t, src, "eval"): (4 if src == "real" else 3) for p in SPECS for t in ("tiny-0", "tiny-1") for src in ("tiny-0", "tiny-1", "real")}
    assert per.to_dict() == expected
    assert (s["status"] == "ok").all()
    pairs = pd.read_csv(Path(result.config.out) / "metrics.csv", keep_default_na=False, na_values=[""])
    perturbed = pairs[pairs["perturbation"].notna()]
    assert sorted(set(perturbed["perturbation"])) == sorted(SPECS)
    for _, row in perturbed.iterrows():
        assert row["n_target"] == 3 and row["n_source"] == (4 if row["source"] == "real" else 3)


def test_the_bench_s_perturbed_images_are_deterministic(runs, setup):
    """Each perturbed image is its clean image perturbed with the seed of the run seed and the clean
    image's hash, whichever run made it, and is the same when made again."""
    from aedr.bench.sources import perturbed_sources

    _, result = runs
    chains = result.plan.perturbations
    again = perturbed_sources(result.plan.sources, list(reversed(chains)), splits=["eval"], seed=result.config.seed)
    for chain in chains:
        for name, src in result.plan.perturbed[chain.id].items():
            assert [r.content_hash for r in src.eval] == [r.content_hash for r in again[chain.id][name].eval]
            for ref in src.eval:
                clean = ref.parent.load()
                expected = chain.apply(clean.to_pil(), perturbation_seed(result.config.seed, clean.content_hash))
                assert np.array_equal(ref.load().rgb, np.asarray(expected)) and ref.clean_hash == clean.content_hash
    other_seed = perturbed_sources(result.plan.sources, chains, splits=["eval"], seed=1)
    noise = result.plan.perturbed["noise:0.1"]["tiny-0"].eval[0]
    assert other_seed["noise:0.1"]["tiny-0"].eval[0].content_hash != noise.content_hash
    assert other_seed["jpeg:70"]["tiny-0"].eval[0].content_hash == result.plan.perturbed["jpeg:70"]["tiny-0"].eval[0].content_hash
    s = result.scores
    assert (s.loc[s["perturbation"] == "", "image_hash"] == s.loc[s["perturbation"] == "", "clean_hash"]).all()
    assert (s.loc[s["perturbation"] != "", "image_hash"] != s.loc[s["perturbation"] != "", "clean_hash"]).all()


def test_clean_results_are_those_of_a_run_without_perturbations(runs):
    clean, result = runs
    a = pd.read_csv(Path(clean.config.out) / "metrics.csv")
    b = pd.read_csv(Path(result.config.out) / "metrics.csv")
    assert a["perturbation"].isna().all()
    pd.testing.assert_frame_equal(a.drop(columns="perturbation"), b[b["perturbation"].isna()].drop(columns="perturbation").reset_index(drop=True))
    for x, y in zip(clean.summaries, result.summaries):
        assert (x.label, x.pair, x.real, x.rank) == (y.label, y.pair, y.real, y.rank)
        assert {k: v for k, v in y.intervals.items() if not k.startswith("robust:")} == x.intervals
    assert [dataclasses.asdict(t) for t in clean.evaluation.thresholds] == [dataclasses.asdict(t) for t in result.evaluation.thresholds]
    assert not clean.summaries[0].robust and "robust AUC" not in (Path(clean.config.out) / "leaderboard.md").read_text()


def test_perturbed_pairs_use_the_clean_thresholds_and_the_perturbed_scores(runs):
    from aedr.bench.metrics import accuracy, roc_auc

    _, result = runs
    s = result.scores
    taus = {t.target: t.threshold for t in result.evaluation.thresholds}
    rob = result.robustness
    assert rob.ids == SPECS and not rob.calibrate_perturbed and not rob.thresholds()
    for r in rob.results:
        for p in r.evaluation.pairs:
            assert p.perturbation == r.id and p.threshold == taus[p.target]
            ev = s[(s["perturbation"] == r.id) & (s["target"] == p.target) & (s["split"] == "eval")]
            b = ev[ev["source"] == p.target]["score"].to_numpy(float)
            o = ev[ev["source"] == p.source]["score"].to_numpy(float) if p.source != p.target else np.array([])
            assert p.values["accuracy"] == pytest.approx(accuracy(b, o, taus[p.target]))
            if o.size:
                assert p.values["auc"] == pytest.approx(roc_auc(b, o))
            assert p.intervals["accuracy"][0] <= p.values["accuracy"] <= p.intervals["accuracy"][1]


def test_robust_auc_is_the_mean_pair_auc_over_the_grid(runs):
    _, result = runs
    rob = result.robustness
    s = result.summaries[0]
    per = [r.summary(s.method, s.options_hash).pair["auc"] for r in rob.results]
    assert s.robust["auc"] == pytest.approx(np.mean(per))
    low, high = s.intervals["robust:auc"]
    assert low <= s.robust["auc"] <= high
    # every perturbation's bootstrap draws the clean run's resamples: its figures are paired with the clean ones
    for r in rob.results:
        assert set(r.bootstrap.draws) == set(result.uncertainty.draws)
        for key, draws in result.uncertainty.draws.items():
            assert np.array_equal(r.bootstrap.draws[key].counts, draws.counts)
    out = Path(result.config.out)
    board = (out / "leaderboard.md").read_text()
    assert "robust AUC" in board.split("## ")[1] and "Robustness · AUC over model pairs" in board
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summaries"][0]["robust_auc"] == pytest.approx(s.robust["auc"])
    assert {p["perturbation"] for p in doc["pairs"]} == {"", *SPECS}
    assert [p["id"] for p in doc["robustness"]["perturbations"]] == SPECS
    curves = pd.DataFrame(doc["robustness"]["curves"])
    assert set(curves["perturbation"]) == {"", *SPECS} and set(curves["scope"]) == {"pair", "real"}
    # a merged board keeps the clean pairs and the run's robust AUC
    from aedr.bench.leaderboard import merge_runs, read_run

    merged = merge_runs([read_run(out)])
    assert len(merged.pairs) == len(result.evaluation.pairs) and merged.summaries[0].robust["auc"] == pytest.approx(s.robust["auc"])


@pytest.mark.slow
def test_the_report_draws_the_robustness_curves(setup, runs):
    base, plugins, real = setup
    out = base / "report"  # a copy of the run's folder: nothing is scored again, only the report is drawn
    shutil.copytree(base / "perturbed", out)
    result = run_bench(load_config("default", out=str(out), real=real, perturbations=SPECS, **{**RUN, "report": True}),
                       plugins=plugins, progress=False)
    assert result.stats.scored == 0
    report = (out / "report.html").read_text()
    assert 'id="robustness"' in report and "robustness curves (pair)" in report and "robustness curves (real)" in report
    assert 'href="#robust_auc"' in report and "jpeg:70, crop:0.5, noise:0.1" not in report  # ids listed as code
    assert "<code>crop:0.5</code>" in report and "thresholds: the clean τ_T" in report


def test_a_run_with_one_model_is_summed_up_against_the_real_images(setup, runs):
    """One model has no model pairs: its leaderboard ranks by accuracy against the real images, with
    the robust real AUC, and its report draws only the curves against the real images."""
    base, plugins, real = setup
    out = base / "one-model"  # the two-model run's folder: every score is already there
    shutil.copytree(base / "perturbed", out)
    result = run_bench(load_config("default", out=str(out), real=real, perturbations=SPECS, **{**RUN, "models": ["tiny-0"], "report": True}),
                       plugins=plugins, progress=False)
    assert result.stats.scored == 0
    board = (out / "leaderboard.md").read_text()
    assert "## Leaderboard · methods ranked by accuracy against real images" in board
    head = next(line for line in board.splitlines() if line.startswith("| rank |"))
    assert "pairs" not in head and "robust real AUC" in head and "real AUC" in head
    # tables without a figure (Table 1, the robustness tables over model pairs) are left out
    assert "## Table 2 ·" in board and "## Robustness · AUC against real images" in board
    assert "## Table 1 ·" not in board and "over model pairs under each perturbation" not in board
    assert {t.key for t in result.tables}.isdisjoint({"table1", "robust_auc", "robust_accuracy"})
    report = (out / "report.html").read_text()
    assert "robustness curves (real)" in report and "robustness curves (pair)" not in report
    assert 'href="#table1"' not in report and 'href="#table2"' in report


def test_thresholds_from_perturbed_calibration_images(setup, runs):
    from aedr.calibration import kde_threshold

    base, plugins, real = setup
    _, earlier = runs
    out = base / "calibrated"  # a copy of the run's folder: its evaluation scores are reused, only calibration images are new
    shutil.copytree(base / "perturbed", out)
    result = run_bench(load_config("default", out=str(out), real=real, perturbations=SPECS, calibrate_perturbed=True, **RUN),
                       plugins=plugins, progress=False)
    assert result.stats.scored == 2 * 4 * len(SPECS)  # each model's 4 calibration images, perturbed, under itself
    s = result.scores
    rob = result.robustness
    assert rob.calibrate_perturbed and len(rob.thresholds()) == 2 * len(SPECS)
    for t in rob.thresholds():
        cal = s[(s["perturbation"] == t.perturbation) & (s["target"] == t.target) & (s["source"] == t.target) & (s["split"] == "cal")]
        assert len(cal) == 4 and t.threshold == pytest.approx(kde_threshold(cal["score"].to_numpy(float), 0.05))
    pd.testing.assert_frame_equal(result.evaluation.pairs_frame(), earlier.evaluation.pairs_frame())  # the clean protocol as before


@pytest.mark.slow
def test_resume_with_perturbations_recomputes_nothing(setup, runs):
    base, plugins, real = setup
    _, reference = runs
    cfg = load_config("default", out=str(base / "resume"), real=real, perturbations=SPECS, **RUN)
    total = reference.stats.scored
    seen = []

    def stop(event):
        seen.append(event.images)
        if sum(seen) >= 30:  # part-way through the perturbed images
            raise KeyboardInterrupt

    with pytest.raises(BenchInterrupted) as info:
        run_bench(cfg, plugins=plugins, progress=False, callback=stop)
    saved = info.value.stats.scored
    rows = ScoreStore(cfg.out).load()
    assert 0 < saved < total and len(rows) == saved and (rows["perturbation"] != "").any()
    resumed = run_bench(cfg, plugins=plugins, progress=False)
    assert resumed.stats.already_saved == saved and resumed.stats.scored == total - saved
    mine = pd.read_csv(Path(cfg.out) / "metrics.csv")
    pd.testing.assert_frame_equal(mine, pd.read_csv(Path(reference.config.out) / "metrics.csv"))
    again = run_bench(cfg, plugins=plugins, progress=False)
    assert (again.stats.scored, again.stats.already_saved) == (0, total)
    # one more perturbation: only its images are scored
    more = run_bench(load_config("default", out=str(base / "resume"), real=real, perturbations=[*SPECS, "blur:1"], **RUN),
                     plugins=plugins, progress=False)
    assert more.stats.scored == 2 * (3 + 3 + 4) and more.stats.already_saved == total


def test_a_store_without_the_perturbation_column_loads_as_clean(tmp_path):
    from aedr.bench.store import COLUMNS, key_set

    old = pd.DataFrame([["m", "h", "m", "T", "S", "model", "eval", "img0", "hash0", 1.0, 0.1, "ok", ""]],
                       columns=[c for c in COLUMNS if c not in ("perturbation", "weights")])
    (tmp_path / "scores").mkdir()
    old.to_parquet(tmp_path / "scores" / "store.parquet", index=False)
    store = ScoreStore(tmp_path, warn=lambda m: pytest.fail(m))
    frame = store.load()
    assert list(frame["perturbation"]) == [""] and key_set(frame) == {("m", "h", "T", "", "", "hash0")}  # no weights: never reused


@pytest.mark.parametrize(
    "specs, message",
    [
        (["jpg:90"], "perturbation 'jpg:90': Unknown perturbation 'jpg'. Did you mean: jpeg"),
        (["jpeg:90,500"], "perturbation 'jpeg:90,500': jpeg: quality must be 1..100, got 500"),
        (["crop"], "perturbation 'crop': 'crop': give the fraction"),
        (["blur:x"], "perturbation 'blur:x'"),
    ],
)
def test_bad_perturbation_specs_are_config_errors_naming_the_spec(setup, specs, message, tmp_path):
    _, plugins, _ = setup
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_bench(load_config("default", out=str(tmp_path / "x"), real="none", perturbations=specs, **RUN), plugins=plugins, progress=False)
    assert not (tmp_path / "x").exists()  # nothing was done


def test_perturbations_in_a_config_file(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[bench]\nperturbations = "jpeg:90,70 crop:0.5"\ncalibrate_perturbed = true\n')
    cfg = load_config(path)
    assert cfg.perturbations == ["jpeg:90,70", "crop:0.5"] and cfg.calibrate_perturbed
    assert load_config(path, perturbations=["none"]).perturbations == []
    path.write_text('[bench]\ncalibrate_perturbed = "yes"\n')
    with pytest.raises(ConfigError, match="calibrate_perturbed"):
        load_config(path)


def test_the_shipped_robustness_config():
    from aedr.bench.plan import select_perturbations

    cfg = load_config("robustness")
    chains = select_perturbations(cfg, aedr.load_plugins())
    assert [c.id for c in chains] == [
        "jpeg:90", "jpeg:80", "jpeg:70", "jpeg:60", "jpeg:50", "crop:0.9", "crop:0.8", "crop:0.7", "crop:0.6", "crop:0.5",
        "blur:1", "blur:2", "blur:3", "noise:0.05", "noise:0.1", "noise:0.2",
    ]
    assert cfg.models == ["zoo-*"] and not cfg.calibrate_perturbed


# -- attribution: the stability check ------------------------------------------------------------------
@pytest.fixture(scope="module")
def card_setup(tmp_path_factory):
    from conftest import FolderModel, tiny_kl_vae

    folder = tmp_path_factory.mktemp("stability-model")
    tiny_kl_vae().save_pretrained(folder)
    model = FolderModel("tiny-kl", folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model)])
    method = plugins.method("aedr")
    own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(10, seed=0))]
    card = aedr.calibrate(model, method, own)
    image = photo_crops(1, seed=5)[0]
    score = float(method.score(model, [image])[0])
    return plugins, model, method, card, image, score


def _attribute(card_setup, threshold, **options):
    from aedr.attribution import attribute

    plugins, _, _, card, image, _ = card_setup
    moved = dataclasses.replace(card, threshold=threshold)
    results, skipped = attribute([image], [moved], plugins=plugins, stability=True, **options)
    assert not skipped
    return results[0]


def test_a_score_inside_the_band_is_uncertain(card_setup):
    _, _, _, card, _, score = card_setup
    q1, q3 = np.quantile(card.scores, [0.25, 0.75])
    near = _attribute(card_setup, score + 0.05 * (q3 - q1), stability_perturbations=["crop:1"])  # inside the default ±0.1 IQR
    v = near.verdicts[0]
    assert v.belongs and v.stability.in_band and not v.stability.disagree  # crop:1 is the image itself
    assert (v.decision, near.decision, near.verdict, near.attributed_to) == ("uncertain", "uncertain", "uncertain", [])
    lo, hi = v.stability.band
    assert (lo, hi) == pytest.approx((v.threshold - 0.1 * (q3 - q1), v.threshold + 0.1 * (q3 - q1)))
    assert _attribute(card_setup, score + 0.05 * (q3 - q1), stability_perturbations=["crop:1"], band=0.0).decision == "attributed"
    assert _attribute(card_setup, score + 0.05 * (q3 - q1), stability_perturbations=["crop:1"], band=0.04).decision == "attributed"
    far = _attribute(card_setup, score - 5 * (q3 - q1), stability_perturbations=["crop:1"])
    assert (far.decision, far.verdict) == ("none", "none")


def test_a_verdict_that_a_perturbation_flips_is_uncertain(card_setup):
    from aedr.scoring import score_images

    plugins, model, method, card, image, score = card_setup
    chain = plugins.perturbation("noise:0.2")
    perturbed = float(score_images(model, method, [image], perturbations=[chain], seed=0).rows["score"].iloc[0])
    assert perturbed != score
    result = _attribute(card_setup, (score + perturbed) / 2, stability_perturbations=["noise:0.2", "crop:1"], band=0.0, seed=0)
    st = result.verdicts[0].stability
    assert [p.perturbation for p in st.perturbed] == ["noise:0.2", "crop:1"]
    assert st.perturbed[0].score == pytest.approx(perturbed) and st.perturbed[1].score == pytest.approx(score)
    assert st.disagree and st.agreeing == "1/2" and not st.in_band and result.decision == "uncertain"


def test_without_the_stability_check_verdicts_are_as_before(card_setup):
    from aedr.attribution import attribute

    plugins, _, _, card, image, score = card_setup
    results, _ = attribute([image], [dataclasses.replace(card, threshold=score + 1e-9)], plugins=plugins)
    v = results[0].verdicts[0]
    assert v.stability is None and not v.uncertain and results[0].verdict == "tiny-kl" and results[0].decision == "attributed"
    with pytest.raises(ValueError, match="band"):
        attribute([image], [card], plugins=plugins, stability=True, band=-1)


# -- the command line ----------------------------------------------------------------------------------
@pytest.fixture
def cli(card_setup, monkeypatch):
    return cli_runner(card_setup[0], monkeypatch)


@pytest.fixture
def photo_dir(tmp_path):
    return photo_folder(tmp_path / "photos", 3)


def test_score_with_perturb(cli, photo_dir, tmp_path):
    out = tmp_path / "scores.csv"
    rows = json.loads(cli("score", photo_dir, "--model", "tiny-kl", "--perturb", "jpeg:90,70", "--perturb", "crop:0.5", "--out", out, "--json").stdout)
    assert len(rows) == 9 and [r["perturbation"] for r in rows[::3]] == ["jpeg:90", "jpeg:70", "crop:0.5"]
    frame = pd.read_csv(out)
    assert list(frame["perturbation"]) == [r["perturbation"] for r in rows]
    clean = json.loads(cli("score", photo_dir, "--model", "tiny-kl", "--json").stdout)
    assert [r["content_hash"] for r in rows[:3]] == [r["content_hash"] for r in clean]  # the clean image's hash
    assert all(r["score"] != c["score"] for r, c in zip(rows[:3], clean))
    table = cli("score", photo_dir / "000.png", "--model", "tiny-kl", "--perturb", "blur:1").output
    assert "perturbation" in table and "blur:1" in table and "perturbed copies" in table


def test_attribute_with_stability(cli, photo_dir, card_setup, tmp_path):
    card_path = tmp_path / "card.json"
    card_setup[3].save(card_path)
    records = json.loads(cli("attribute", photo_dir, "--card", card_path, "--stability", "--json").stdout)
    assert len(records) == 3
    for r in records:
        assert r["decision"] in ("attributed", "none", "uncertain")
        v = r["verdicts"][0]
        assert [p["perturbation"] for p in v["stability"]["perturbed"]] == ["jpeg:95", "resize:0.9", "crop:0.95"]
        assert v["decision"] in ("belongs", "no", "uncertain") and (r["decision"] == "uncertain") == v["uncertain"]
    out = tmp_path / "verdicts.csv"
    table = cli("attribute", photo_dir, "--card", card_path, "--stability", "--stability-perturb", "crop:1", "--stability-band", "0.2", "--out", out).output
    assert "stability: crop:1, band ±0.2 IQR" in " ".join(table.split())
    frame = pd.read_csv(out)
    assert set(frame["perturbed_agree"]) == {"1/1"}  # crop:1 is the image itself: its copy agrees
    assert {"decision", "card_decision", "in_band", "perturbed_agree", "score[crop:1]"} <= set(frame.columns)


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "jpg:90"], "error: --perturb jpg:90: Unknown perturbation 'jpg'"),
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "crop:2"], "error: --perturb crop:2: crop: fraction must be in (0, 1]"),
        (["attribute", "{photo}", "--card", "{card}", "--stability", "--stability-perturb", "noise"], "error: --stability-perturb noise: 'noise': give the sigma"),
        (["attribute", "{photo}", "--card", "{card}", "--stability-band", "0.2"], "error: --stability-perturb and --stability-band go with --stability"),
        (["attribute", "{photo}", "--card", "{card}", "--stability", "--stability-band", "-1"], "error: --stability-band must be a fraction >= 0"),
        (["bench", "--models", "tiny-kl", "--methods", "aedr", "--perturb", "jpeg:90", "jpeg:500", "--dry-run"], "error: perturbation 'jpeg:500': jpeg: quality must be 1..100, got 500"),
        (["bench", "--models", "tiny-kl", "--methods", "aedr", "--perturb", "sharpen:2", "--dry-run"], "Unknown perturbation 'sharpen'"),
    ],
)
def test_bad_specs_on_the_command_line_are_one_line_errors(cli, photo_dir, card_setup, tmp_path, args, message):
    card_path = tmp_path / "card.json"
    card_setup[3].save(card_path)
    args = [a.format(photo=photo_dir / "000.png", card=card_path) for a in args]
    result = cli(*args, ok=False)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_bench_perturb_takes_several_specs_after_one_flag(cli, tmp_path):
    from aedr.bench.commands import join_multi_values

    assert join_multi_values(["--perturb", "jpeg:90,70", "crop:0.5", "--n-eval", "2"]) == ["--perturb", "jpeg:90,70 crop:0.5", "--n-eval", "2"]
    plan = cli("bench", "--models", "tiny-kl", "--methods", "aedr", "--real", "none", "--n-cal", "4", "--n-eval", "3",
               "--perturb", "jpeg:90,70", "crop:0.5", "--calibrate-perturbed", "--out", tmp_path / "b", "--dry-run").output
    assert "perturbations (3, thresholds from perturbed calibration images): jpeg:90, jpeg:70, crop:0.5" in plan
    assert "up to 28 images per target" in plan  # 4 + 3 clean, and 3 x (4 + 3) perturbed
