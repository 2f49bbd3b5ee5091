"""``aedr reconstruct``: D(E(x)) saved as a model's own images (for models without a generator)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import aedr
from aedr.reconstruction import reconstruct_images
from conftest import cli_runner


@pytest.fixture
def run(monkeypatch):
    invoke = cli_runner(aedr.get_plugins(), monkeypatch)

    def call(*args, ok=True):
        result = invoke(*args, ok=ok)
        result.text = " ".join(result.output.split())  # the console wraps long lines
        return result

    return call


def test_reconstructions_of_a_dataset_and_a_folder_resume_and_skip(run, tmp_path):
    model = aedr.get_plugins().model("zoo-kl-a")
    images = aedr.get_plugins().dataset("zoo-real-eval").images()[:3]
    out = tmp_path / "made"
    result = run("reconstruct", "zoo-real-eval", "--model", "zoo-kl-a", "--out", out, "--limit", "3", "--batch-size", "2")
    assert "3 reconstruction(s) written" in result.text
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == sorted(f"{im.id.split('/')[-1]}.png" for im in images)
    expected = reconstruct_images(model, images, batch_size=1)  # batching does not change them
    for im, arr in zip(images, expected):
        saved = np.asarray(Image.open(out / f"{im.id.split('/')[-1]}.png"))
        np.testing.assert_array_equal(saved, arr)
    assert json.loads((out / "reconstruct.json").read_text())["model"] == "zoo-kl-a"
    # a rerun keeps what is there
    result = run("reconstruct", "zoo-real-eval", "--model", "zoo-kl-a", "--out", out, "--limit", "3")
    assert "0 reconstruction(s) written" in result.text and "3 already there" in result.text
    # a folder, with an image too small for the autoencoder: recorded as a skip, the others written
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(images[0].rgb).save(folder / "a.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(folder / "tiny.png")
    (folder / "photo").mkdir()
    Image.fromarray(images[1].rgb).save(folder / "photo" / "b.png")
    result = run("reconstruct", folder, "--model", "zoo-kl-a", "--out", tmp_path / "made2", "-r")
    assert (tmp_path / "made2" / "a.png").is_file() and not (tmp_path / "made2" / "tiny.png").exists()
    assert (tmp_path / "made2" / "photo" / "b.png").is_file()  # sub-folders (clusters) are kept
    assert "1 input(s) skipped" in result.text and "tiny" in result.text


def test_unknown_input_and_bad_dtype_are_one_line_errors(run, tmp_path):
    result = run("reconstruct", "no-such-thing", "--model", "zoo-kl-a", "--out", tmp_path, ok=False)
    assert result.exit_code == 2 and "not a registered dataset" in result.text
    result = run("reconstruct", "zoo-real-eval", "--model", "zoo-kl-a", "--out", tmp_path, "--dtype", "float8", ok=False)
    assert result.exit_code == 2 and "--dtype must be one of" in result.text
