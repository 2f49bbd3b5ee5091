"""Invariants of the threshold, the tail probability, GLCM homogeneity and the AEDR ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import aedr
from aedr.calibration import choose_alpha, kde_tail_probability
from aedr.glcm import glcm, homogeneity_of_gray

score_sets = arrays(
    np.float64,
    st.integers(5, 60),
    elements=st.floats(0.05, 50, allow_nan=False, allow_infinity=False),
).filter(lambda s: np.ptp(s) > 1e-3 * np.abs(s).max())
alphas = st.floats(0.001, 0.5)


@settings(max_examples=25, deadline=None)
@given(score_sets, alphas, st.randoms(use_true_random=False))
def test_threshold_ignores_order(scores, alpha, rnd):
    shuffled = scores.copy()
    rnd.shuffle(shuffled)
    assert math.isclose(aedr.kde_threshold(scores, alpha), aedr.kde_threshold(shuffled, alpha), rel_tol=1e-9)


@settings(max_examples=25, deadline=None)
@given(score_sets, alphas, alphas)
def test_threshold_is_monotone_in_alpha(scores, a, b):
    lo, hi = sorted((a, b))
    assert aedr.kde_threshold(scores, lo) >= aedr.kde_threshold(scores, hi) - 1e-12 * np.abs(scores).max()


@settings(max_examples=25, deadline=None)
@given(score_sets, alphas, st.floats(0.01, 100), st.floats(-10, 10))
def test_threshold_is_equivariant_under_affine_maps(scores, alpha, scale, shift):
    t = aedr.kde_threshold(scores, alpha)
    mapped = aedr.kde_threshold(scores * scale + shift, alpha)
    assert math.isclose(mapped, t * scale + shift, rel_tol=1e-7, abs_tol=1e-7 * (abs(shift) + scale * np.abs(scores).max()))


@settings(max_examples=25, deadline=None)
@given(score_sets, alphas)
def test_threshold_lies_in_the_grid(scores, alpha):
    sd = np.std(scores, ddof=1)
    assert scores.min() - sd <= aedr.kde_threshold(scores, alpha) <= scores.max() + sd


@settings(max_examples=30, deadline=None)
@given(score_sets)
def test_tail_probability_is_a_decreasing_probability(scores):
    grid = np.linspace(scores.min() - 1, scores.max() + 1, 25)
    tails = kde_tail_probability(scores, grid)
    assert np.all((tails >= 0) & (tails <= 1))
    assert np.all(np.diff(tails) <= 1e-12)


@settings(max_examples=30, deadline=None)
@given(score_sets, score_sets)
def test_auto_alpha_is_at_least_as_accurate_as_the_default(belonging, others):
    choice = choose_alpha(belonging, others)
    t = aedr.kde_threshold(belonging, 0.05)
    default_acc = (np.sum(belonging < t) + np.sum(others >= t)) / (belonging.size + others.size)
    assert choice.accuracy >= default_acc - 1e-12


@pytest.mark.parametrize("bad", [[1.0], [2.0, 2.0, 2.0], [1.0, np.nan, 3.0], [1.0, np.inf]])
def test_threshold_rejects_degenerate_scores(bad):
    with pytest.raises(ValueError):
        aedr.kde_threshold(bad)


gray_images = arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(2, 24)))


@settings(max_examples=50, deadline=None)
@given(gray_images)
def test_glcm_matches_scikit_image(gray):
    from skimage.feature import graycomatrix, graycoprops

    reference = graycomatrix(gray // 8, [1], [0], levels=32, symmetric=True, normed=True)
    np.testing.assert_allclose(glcm(gray), reference[:, :, 0, 0], atol=1e-15)
    assert math.isclose(homogeneity_of_gray(gray), graycoprops(reference, "homogeneity")[0, 0], rel_tol=1e-12)


@settings(max_examples=50, deadline=None)
@given(gray_images)
def test_homogeneity_bounds_and_symmetries(gray):
    h = homogeneity_of_gray(gray)
    assert 0 < h <= 1
    assert math.isclose(h, homogeneity_of_gray(gray[:, ::-1].copy()), rel_tol=1e-12)  # symmetric GLCM
    assert math.isclose(h, homogeneity_of_gray(gray[::-1].copy()), rel_tol=1e-12)  # rows are independent
    # 1 + (i - j)^2 >= 1 + |i - j| for integer levels, so the code's formula never exceeds the paper's
    assert h <= homogeneity_of_gray(gray, "absolute") + 1e-12


@given(st.integers(0, 255), st.integers(2, 16), st.integers(1, 16))
def test_flat_image_is_perfectly_homogeneous(value, w, h):
    assert homogeneity_of_gray(np.full((h, w), value, np.uint8)) == 1.0
