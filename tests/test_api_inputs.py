"""The Python API's inputs and answers: what images the entry points take (a LoadedImage, a PIL image,
a path, a uint8 array) and what they say about anything else; an image too small for the model is a
per-image skip, not a failed call; a model named once in ``attributed_to`` whatever its cards."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import aedr
from conftest import ModelsPlugin

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(plugins, model, method, a card of the model, a photograph, its score)."""
    from conftest import calibrated_tiny_model

    return calibrated_tiny_model(tmp_path_factory.mktemp("api-model"))


# -- attributed_to names a model once --------------------------------------------------------------
def test_a_model_with_two_accepting_cards_is_attributed_once_where_its_most_typical_card_ranks(setup):
    from aedr.attribution import attribute
    from aedr.card import card_hash

    plugins, model, method, card, image, score = setup
    other = type(model)("tiny-kl-2", model.folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model, other)])

    def accepting(name: str, shift: float):  # accepts the image; its tail probability grows with shift
        return dataclasses.replace(card, model=name, options_hash=card_hash(name, card.method, card.method_options, card.weights),
                                   threshold=score + 100.0, scores=[s + shift for s in card.scores])

    centre, spread = score - float(np.median(card.scores)), float(np.ptp(card.scores))  # calibration scores around the image's
    cards = [accepting("tiny-kl", centre - spread / 2), accepting("tiny-kl-2", centre), accepting("tiny-kl", centre + spread / 2)]
    results, _ = attribute([image], cards, plugins=plugins)
    a = results[0]
    tails = [v.tail_probability for v in a.verdicts]
    assert [v.model for v in a.verdicts] == ["tiny-kl", "tiny-kl-2", "tiny-kl"] and all(v.belongs for v in a.verdicts)
    assert tails[0] < tails[1] < tails[2]
    assert a.attributed_to == ["tiny-kl", "tiny-kl-2"] and a.verdict == "tiny-kl, tiny-kl-2" and a.decision == "attributed"
    results, _ = attribute([image], cards, plugins=plugins, stability=True, stability_perturbations=["crop:0.01"])
    assert results[0].uncertain_about == ["tiny-kl", "tiny-kl-2"]  # every card uncertain: each model named once


# -- what the entry points take as an image ----------------------------------------------------------
def test_every_entry_point_takes_a_pil_image_a_path_an_array_or_a_loaded_image(setup, tmp_path):
    from aedr.attribution import attribute
    from aedr.scoring import score_images

    plugins, model, method, card, image, score = setup
    path = tmp_path / "photo.png"
    image.to_pil().save(path)
    given = [image, image.to_pil(), str(path), path, image.rgb.copy()]
    scores = method.score(model, given)
    assert scores.tolist() == [score] * 5  # the same pixels, the same score: nothing else differs
    for one in given:  # one image alone is a batch of one
        assert method.score(model, one).tolist() == [score]
    table = score_images(model, method, given)
    assert table.rows["image"].tolist() == ["photo-0", "image 1", str(path), str(path), "image 4"] and not table.skipped
    assert table.rows["score"].tolist() == [score] * 5
    results, skipped = attribute([image.to_pil(), path], [card], plugins=plugins)
    assert [a.image for a in results] == ["image 0", str(path)] and not skipped
    assert [a.verdicts[0].score for a in results] == [score, score]
    own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))]
    again = aedr.calibrate(model, method, [im.to_pil() for im in own])
    assert (again.threshold, again.scores) == (card.threshold, card.scores)


@pytest.mark.parametrize(
    "bad, what",
    [
        (42, "int"),
        (None, "NoneType"),
        ({"image": "x.png"}, "dict"),
        (b"\x89PNG", "bytes"),
        (np.zeros((8, 8, 3), np.float32), "a float32 array of shape (8, 8, 3)"),
        (np.zeros((8, 8, 4), np.uint8), "a uint8 array of shape (8, 8, 4)"),
    ],
)
def test_anything_else_is_a_type_error_saying_what_is_expected(setup, bad, what):
    from aedr.attribution import attribute
    from aedr.scoring import score_images

    plugins, model, method, card, image, _ = setup
    expected = "expected a LoadedImage, a PIL image, a path (str or Path) or a uint8 HxWx3 numpy array"
    for call in (lambda x: method.score(model, x), lambda x: score_images(model, method, x),
                 lambda x: attribute(x, [card], plugins=plugins)):
        with pytest.raises(TypeError, match=re.escape(f"image 1: {expected}, got {what}")):
            call([image, bad])
    with pytest.raises(TypeError, match=re.escape(f"expected an image or a sequence of images ({expected[9:]}), got float")):
        method.score(model, 3.5)


# -- an image the model cannot take is a per-image skip ---------------------------------------------
def test_an_image_too_small_for_the_model_is_nan_with_a_warning_and_the_others_are_scored(setup, tmp_path):
    from aedr.images import UnusableImageWarning
    from aedr.scoring import score_images

    plugins, model, method, card, image, score = setup
    tiny = aedr.LoadedImage.from_array(np.zeros((4, 4, 3), np.uint8), "tiny")
    missing = tmp_path / "missing.png"
    with pytest.warns(UnusableImageWarning) as caught:
        scores = method.score(model, [image, tiny, missing])
    assert scores[0] == score and np.isnan(scores[1:]).all()  # the others' scores as when scored alone
    messages = [str(w.message) for w in caught]
    assert any("tiny" in m and "too small" in m for m in messages) and any("missing.png" in m and "no such file" in m for m in messages)
    table = score_images(model, method, [image, tiny, missing])  # the convention of aedr.score_images: recorded skips
    assert table.rows["image"].tolist() == ["photo-0"]
    assert [s.id for s in table.skipped] == [str(missing), "tiny"]
    with pytest.raises(aedr.ImageLoadError, match="too small"):  # nothing at all to score is an error
        method.score(model, [tiny])
    with pytest.warns(UnusableImageWarning):
        calibrated = aedr.calibrate(model, method, [*(aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))), tiny])
    assert calibrated.n_images == 6 and calibrated.threshold == card.threshold


def test_generate_gives_a_single_calls_images_a_few_at_a_time_with_progress(tmp_path):
    """aedr.generate: image i depends only on seed + i, so generating in steps changes nothing; the
    progress callable sees every image; a prompt list of the wrong length is refused."""
    from conftest import FolderModel, tiny_kl_vae

    tiny_kl_vae().save_pretrained(tmp_path)
    model = FolderModel("tiny-kl", tmp_path)
    counts: list[int] = []
    stepped = aedr.generate(model, 6, seed=3, progress=counts.append)
    whole = model.generate(6, seed=3)
    assert counts == [4, 2] and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(stepped, whole))
    with pytest.raises(ValueError, match="2 prompts for 6 images"):
        aedr.generate(model, 6, prompts=["a", "b"], progress=False)
