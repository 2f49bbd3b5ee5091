"""AEDR on a small diffusers autoencoder saved to disk and loaded back through a model plugin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aedr
from aedr.glcm import homogeneity_of_gray
from aedr.reconstruction import ReconstructionCache

from conftest import photo_crops

# Tiny models: one torch thread is many times faster than two on a busy two-core machine.
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.slow
def test_batched_equals_one_by_one_in_any_order(tiny_model, natural_images):
    method = aedr.get_method("aedr", batch_size=3)
    batched = method.score(tiny_model, natural_images)
    single = np.array([method.score(tiny_model, [im])[0] for im in natural_images])
    np.testing.assert_allclose(batched, single, rtol=1e-5)
    order = np.random.default_rng(0).permutation(len(natural_images))
    shuffled = method.score(tiny_model, [natural_images[i] for i in order])
    np.testing.assert_allclose(shuffled, batched[order], rtol=1e-5)
    assert np.all(np.isfinite(batched)) and np.all(batched > 0)


@pytest.mark.parametrize("name", ["zoo-kl-a", "zoo-vq", "zoo-tiny"])
@pytest.mark.parametrize("method", ["aedr", "aeroblade-mse"])
def test_score_of_an_image_does_not_depend_on_its_batch_to_the_last_bit(name, method, single_thread):
    """Alone or in batches of 2, 3 or 5 (CPU): every pass runs at an even batch size."""
    model = aedr.load_plugins().models.get(name)
    images = photo_crops(5, 32, seed=1)
    alone = np.array([aedr.get_method(method).score(model, [im])[0] for im in images])
    for batch_size in (2, 3, 5):
        np.testing.assert_array_equal(aedr.get_method(method, batch_size=batch_size).score(model, images), alone)


def test_score_is_loss_ratio_times_homogeneity(tiny_model, natural_images):
    method = aedr.get_method("aedr")
    l1, l2 = method.losses(tiny_model, natural_images)
    h = np.array([homogeneity_of_gray(im.gray) for im in natural_images])
    np.testing.assert_allclose(method.score(tiny_model, natural_images), l1 * h / l2, rtol=1e-6)
    uncalibrated = aedr.get_method("aedr", calibrate=False).score(tiny_model, natural_images)
    np.testing.assert_allclose(uncalibrated, l1 / l2, rtol=1e-6)
    paper = aedr.get_method("aedr", homogeneity_formula="absolute").score(tiny_model, natural_images)
    h_abs = np.array([homogeneity_of_gray(im.gray, "absolute") for im in natural_images])
    np.testing.assert_allclose(paper, l1 * h_abs / l2, rtol=1e-6)


def test_seeds_make_scores_reproducible(tiny_model, natural_images):
    a = aedr.get_method("aedr", seed=1).score(tiny_model, natural_images)
    b = aedr.get_method("aedr", seed=1).score(tiny_model, natural_images)
    c = aedr.get_method("aedr", seed=2).score(tiny_model, natural_images)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c, rtol=1e-9)  # the posterior is really sampled
    m1 = aedr.get_method("aedr", latent="mean", seed=1).score(tiny_model, natural_images)
    m2 = aedr.get_method("aedr", latent="mean", seed=2).score(tiny_model, natural_images)
    np.testing.assert_allclose(m1, m2, rtol=1e-6)  # the mean needs no noise at all


def test_mixed_sizes_are_grouped_not_padded(tiny_model):
    images = photo_crops(3, size=32) + photo_crops(3, size=20, seed=1) + photo_crops(2, size=31, seed=2)
    method = aedr.get_method("aedr", batch_size=8)
    together = method.score(tiny_model, images)
    alone = np.array([method.score(tiny_model, [im])[0] for im in images])
    np.testing.assert_allclose(together, alone, rtol=1e-5)


@pytest.mark.parametrize("distance", ["l1", "ssim", "psnr"])
def test_other_distances(tiny_model, natural_images, distance):
    scores = aedr.get_method("aedr", distance=distance).score(tiny_model, natural_images[:4])
    assert np.all(np.isfinite(scores)) and np.all(scores > 0)


def test_losses_are_float32_even_in_bfloat16(tiny_model, natural_images):
    method = aedr.get_method("aedr", dtype="bfloat16")
    ae = method.autoencoder(tiny_model)
    assert ae.dtype == torch.bfloat16
    assert next(ae.module.parameters()).dtype == torch.bfloat16
    scores = method.score(tiny_model, natural_images[:4])
    reference = aedr.get_method("aedr").score(tiny_model, natural_images[:4])
    assert np.all(np.isfinite(scores))
    np.testing.assert_allclose(scores, reference, rtol=0.3)  # same quantity, coarser arithmetic


def test_shared_first_reconstruction_is_reused(tiny_model, natural_images):
    cache = ReconstructionCache()
    method = aedr.get_method("aedr")
    first = method.score(tiny_model, natural_images, cache=cache)
    misses = cache.misses
    second = method.score(tiny_model, natural_images, cache=cache)
    np.testing.assert_allclose(first, second, rtol=1e-6)  # same values; memory layout may differ
    assert cache.misses == misses and cache.hits >= len(natural_images)
    np.testing.assert_allclose(first, method.score(tiny_model, natural_images), rtol=1e-6)


def test_images_too_small_for_the_autoencoder(tiny_model):
    tiny = aedr.LoadedImage.from_array(np.zeros((1, 1, 3), np.uint8), "one-pixel")
    with pytest.raises(aedr.ImageLoadError, match="too small"):
        aedr.get_method("aedr").score(tiny_model, [tiny])


def test_decoded_images_score_lower_than_photographs(tiny_model):
    """Even an untrained decoder's outputs sit closer to its fixed points than photographs do."""
    generated = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(tiny_model.generate(8, seed=0))]
    method = aedr.get_method("aedr")
    assert np.median(method.score(tiny_model, generated)) < np.median(method.score(tiny_model, photo_crops(8)))
