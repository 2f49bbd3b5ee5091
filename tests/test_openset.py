"""Open-set attribution figures (aedr.bench.openset) checked by hand on a tiny run with known scores.

Three candidate models A, B, C share one calibration set (0, 1, ..., 9), so they share one threshold
(about 9.9 at alpha 0.05) and one tail-probability curve, which falls as the score rises: among
candidates, the lowest score is the most typical, and equal scores are an exact tie (broken by the
candidates' order, as ``aedr attribute`` breaks it). Model D is scored under every candidate but is
not one of them (a model left out of the candidates); R are real images. 30 is far above every
threshold (tail probability 0), 12 just above it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from aedr.bench.metrics import Threshold
from aedr.bench.openset import (
    BUILTIN_OPENSET_METRICS, Candidate, OpenSetSample, attribution_matrix, build_sample, false_accusations, method_record, oscr_curve,
    verdicts,
)
from aedr.bench.stats import SetDraws
from aedr.calibration import kde_threshold, typicality_order

CAL = np.arange(10.0)
ALPHA = 0.05
CANDIDATES = ("A", "B", "C")
SOURCES = ("A", "B", "C", "D", "R")
KINDS = ("model", "model", "model", "model", "real")
# image -> its scores under (A, B, C)
IMAGES = {
    "A": [(1, 30, 30), (5, 2, 30), (30, 30, 30), (3, 3, 30)],
    "B": [(30, 1, 30), (30, 30, 4), (30, 3, 30)],
    "C": [(30, 30, 2), (30, 30, 12)],
    "D": [(30, 30, 30), (30, 6, 30)],
    "R": [(30, 30, 30), (2, 30, 30)],
}


def eval_rows() -> pd.DataFrame:
    rows = []
    for source, images in IMAGES.items():
        for i, scores in enumerate(images):
            for target, score in zip(CANDIDATES, scores):
                rows.append({"source": source, "clean_hash": f"{source}{i}", "target": target, "score": float(score)})
    return pd.DataFrame(rows)


def candidates() -> list[Candidate]:
    tau = kde_threshold(CAL, ALPHA)
    hashes = np.array([f"cal{i}" for i in range(CAL.size)], dtype=object)
    return [Candidate(t, Threshold("m", "h", "m", t, ALPHA, "fixed", tau, CAL.size), CAL, hashes) for t in CANDIDATES]


@pytest.fixture(scope="module")
def sample() -> OpenSetSample:
    return build_sample(eval_rows(), candidates(), SOURCES, KINDS)


def figure(sample: OpenSetSample, name: str) -> float:
    return float(next(m for m in BUILTIN_OPENSET_METRICS if m.name == name).compute(sample)[0])


def test_the_design_holds():
    tau = kde_threshold(CAL, ALPHA)
    assert 6 < tau < 12


def test_the_attribution_matrix(sample):
    matrix, several = attribution_matrix(sample)
    expected = [  # columns A, B, C, none
        [2 / 4, 1 / 4, 0, 1 / 4],  # (1,30,30) A; (5,2,30) B, more typical; (30,30,30) none; (3,3,30) the tie: A, first
        [0, 2 / 3, 1 / 3, 0],
        [0, 0, 1 / 2, 1 / 2],
        [0, 1 / 2, 0, 1 / 2],  # D, not a candidate: one image pinned on B
        [1 / 2, 0, 0, 1 / 2],
    ]
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(several, [2 / 4, 0, 0, 0, 0])
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


def test_closed_and_open_set_accuracy(sample):
    # closed set, thresholds ignored: A 3/4 (the ties (30,30,30) and (3,3,30) go to A), B 2/3, C 2/2
    assert figure(sample, "closed_set_accuracy") == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)
    # open set, every source weighs the same: A 2/4, B 2/3, C 1/2, D 1/2 (none is right), R 1/2
    assert figure(sample, "open_set_accuracy") == pytest.approx((2 / 4 + 2 / 3 + 1 / 2 + 1 / 2 + 1 / 2) / 5)


def test_false_accusation_leaving_each_model_out(sample):
    # A left out: (5,2,30) and (3,3,30) accepted by B; B left out: (30,30,4) by C; C left out: none
    np.testing.assert_allclose(false_accusations(sample)[0], [2 / 4, 1 / 3, 0])
    assert figure(sample, "false_accusation_rate") == pytest.approx((2 / 4 + 1 / 3) / 3)


def test_unknown_auroc_and_oscr(sample):
    # knownness falls with the lowest score over the fold's candidates; counted pair by pair (ties half):
    # fold A out: 33 / (5 x 8); B out: 32 / (6 x 7); C out: 31.5 / (7 x 6)
    assert figure(sample, "unknown_auroc") == pytest.approx((33 / 40 + 32 / 42 + 31.5 / 42) / 3)
    # OSCR: only the correctly classified known images count: 27 / 40, 32 / 42 (every known image right), 24 / 42
    assert figure(sample, "oscr") == pytest.approx((27 / 40 + 32 / 42 + 24 / 42) / 3)


def test_the_oscr_curve_ends_at_the_closed_set_rate_and_its_area_is_oscr(sample):
    curve = oscr_curve(sample)
    x, y = np.array(curve["false_acceptance"]), np.array(curve["correct_classification"])
    assert y[0] >= 0 and np.all(np.diff(y) >= -1e-12)
    # at false acceptance 1 every known image is accepted: the fold's closed-set rate, mean over folds
    assert y[-1] == pytest.approx((4 / 5 + 6 / 6 + 5 / 7) / 3)
    assert x[0] == 0 and x[-1] == 1


def test_a_shared_tie_goes_to_the_first_candidate_as_attribute_orders_it():
    tail = np.array([0.4, 0.7, 0.7, 0.1])
    accepted = np.array([True, False, True, True])
    assert list(typicality_order(tail)) == [1, 2, 0, 3]
    assert list(typicality_order(tail, accepted)[:3]) == [2, 0, 3]
    assert verdicts(accepted, tail) == 2
    assert verdicts(np.zeros(4, bool), tail) == -1


def test_replicate_counts_weigh_as_copies_of_images():
    """A replicate row with counts gives the figures of the sample with the images repeated."""
    rows = eval_rows()
    counts = {h: c for h, c in zip(sorted(rows["clean_hash"].unique()), [2, 0, 1, 3, 1, 0, 2, 1, 1, 0, 2, 1, 1])}
    hashes = {s: np.array(sorted(h for h in rows["clean_hash"].unique() if h.startswith(s)), dtype=object) for s in SOURCES}
    draws = {(s, "eval"): SetDraws(hashes[s], np.arange(hashes[s].size), np.array([[counts[h] for h in hashes[s]]])) for s in SOURCES}
    draws.update({(t, "cal"): SetDraws(np.array(sorted(f"cal{i}" for i in range(10)), dtype=object), np.arange(10), np.ones((1, 10))) for t in CANDIDATES})
    resampled = build_sample(rows, candidates(), SOURCES, KINDS, draws, rows=2)
    copies = rows.loc[rows.index.repeat(rows["clean_hash"].map(counts))].copy()
    copies["clean_hash"] = copies["clean_hash"] + "-" + copies.groupby(["clean_hash", "target"]).cumcount().astype(str)
    repeated = build_sample(copies, candidates(), SOURCES, KINDS)
    for m in BUILTIN_OPENSET_METRICS:
        assert m.compute(resampled)[1] == pytest.approx(m.compute(repeated)[0], abs=1e-12), m.name


def test_a_method_record_carries_every_figure_and_the_matrix(sample):
    record, reps = method_record(sample, BUILTIN_OPENSET_METRICS, dict(method="m", options_hash="h", label="m", perturbation="", policy="clean"), 0.95)
    assert record.candidates == list(CANDIDATES) and record.sources == list(SOURCES)
    assert record.n_images == [4, 3, 2, 2, 2]
    assert set(record.figures) == {m.name for m in BUILTIN_OPENSET_METRICS}
    assert record.false_accusation["A"][0] == pytest.approx(0.5) and math.isnan(record.false_accusation["A"][1])
    assert all(v.size == 0 for v in reps.values())


def test_the_worked_example_of_docs_bench_md():
    """docs/bench.md's worked example: the same run without model D (every model a candidate)."""
    rows = eval_rows()
    s = build_sample(rows[rows["source"] != "D"], candidates(), ("A", "B", "C", "R"), ("model", "model", "model", "real"))
    matrix, several = attribution_matrix(s)
    np.testing.assert_allclose(matrix, [[1 / 2, 1 / 4, 0, 1 / 4], [0, 2 / 3, 1 / 3, 0], [0, 0, 1 / 2, 1 / 2], [1 / 2, 0, 0, 1 / 2]])
    np.testing.assert_allclose(several, [1 / 2, 0, 0, 0])
    assert figure(s, "open_set_accuracy") == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 1 / 2) / 4)  # 54.2 %
    assert figure(s, "closed_set_accuracy") == pytest.approx((3 / 4 + 2 / 3 + 1) / 3)  # 80.6 %
    assert figure(s, "false_accusation_rate") == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)  # 27.8 %
    assert figure(s, "unknown_auroc") == pytest.approx((24 / 30 + 21 / 30 + 20.5 / 28) / 3)  # 0.744
    assert figure(s, "oscr") == pytest.approx((20 / 30 + 21 / 30 + 15.5 / 28) / 3)  # 0.640


def test_one_candidate_has_no_one_to_accuse_and_no_known_images_to_tell_apart():
    rows = eval_rows()
    s = build_sample(rows[rows["target"] == "A"], candidates()[:1], SOURCES, ("model", "real", "real", "real", "real"))
    assert math.isnan(figure(s, "false_accusation_rate")) and math.isnan(figure(s, "unknown_auroc")) and math.isnan(figure(s, "oscr"))
    # open set: A's images right when A accepts them (3 of 4: scores 1, 5, 3), every other source's when none
    assert figure(s, "open_set_accuracy") == pytest.approx((3 / 4 + 3 / 3 + 2 / 2 + 2 / 2 + 1 / 2) / 5)
