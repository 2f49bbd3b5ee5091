"""Perturbed copies: levels that are not finite numbers, the pixel budget every copy obeys (in
`aedr score --perturb`, the bench's perturbation axis, `aedr attribute --stability` and Python), and a
stability check that has no perturbed copy to go on."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

import aedr
from aedr.perturbations import BUILTIN, PerturbationError, parse_perturbations
from conftest import ModelsPlugin, cli_runner, photo_crops, photo_folder

pytestmark = pytest.mark.usefixtures("single_thread")

PLUGINS = aedr.load_plugins(entry_points=False)


# -- levels that are not finite numbers -------------------------------------------------------------
@pytest.mark.parametrize("kind", [k.name for k in BUILTIN])
@pytest.mark.parametrize("level", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_a_level_that_is_not_finite_is_a_perturbation_error_naming_the_spec(kind, level):
    spec = f"{kind}:{level}"
    for text, named in ((spec, spec), (f"{kind}:1,{level}", f"{kind}:1,{level}"), (f"jpeg:75+{spec}", spec)):
        with pytest.raises(PerturbationError, match="must be a finite number") as info:
            parse_perturbations(text, PLUGINS.perturbations)
        assert repr(named) in str(info.value) and repr(level) in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "jpeg:nan"], "error: --perturb jpeg:nan: 'jpeg:nan': the quality must be a finite number"),
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "resize:inf"], "error: --perturb resize:inf: 'resize:inf': the scale must be a finite number"),
        (["attribute", "{photo}", "--card", "{card}", "--stability", "--stability-perturb", "crop:-inf"], "error: --stability-perturb crop:-inf: 'crop:-inf'"),
        (["bench", "--models", "tiny-kl", "--methods", "aedr", "--perturb", "noise:nan", "--dry-run"], "'noise:nan': the sigma must be a finite number"),
    ],
)
def test_a_level_that_is_not_finite_is_one_line_on_the_command_line(tiny_model, monkeypatch, tmp_path, args, message):
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)])
    photo = photo_folder(tmp_path / "photos", 1) / "000.png"
    card = tmp_path / "card.json"
    card.write_text("{}")  # never read: the spec is refused first
    args = [a.format(photo=photo, card=card) for a in args]
    result = cli_runner(plugins, monkeypatch)(*args, ok=False)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# -- the stability check without a perturbed copy -----------------------------------------------------
@pytest.fixture(scope="module")
def accepting_card(tmp_path_factory):
    """(plugins, model, a card that accepts the photograph far from its threshold, the photograph)."""
    from conftest import calibrated_tiny_model

    plugins, model, _, card, image, score = calibrated_tiny_model(tmp_path_factory.mktemp("copies-model"))
    q1, q3 = np.quantile(card.scores, [0.25, 0.75])
    return plugins, model, dataclasses.replace(card, threshold=score + 5 * (q3 - q1)), image


def test_a_card_with_no_scorable_perturbed_copy_is_uncertain_not_attributed(accepting_card):
    from aedr.attribution import attribute

    plugins, _, card, image = accepting_card
    done = []
    results, skipped = attribute([image], [card], plugins=plugins, stability=True, stability_perturbations=["crop:0.01"], progress=done.append)
    assert not skipped and sum(done) == 2  # the image and its copy: a progress bar completes
    a, st = results[0], results[0].verdicts[0].stability
    assert results[0].verdicts[0].belongs and not st.in_band and not st.disagree and st.agreeing == "0/0"
    assert len(st.errors) == 1 and st.errors[0].startswith("crop:0.01: ") and "too small" in st.errors[0]
    assert st.uncertain and (a.decision, a.verdict, a.attributed_to, a.uncertain_about) == ("uncertain", "uncertain", [], ["tiny-kl"])
    assert st.reasons == ["no perturbed copy could be scored"]
    # with one copy scored, the evidence is that copy
    results, _ = attribute([image], [card], plugins=plugins, stability=True, stability_perturbations=["crop:0.01", "crop:1"])
    st = results[0].verdicts[0].stability
    assert st.agreeing == "1/1" and not st.uncertain and st.reasons == [] and results[0].decision == "attributed"


def test_no_perturbed_copy_is_uncertain_with_its_reason_in_the_table_and_the_json(accepting_card, monkeypatch, tmp_path):
    plugins, _, card, image = accepting_card
    card_path = tmp_path / "card.json"
    card.save(card_path)
    photo = tmp_path / "photo.png"
    image.to_pil().save(photo)
    cli = cli_runner(plugins, monkeypatch)
    args = ("attribute", photo, "--card", card_path, "--stability", "--stability-perturb", "crop:0.01")
    record = json.loads(cli(*args, "--json").stdout)[0]
    assert (record["decision"], record["attributed_to"], record["uncertain_about"]) == ("uncertain", [], ["tiny-kl"])
    v = record["verdicts"][0]
    assert v["decision"] == "uncertain" and v["stability"]["reasons"] == ["no perturbed copy could be scored"]
    assert v["stability"]["perturbed"] == [] and "too small" in v["stability"]["errors"][0]
    table = cli(*args, "--out", tmp_path / "v.csv").output
    assert "no perturbed copy could be scored" in table and "attributed" not in table
    frame = pd.read_csv(tmp_path / "v.csv")
    assert frame["perturbed_agree"].tolist() == ["0/0"]  # the table shows it where the terminal has room for the column
    assert frame["decision"].tolist() == ["uncertain"] and frame["uncertain_reasons"].tolist() == ["no perturbed copy could be scored"]


# -- the pixel budget of perturbed copies ------------------------------------------------------------
def _no_resampling(monkeypatch):
    """Any resampling from now on fails the test: a copy over the budget is refused before any pixel is made."""
    from PIL import Image

    def refuse(*args, **kwargs):
        raise AssertionError("a copy over the budget was made")

    monkeypatch.setattr(Image.Image, "resize", refuse)


def test_a_copy_over_the_budget_of_its_image_is_refused_before_it_is_made(tmp_path, monkeypatch):
    from aedr.images import DEFAULT_MAX_PIXELS, ImageOverBudgetError, ImageTooLargeError, load_image
    from aedr.perturbations import perturb_image

    path = photo_folder(tmp_path, 1) / "000.png"
    image = load_image(path, pixel_budget=10_000)  # 32 x 32
    assert image.pixel_budget == 10_000
    small = perturb_image(PLUGINS.perturbation("resize:2"), image)
    assert (small.width, small.height, small.pixel_budget) == (64, 64, 10_000)  # within the budget; copies keep it
    _no_resampling(monkeypatch)
    with pytest.raises(ImageOverBudgetError, match=r"resize:8 would make a 256x256 copy = 65536 pixels > budget 10000") as info:
        perturb_image(PLUGINS.perturbation("resize:8"), image)
    assert "000.png" in str(info.value) and "--pixel-budget" in str(info.value) and "--max-side" in str(info.value)
    with pytest.raises(ImageOverBudgetError, match="resize:0.5"):  # every step's output counts, not only the last
        perturb_image(PLUGINS.perturbation("resize:8+resize:0.5"), image)
    # without a budget, the decompression-bomb limit still holds, for a loaded image and for Chain.apply
    huge = PLUGINS.perturbation("resize:8+resize:8+resize:8")
    with pytest.raises(ImageTooLargeError, match=f"16384x16384 copy = 268435456 pixels > limit {DEFAULT_MAX_PIXELS}"):
        perturb_image(huge, load_image(path))
    with pytest.raises(ImageTooLargeError):
        huge.apply(image.to_pil())


def test_score_perturb_skips_a_copy_over_the_pixel_budget_and_scores_the_rest(tiny_model, monkeypatch, tmp_path):
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)])
    cli = cli_runner(plugins, monkeypatch)
    photos = photo_folder(tmp_path / "photos", 2)
    rows = json.loads(cli("score", photos, "--model", "tiny-kl", "--pixel-budget", "10000", "--json",
                          "--perturb", "resize:0.5", "--perturb", "resize:8", "--perturb", "resize:8+resize:8+resize:8").stdout)
    scored = [r for r in rows if r["error"] is None]
    assert [r["perturbation"] for r in scored] == ["resize:0.5", "resize:0.5"]
    skipped = {r["image"]: r["error"] for r in rows if r["error"] is not None}
    assert sorted(skipped) == sorted(f"{photos / n} ({p})" for n in ("000.png", "001.png") for p in ("resize:8", "resize:8+resize:8+resize:8"))
    assert all("> budget 10000" in e and "--pixel-budget" in e for e in skipped.values())
    # no budget at all (--pixel-budget 0): the 6 GiB chain is still refused, as a skip
    args = ("score", photos / "000.png", "--model", "tiny-kl", "--pixel-budget", "0", "--perturb", "resize:8+resize:8+resize:8")
    assert "1 input(s) skipped" in cli(*args).output
    [row] = json.loads(cli(*args, "--json").stdout)
    assert row["score"] is None and "16384x16384 copy" in row["error"] and "decompression-bomb limit" in row["error"]


def test_score_images_and_the_stability_check_obey_the_budget_of_the_images(accepting_card, tmp_path):
    from aedr.attribution import attribute
    from aedr.images import load_image
    from aedr.scoring import score_images

    plugins, model, card, _ = accepting_card
    image = load_image(photo_folder(tmp_path, 1) / "000.png", pixel_budget=10_000)
    table = score_images(model, plugins.method("aedr"), [image], perturbations=[PLUGINS.perturbation("resize:8"), PLUGINS.perturbation("crop:1")])
    assert table.rows["perturbation"].tolist() == ["crop:1"]
    assert [s.id for s in table.skipped] == [f"{image.id} (resize:8)"] and "> budget 10000" in table.skipped[0].error
    results, skipped = attribute([image], [card], plugins=plugins, stability=True, stability_perturbations=["resize:8"])
    st = results[0].verdicts[0].stability
    assert not skipped and st.perturbed == [] and st.errors[0].startswith("resize:8: ") and "> budget 10000" in st.errors[0]
    assert results[0].decision == "uncertain" and st.reasons == ["no perturbed copy could be scored"]


def test_the_bench_records_a_copy_over_the_limit_as_a_skip(monkeypatch):
    from aedr.bench.sources import ImageRef, SourceImages, perturbed_sources

    images = photo_crops(2)
    src = SourceImages("real", "real", "test", eval=[ImageRef("real", "real", "eval", im.id, im.content_hash, image=im) for im in images])
    chains = [PLUGINS.perturbation("crop:0.5"), PLUGINS.perturbation("resize:8+resize:8+resize:8")]
    _no_resampling(monkeypatch)
    out = perturbed_sources({"real": src}, chains, splits=["eval"], seed=0)
    assert [r.id for r in out["crop:0.5"]["real"].eval] == ["photo-0", "photo-1"]
    huge = out["resize:8+resize:8+resize:8"]["real"]
    assert huge.eval == [] and [s.id for s in huge.skipped] == ["photo-0", "photo-1"]
    assert all("decompression-bomb limit" in s.error for s in huge.skipped)
