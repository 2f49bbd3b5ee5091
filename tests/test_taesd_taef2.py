"""TAEF2 (the FLUX.2 tiny autoencoder) on its real published weights: strict loading, reconstruction
quality on real photographs, and AEDR telling TAEF2-decoded images from real ones.

Run as a script (``python tests/test_taesd_taef2.py [N]``) to print the figures for docs/models.md
on N tiles (default: all).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import aedr
from aedr.preprocess import tensor_to_uint8, to_model_tensor
from aedr_taesd import TAEF2_WEIGHTS, TAEF2Model, decoder, encoder
from aedr_taesd.tiny_ae import load_state_dict

WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "taesd"
HAVE_WEIGHTS = all(p.is_file() for p in TAEF2_WEIGHTS.paths(WEIGHTS))
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason=f"TAEF2 weights not found in {WEIGHTS}")

TILE = 128
TEST_TILES = 50  # 25 real + 25 decoded by TAEF2


def photo_tiles(size: int = TILE) -> list[np.ndarray]:
    """Non-overlapping size x size tiles of scikit-image's bundled colour photographs, interleaved
    across photos (deterministic order)."""
    from skimage import data

    per_photo = []
    for photo in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()):
        h, w = photo.shape[:2]
        per_photo.append([
            np.ascontiguousarray(photo[y : y + size, x : x + size, :3])
            for y in range(0, h - size + 1, size)
            for x in range(0, w - size + 1, size)
        ])
    tiles = []
    for i in range(max(len(p) for p in per_photo)):
        tiles += [p[i] for p in per_photo if i < len(p)]
    return tiles


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


@dataclass
class Figures:
    n_real: int
    n_decoded: int
    psnr_mean: float
    psnr_min: float
    auc_calibrated: float
    auc_uncalibrated: float
    seconds: float


def measure(model: aedr.ModelPlugin, n_tiles: int | None = TEST_TILES) -> Figures:
    """Even tiles are real; the others are encoded and decoded by TAEF2 and saved to 8 bits, so each
    decoded image comes from the latent of a region that is not among the real ones. PSNR is measured
    on those reconstructions; AUC = P(score of a real tile > score of a decoded one)."""
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    tiles = photo_tiles()[:n_tiles]
    real = [aedr.LoadedImage.from_array(t, f"real-{i}") for i, t in enumerate(tiles[0::2])]
    sources = tiles[1::2]
    ae = model.autoencoder("cpu")
    x = to_model_tensor([aedr.LoadedImage.from_array(t, "src") for t in sources], (TILE, TILE))
    decoded_rgb = []
    with torch.no_grad():
        for batch in x.split(8):
            decoded_rgb += list(tensor_to_uint8(ae.decode(ae.encode(batch).latent("mean"))))
    psnrs = [psnr(s, d) for s, d in zip(sources, decoded_rgb)]
    decoded = [aedr.LoadedImage.from_array(d, f"taef2-{i}") for i, d in enumerate(decoded_rgb)]

    calibrated = aedr.get_method("aedr").score(model, real + decoded)
    # Without the homogeneity calibration the score is the bare ratio L1 / L2: divide the homogeneity
    # back out instead of reconstructing everything twice (checked against the method below).
    h = np.array([aedr.homogeneity(im) for im in real + decoded])
    uncalibrated = calibrated / h
    labels = np.r_[np.zeros(len(real)), np.ones(len(decoded))]  # 1 = belonging (made by TAEF2)
    return Figures(
        len(real), len(decoded), float(np.mean(psnrs)), float(np.min(psnrs)),
        float(roc_auc_score(labels, -calibrated)), float(roc_auc_score(labels, -uncalibrated)),
        time.perf_counter() - start,
    )


@pytest.fixture(scope="module")
def taef2() -> TAEF2Model:
    return TAEF2Model(folder=WEIGHTS)


@needs_weights
def test_published_state_dicts_load_strictly():
    for build, path in ((encoder, TAEF2_WEIGHTS.paths(WEIGHTS)[0]), (decoder, TAEF2_WEIGHTS.paths(WEIGHTS)[1])):
        state = load_state_dict(path)
        module = build(32, pool=True)
        assert set(module.state_dict()) == set(state), path.name
        result = module.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        assert all(torch.equal(module.state_dict()[k], v.float()) for k, v in state.items())


@needs_weights
def test_shapes_and_range(taef2):
    ae = taef2.autoencoder("cpu")
    assert ae.latent_kind == "deterministic" and ae.dtype == torch.float32
    x = to_model_tensor([aedr.LoadedImage.from_array(photo_tiles(64)[0], "t")], (64, 64))
    with torch.no_grad():
        z = ae.encode(x).latent("sample", seeds=[0])
        y = ae.decode(z)
    assert z.shape == (1, 32, 8, 8)
    assert y.shape == x.shape
    # [-1, 1] at the boundary: a [0, 1] output would sit far from the input's mean
    assert abs(float(y.mean() - x.mean())) < 0.05 and float(y.min()) < -0.2


@pytest.mark.slow
@needs_weights
def test_reconstruction_and_attribution_on_real_photos(taef2):
    fig = measure(taef2)
    assert fig.n_real + fig.n_decoded >= 50
    assert fig.psnr_mean >= 30.0, fig
    assert fig.auc_calibrated >= 0.85, fig
    assert fig.auc_uncalibrated >= 0.85, fig


@pytest.mark.slow
@needs_weights
def test_uncalibrated_ratio_is_the_method_without_calibration(taef2):
    """The division used in :func:`measure` equals running AEDR with ``calibrate=False``."""
    images = [aedr.LoadedImage.from_array(t, f"t{i}") for i, t in enumerate(photo_tiles(32)[:2])]
    with_h = aedr.get_method("aedr").score(taef2, images)
    without = aedr.get_method("aedr", calibrate=False).score(taef2, images)
    h = np.array([aedr.homogeneity(im) for im in images])
    np.testing.assert_allclose(with_h / h, without, rtol=1e-9)


def test_missing_weights_error_names_the_files_and_the_fix(tmp_path):
    model = TAEF2Model(folder=tmp_path)
    assert not model.availability().local
    with pytest.raises(OSError) as err:
        model.autoencoder("cpu")
    text = str(err.value)
    assert "taef2_encoder.pth" in text and str(tmp_path) in text and "AEDR_MODEL_TAEF2" in text


def test_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AEDR_MODEL_TAEF2", str(tmp_path))
    assert TAEF2Model().folder() == (tmp_path, "AEDR_MODEL_TAEF2")
    monkeypatch.delenv("AEDR_MODEL_TAEF2")
    assert TAEF2Model().folder()[1] == "default"


if __name__ == "__main__":
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else None
    print(measure(TAEF2Model(folder=WEIGHTS), n))
