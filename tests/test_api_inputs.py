"""The Python API's inputs and answers: what images the entry points take (a LoadedImage, a PIL image,
a path, a uint8 array) and what they say about anything else; an image too small for the model is a
per-image skip, not a failed call; a model named once in ``attributed_to`` whatever its cards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import aedr
from conftest import ModelsPlugin, photo_crops

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(plugins, model, method, a card of the model, a photograph, its score)."""
    from conftest import FolderModel, tiny_kl_vae

    folder = tmp_path_factory.mktemp("api-model")
    tiny_kl_vae().save_pretrained(folder)
    model = FolderModel("tiny-kl", folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model)])
    method = plugins.method("aedr")
    own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))]
    card = aedr.calibrate(model, method, own)
    image = photo_crops(1, seed=5)[0]
    return plugins, model, method, card, image, float(method.score(model, [image])[0])


# -- attributed_to names a model once --------------------------------------------------------------
def test_a_model_with_two_accepting_cards_is_attributed_once_where_its_most_typical_card_ranks(setup):
    from aedr.attribution import attribute
    from aedr.card import card_hash

    plugins, model, method, card, image, score = setup
    other = type(model)("tiny-kl-2", model.folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model, other)])

    def accepting(name: str, shift: float):  # accepts the image; its tail probability grows with shift
        return dataclasses.replace(card, model=name, options_hash=card_hash(name, card.method, card.method_options),
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
