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
    from conftest import FolderModel, tiny_kl_vae

    folder = tmp_path_factory.mktemp("copies-model")
    tiny_kl_vae().save_pretrained(folder)
    model = FolderModel("tiny-kl", folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model)])
    method = plugins.method("aedr")
    own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))]
    card = aedr.calibrate(model, method, own)
    image = photo_crops(1, seed=5)[0]
    score = float(method.score(model, [image])[0])
    q1, q3 = np.quantile(card.scores, [0.25, 0.75])
    return plugins, model, dataclasses.replace(card, threshold=score + 5 * (q3 - q1)), image


def test_a_card_with_no_scorable_perturbed_copy_is_uncertain_not_attributed(accepting_card):
    from aedr.attribution import attribute

    plugins, _, card, image = accepting_card
    results, skipped = attribute([image], [card], plugins=plugins, stability=True, stability_perturbations=["crop:0.01"])
    assert not skipped
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
    assert "0/0" in table and "no perturbed copy could be scored" in table and "attributed" not in table
    frame = pd.read_csv(tmp_path / "v.csv")
    assert frame["decision"].tolist() == ["uncertain"] and frame["uncertain_reasons"].tolist() == ["no perturbed copy could be scored"]
