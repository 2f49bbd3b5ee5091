"""TRACE: the residual's autocovariance (its invariants), the score written out by hand, its
ablations as options (one of them is AEDR at the posterior mean), batch independence and the listing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import aedr
from aedr.distances import mse, residual_autocovariance
from aedr.glcm import homogeneity_of_gray
from aedr.methods.aedr_method import AEDR
from aedr.methods.trace_method import FLOOR, TRACE
from aedr.preprocess import to_model_tensor
from aedr.reconstruction import ReconstructionCache

from conftest import cli_runner, photo_crops, tiny_kl_vae

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def images() -> list[aedr.LoadedImage]:
    return photo_crops(5, 32, seed=23)


# ----------------------------------------------------------------------------------------------
# the residual's autocovariance


def autocovariance_by_hand(r: np.ndarray) -> float:
    """Every horizontally and every vertically adjacent pair of one (C, H, W) residual, written out."""
    c, h, w = r.shape
    across = [r[k, i, j] * r[k, i, j + 1] for k in range(c) for i in range(h) for j in range(w - 1)]
    down = [r[k, i, j] * r[k, i + 1, j] for k in range(c) for i in range(h - 1) for j in range(w)]
    return (np.mean(across) + np.mean(down)) / 2


residuals = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(2, 6), st.integers(2, 6)),
                   elements=st.floats(-2, 2, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(residuals, st.floats(0.1, 10))
def test_autocovariance_is_the_mean_of_neighbour_products_and_scales_quadratically(r, k):
    a = torch.from_numpy(r)[None]
    got = residual_autocovariance(a, torch.zeros_like(a))
    assert float(got[0]) == pytest.approx(autocovariance_by_hand(r.astype(np.float32)), rel=1e-4, abs=1e-6)
    assert float(residual_autocovariance(torch.zeros_like(a), a)[0]) == pytest.approx(float(got[0]), rel=1e-6, abs=1e-9)
    assert float(residual_autocovariance(k * a, torch.zeros_like(a))[0]) == pytest.approx(k * k * float(got[0]), rel=1e-4, abs=1e-6)
    # each product is at most the mean of its two squares: never above the largest squared residual
    assert float(got[0]) <= float((a.float() ** 2).max()) + 1e-6


def test_a_constant_residual_counts_in_full_and_white_noise_not_at_all():
    a = torch.full((1, 3, 16, 16), 0.25)
    assert float(residual_autocovariance(a, torch.zeros_like(a))[0]) == pytest.approx(0.0625)
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (1, 3, 256, 256))).float()
    assert float(mse(noise, torch.zeros_like(noise))[0]) == pytest.approx(0.01, rel=0.02)
    assert abs(float(residual_autocovariance(noise, torch.zeros_like(noise))[0])) < 2e-4  # 0.01 / sqrt(n) scale
    with pytest.raises(ValueError, match="2x2"):
        residual_autocovariance(torch.zeros(1, 3, 1, 8), torch.zeros(1, 3, 1, 8))


# ----------------------------------------------------------------------------------------------
# the score


def trace_by_hand(vae, images, *, autocovariance=True, fixed_point=True, calibrate=True) -> np.ndarray:
    """x1, x2, x3 with the diffusers module itself (posterior mode, one image at a time), the losses
    in float64 numpy."""
    x = to_model_tensor(images, (images[0].width, images[0].height))
    out = []
    for i, im in enumerate(images):
        chain = [x[i : i + 1]]
        with torch.no_grad():
            for _ in range(3):
                chain.append(vae.decode(vae.encode(chain[-1]).latent_dist.mode()).sample)
        x0, x1, x2, x3 = (c[0].double().numpy() for c in chain)
        first = max(autocovariance_by_hand(x0 - x1), FLOOR) if autocovariance else np.mean((x0 - x1) ** 2)
        l2, l3 = np.mean((x1 - x2) ** 2), np.mean((x2 - x3) ** 2)
        score = first / l2 * (l3 / l2 if fixed_point else 1.0)
        out.append(score * (homogeneity_of_gray(im.gray, "squared") if calibrate else 1.0))
    return np.array(out)


@pytest.mark.parametrize("options", [{}, {"fixed_point": False}, {"calibrate": False}, {"first_loss": "l2"}])
def test_trace_is_the_formula_written_out(tiny_model, images, options):
    vae = tiny_kl_vae().eval()  # the weights tiny_model was saved with
    scores = TRACE(batch_size=8, **options).score(tiny_model, images)
    expected = trace_by_hand(vae, images, autocovariance=options.get("first_loss", "autocovariance") == "autocovariance",
                             fixed_point=options.get("fixed_point", True), calibrate=options.get("calibrate", True))
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)
    np.testing.assert_allclose(scores, expected, rtol=2e-3)


def test_without_its_two_parts_trace_is_aedr_at_the_posterior_mean(tiny_model, images):
    aedr_mean = AEDR(latent="mean").score(tiny_model, images)
    np.testing.assert_allclose(TRACE(first_loss="l2", fixed_point=False).score(tiny_model, images), aedr_mean, rtol=1e-12)


def test_scores_do_not_depend_on_the_batch_and_share_the_first_reconstruction(tiny_model, images):
    together = TRACE(batch_size=8).score(tiny_model, images)
    alone = np.concatenate([TRACE(batch_size=1).score(tiny_model, [im]) for im in images])
    np.testing.assert_array_equal(together, alone)
    cache = ReconstructionCache()
    AEDR(latent="mean").score(tiny_model, images, cache=cache)
    hits = cache.hits
    np.testing.assert_array_equal(TRACE().score(tiny_model, images, cache=cache), together)
    assert cache.hits > hits  # x1 came from the cache AEDR filled


def test_white_noise_added_to_a_structured_residual_moves_the_mse_not_the_autocovariance():
    """A smooth residual (what a foreign texture leaves) plus white noise (what an 8-bit noisy copy
    adds): the MSE grows by the noise's variance, the autocovariance stays where it was."""
    rng = np.random.default_rng(1)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.normal(0, 1, (4, 3, 132, 132))).float(), 5, stride=1)
    noise = torch.from_numpy(rng.normal(0, 0.1, smooth.shape)).float()
    zero = torch.zeros_like(smooth)
    grew_mse = mse(smooth + noise, zero) - mse(smooth, zero)
    grew_cov = residual_autocovariance(smooth + noise, zero) - residual_autocovariance(smooth, zero)
    assert torch.allclose(grew_mse, torch.full_like(grew_mse, 0.01), rtol=0.1)
    assert torch.all(grew_cov.abs() < 0.1 * grew_mse)
    assert torch.all(residual_autocovariance(smooth, zero) > 0.7 * mse(smooth, zero))  # smooth: highly correlated


def test_options_are_checked_labelled_and_listed(monkeypatch):
    assert TRACE().label == "trace"
    assert TRACE(fixed_point=False).label == "trace(fixed_point=False)"
    for bad in ({"first_loss": "l1"}, {"fixed_point": "yes"}):
        with pytest.raises(aedr.MethodOptionsError, match="trace"):
            aedr.build_method(TRACE, bad)
    cls = aedr.load_plugins().methods.get("trace")
    assert cls is TRACE and cls.needs_grad is False
    assert (cls.cost.encoder_passes, cls.cost.decoder_passes) == (3, 3)
    run = cli_runner(aedr.load_plugins(), monkeypatch)
    rows = {r["name"]: r for r in json.loads(run("methods", "--json").stdout)}
    assert rows["trace"]["options"] == {**rows["trace"]["options"], "first_loss": "autocovariance", "fixed_point": True}
    assert "trace" in run("methods").output
