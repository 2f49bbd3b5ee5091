"""The bench's statistics (aedr.bench.stats) checked against the scalar reference implementations
(aedr.calibration.kde_threshold, aedr.bench.metrics), against scipy.stats.bootstrap on a single pair,
by the coverage of its intervals on simulated benches with known truths, and by constructed cases
for the paired comparisons, the ranks and the cluster bootstrap."""

from __future__ import annotations

import time
from types import SimpleNamespace

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import bootstrap as scipy_bootstrap
from scipy.stats import norm

from aedr.bench import stats
from aedr.bench.metrics import accuracy as scalar_accuracy
from aedr.bench.metrics import evaluate, roc_auc, tpr_at_fpr
from aedr.bench.tables import summarize
from aedr.calibration import kde_threshold

COLUMNS = ["method", "options_hash", "target", "target_family", "source", "source_kind", "split", "image_hash", "score", "seconds", "status"]


def make_scores(
    *, n_models=3, n_methods=2, n_cal=8, n_eval=8, n_real=8, seed=0, families=("kl", "vq"), decimals=None, shift=1.5, broken=0
) -> pd.DataFrame:
    """A bench's per-image scores: under target T, T's images ~ N(0, 1), every other source's
    ~ N(shift + 0.3 k, 1) for method k. ``decimals``: rounded (ties). ``broken``: that many rows per
    (method, target) get status "error" and a NaN score."""
    rng = np.random.default_rng(seed)
    models = [f"m{i}" for i in range(n_models)]
    rows = []
    for k in range(n_methods):
        for ti, t in enumerate(models):
            fam = families[ti % len(families)]
            sets = [(t, "model", "cal", n_cal)] + [(s, "model", "eval", n_eval) for s in models]
            if n_real:
                sets.append(("real", "real", "eval", n_real))
            first = len(rows)
            for s, kind, split, size in sets:
                mu = 0.0 if s == t else shift + 0.3 * k
                for i in range(size):
                    v = rng.normal(mu, 1.0)
                    if decimals is not None:
                        v = round(v, decimals)
                    rows.append([f"meth{k}", f"h{k}", t, fam, s, kind, split, f"{s}-{split}-{i}", v, 0.01, "ok"])
            for j in rng.choice(np.arange(first, len(rows)), size=broken, replace=False):
                rows[j][-1], rows[j][-3] = "error", np.nan
    return pd.DataFrame(rows, columns=COLUMNS)


def reference_evaluation(scores: pd.DataFrame, alpha: float):
    """aedr.bench.metrics.evaluate and aedr.bench.tables.summarize on the same scores."""
    methods = [SimpleNamespace(name=m, options_hash=h, label=m) for m, h in dict.fromkeys(zip(scores["method"], scores["options_hash"]))]
    models = [SimpleNamespace(name=t, family=f) for t, f in dict.fromkeys(zip(scores["target"], scores["target_family"]))]
    sources = list(dict.fromkeys(scores.loc[scores["split"] == "eval", "source"]))
    kinds = dict(zip(scores["source"], scores["source_kind"]))
    ev = evaluate(scores, methods=methods, models=models, sources=sources, source_kinds=kinds, alpha=alpha)
    pairs = ev.pairs_frame()
    return pairs, summarize(pairs, ev.timings_frame())


def same(a, b) -> bool:
    """Equal floats, NaN equal to NaN."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return bool(np.array_equal(a, b, equal_nan=True))


# -- kde_thresholds ------------------------------------------------------------------------------------
def random_rows(rng, count):
    rows = []
    for i in range(count):
        n = int(rng.integers(2, 90))
        x = rng.standard_t(3, n) * rng.uniform(0.01, 100) + rng.uniform(-50, 50)
        if i % 3 == 0:
            x = np.round(x, 0)  # ties
        if i % 7 == 0:
            x = rng.exponential(1.0, n)  # skewed
        if np.ptp(x) > 0:
            rows.append(x)
    return rows


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.05, 0.2, 0.5, 0.9])
def test_kde_thresholds_match_kde_threshold_on_many_rows(alpha):
    rng = np.random.default_rng(int(alpha * 1000))
    rows = random_rows(rng, 120)
    width = max(r.size for r in rows)
    padded = np.full((len(rows), width), np.nan)  # ragged rows, NaN-padded
    for i, r in enumerate(rows):
        padded[i, : r.size] = r
    got = stats.kde_thresholds(padded, alpha)
    worst = 0.0
    for r, g in zip(rows, got):
        scale = np.ptp(r) + 2 * np.std(r, ddof=1)
        err = abs(g - kde_threshold(r, alpha)) / scale
        assert err <= 1e-4
        worst = max(worst, err)
    assert worst < 1e-6  # in practice the agreement is much tighter than required


def test_kde_thresholds_degenerate_rows():
    rows = np.array([
        [1.0, 1.0, 1.0, 1.0],  # all equal: kde_threshold raises
        [2.0, np.nan, np.nan, np.nan],  # one score
        [np.nan] * 4,
        [0.0, 1.0, np.nan, np.inf],  # two finite scores: fitted on them
        [0.0, 1.0, 3.0, 7.0],
    ])
    got = stats.kde_thresholds(rows, 0.05)
    assert np.isnan(got[:3]).all()
    assert got[3] == pytest.approx(kde_threshold([0.0, 1.0], 0.05), abs=1e-6)
    assert got[4] == pytest.approx(kde_threshold(rows[4], 0.05), abs=1e-5)
    assert np.isnan(stats.kde_thresholds(np.empty((3, 0)), 0.05)).all()
    # zero counts for every score but one: one score left, no threshold
    assert np.isnan(stats.kde_thresholds(np.array([0.0, 1.0, 2.0]), 0.05, counts=[[0, 3, 0]]))[0]
    with pytest.raises(ValueError):
        stats.kde_thresholds(rows, 0.0)
    with pytest.raises(ValueError):
        stats.kde_thresholds(np.array([0.0, 1.0]), 0.05, counts=[[1, -1]])


def test_kde_thresholds_with_counts_equal_the_repeated_sample():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 2, 12)
    counts = rng.multinomial(12, np.full(12, 1 / 12), size=50)
    got = stats.kde_thresholds(values, 0.05, counts=counts)
    for c, g in zip(counts, got):
        sample = np.repeat(values, c)
        if np.ptp(sample) == 0:
            assert np.isnan(g)
        else:
            ref = kde_threshold(sample, 0.05)
            assert g == pytest.approx(ref, abs=1e-5 * (np.ptp(sample) + 1))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=30).filter(lambda v: np.ptp(v) > 1e-3),
    st.floats(0.01, 50), st.floats(-100, 100), st.sampled_from([0.01, 0.05, 0.3]),
)
def test_kde_thresholds_shift_and_scale_with_the_scores(values, scale, offset, alpha):
    x = np.asarray(values)
    base = stats.kde_thresholds(x[None, :], alpha)[0]
    moved = stats.kde_thresholds((x * scale + offset)[None, :], alpha)[0]
    span = (np.ptp(x) + 2 * np.std(x, ddof=1)) * scale
    assert moved == pytest.approx(base * scale + offset, abs=1e-6 * span + 1e-9 * abs(offset))
    # a larger alpha never gives a higher threshold
    assert stats.kde_thresholds(x[None, :], min(0.99, alpha * 2))[0] <= base + 1e-9 * span


def test_calibration_too_small():
    assert stats.calibration_too_small(8, 0.05)
    assert stats.calibration_too_small(99, 0.05)
    assert not stats.calibration_too_small(100, 0.05)
    assert not stats.calibration_too_small(32, 0.2)
    assert "\n" not in stats.CALIBRATION_TOO_SMALL and "alpha" in stats.CALIBRATION_TOO_SMALL
    with pytest.raises(ValueError):
        stats.calibration_too_small(8, 1.5)


# -- vectorised metrics ----------------------------------------------------------------------------------
def ragged(rng, rows, low, high, mu):
    """Integer-valued rows (many ties) of random lengths, NaN-padded, and the rows themselves."""
    sizes = rng.integers(low, high, rows)
    out = np.full((rows, max(sizes.max(), 1)), np.nan)
    kept = []
    for i, n in enumerate(sizes):
        v = np.round(rng.normal(mu, 1.5, n))
        out[i, :n] = v
        kept.append(v)
    return out, kept


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_metrics_match_scalar_row_by_row(seed):
    rng = np.random.default_rng(seed)
    b, bs = ragged(rng, 80, 0, 25, 0.0)
    o, os_ = ragged(rng, 80, 0, 25, 1.0)
    tau = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan], 80)
    acc = stats.accuracy(b, o, tau)
    area = stats.auc(b, o)
    tprs = {f: stats.tpr_at_fpr(b, o, f) for f in (0.0, 0.01, 0.05, 0.2, 0.5)}
    for i in range(80):
        assert same(acc[i], scalar_accuracy(bs[i], os_[i], tau[i]))
        assert same(area[i], roc_auc(bs[i], os_[i]))
        for f, v in tprs.items():
            assert same(v[i], tpr_at_fpr(bs[i], os_[i], f))


def test_self_pair_has_accuracy_only():
    b = np.array([[0.0, 1.0, 2.0, 3.0]])
    none = np.empty((1, 0))
    assert stats.accuracy(b, none, 2.5)[0] == pytest.approx(3 / 4)
    assert np.isnan(stats.auc(b, none)[0])
    assert np.isnan(stats.tpr_at_fpr(b, none, 0.05)[0])
    assert np.isnan(stats.accuracy(none, none, 1.0)[0])


counted = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(-3, 3), min_size=n, max_size=n),
        st.lists(st.lists(st.integers(0, 3), min_size=n, max_size=n), min_size=1, max_size=4),
    )
)


@settings(max_examples=80, deadline=None)
@given(counted, counted, st.sampled_from([-1.5, 0.0, 0.5, 2.0]), st.sampled_from([0.0, 0.05, 0.25]))
def test_counts_count_as_repeated_scores(belonging, other, tau, max_fpr):
    """Shared scores with per-row counts (the bootstrap's path) equal the scalar metrics of the
    resample that the counts describe."""
    (bv, bcs), (ov, ocs) = belonging, other
    rows = min(len(bcs), len(ocs))
    bc, oc = np.array(bcs[:rows]), np.array(ocs[:rows])
    bv, ov = np.array(bv, dtype=float), np.array(ov, dtype=float)
    acc = stats.accuracy(bv, ov, tau, belonging_counts=bc, other_counts=oc)
    area = stats.auc(bv, ov, belonging_counts=bc, other_counts=oc)
    tpr = stats.tpr_at_fpr(bv, ov, max_fpr, belonging_counts=bc, other_counts=oc)
    # the per-row path on the same rows
    tiled_b, tiled_o = np.tile(bv, (rows, 1)), np.tile(ov, (rows, 1))
    assert same(area, stats.auc(tiled_b, tiled_o, belonging_counts=bc, other_counts=oc))
    assert same(tpr, stats.tpr_at_fpr(tiled_b, tiled_o, max_fpr, belonging_counts=bc, other_counts=oc))
    for r in range(rows):
        b, o = np.repeat(bv, bc[r]), np.repeat(ov, oc[r])
        assert same(acc[r], scalar_accuracy(b, o, tau))
        assert same(area[r], roc_auc(b, o))
        assert same(tpr[r], tpr_at_fpr(b, o, max_fpr))


# -- the bench bootstrap: estimates and replicates ------------------------------------------------------
def test_estimates_equal_the_bench_metrics_and_summaries():
    scores = make_scores(n_models=4, n_methods=3, decimals=1, broken=2, families=("kl", "vq", "kl", "dc"))
    result = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=50)
    pairs, summaries = reference_evaluation(scores, 0.05)
    mine = {(r.method, r.options_hash, r.target, r.source, r.metric): (r.estimate, r.pair_kind) for r in result.pairs.itertuples()}
    assert len(mine) == len(pairs) * len(stats.METRICS)
    for row in pairs.itertuples():
        for metric in stats.METRICS:
            estimate, kind = mine[(row.method, row.options_hash, row.target, row.source, metric)]
            assert same(estimate, getattr(row, metric)), (row.method, row.target, row.source, metric)
            assert kind == row.pair_kind
    for s in summaries:
        for metric in stats.METRICS:
            assert result.estimate(s.method, s.options_hash, "pair", metric) == pytest.approx(s.pair[metric], abs=1e-12)
            assert result.estimate(s.method, s.options_hash, "real", metric) == pytest.approx(s.real[metric], abs=1e-12)
        for fam, v in s.family_pair_accuracy.items():
            assert result.estimate(s.method, s.options_hash, f"family:{fam}", "accuracy") == pytest.approx(v, abs=1e-12)
        for fam, v in s.family_real_accuracy.items():
            assert result.estimate(s.method, s.options_hash, f"real-family:{fam}", "accuracy") == pytest.approx(v, abs=1e-12)
    # self pairs: accuracy only
    own = result.pairs[result.pairs["pair_kind"] == "self"]
    assert own.loc[own["metric"] == "accuracy", "estimate"].notna().all()
    assert own.loc[own["metric"] != "accuracy", ["estimate", "low", "high"]].isna().all().all()
    ok = result.pairs.dropna(subset=["low"])
    assert (ok["low"] <= ok["high"]).all()


def test_replicates_are_the_metrics_of_the_resampled_images():
    scores = make_scores(n_models=3, n_methods=2, n_cal=10, n_eval=9, n_real=7, seed=5)
    result = stats.bootstrap_bench(scores, alpha=0.1, n_resamples=20, seed=11)
    by = {k: g for k, g in scores.groupby(["method", "options_hash", "target", "source", "split"])}

    def resample(m, h, t, s, split, r):
        g = by[(m, h, t, s, split)]
        d = result.draws[(s, split)]
        counts = d.counts[r][np.searchsorted(d.images, g["image_hash"].to_numpy())]
        return np.repeat(g["score"].to_numpy(), counts)

    checked = 0
    for r in (0, 7, 19):
        for m, h in result.methods():
            for t in ("m0", "m2"):
                cal = resample(m, h, t, t, "cal", r)
                tau = kde_threshold(cal, 0.1) if np.ptp(cal) > 0 else np.nan
                b = resample(m, h, t, t, "eval", r)
                for s in ("m1", "real", t):
                    o = np.array([]) if s == t else resample(m, h, t, s, "eval", r)
                    rep = {k: result.pair_replicate(m, h, t, s, k)[r] for k in stats.METRICS}
                    assert same(rep["accuracy"], scalar_accuracy(b, o, tau))
                    if s != t:
                        assert same(rep["auc"], roc_auc(b, o))
                        assert same(rep["tpr_at_1pct_fpr"], tpr_at_fpr(b, o, 0.01))
                        assert same(rep["tpr_at_5pct_fpr"], tpr_at_fpr(b, o, 0.05))
                    checked += 1
    assert checked == 3 * 2 * 2 * 3
    # a summary replicate is the mean of its pairs' replicates
    p = result.pairs
    sel = ((p["method"] == "meth1") & (p["pair_kind"] == "model") & (p["metric"] == "auc")).to_numpy()
    assert np.allclose(result.replicates("meth1", "h1", "pair", "auc"), result.pair_replicates[sel].mean(axis=0))


def test_one_pair_agrees_with_scipy_bootstrap():
    """One method, one target, one other model: the pair's AUC interval is the independent
    bootstrap of two samples, which scipy.stats.bootstrap computes with its own draws."""
    rng = np.random.default_rng(2)
    b, o = rng.normal(0, 1, 30), rng.normal(1, 1, 30)
    rows = [("m", "h", "T", "f", "T", "model", "cal", f"c{i}", v) for i, v in enumerate(rng.normal(0, 1, 30))]
    rows += [("m", "h", "T", "f", "T", "model", "eval", f"b{i}", v) for i, v in enumerate(b)]
    rows += [("m", "h", "T", "f", "S", "model", "eval", f"o{i}", v) for i, v in enumerate(o)]
    scores = pd.DataFrame(rows, columns=COLUMNS[:9])
    result = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=4000, seed=1)
    pair = result.pairs.set_index(["source", "metric"]).loc[("S", "auc")]
    ref = scipy_bootstrap(
        (b, o), lambda x, y, axis=-1: stats.auc(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])).reshape(x.shape[:-1]),
        n_resamples=4000, method="percentile", vectorized=True, rng=np.random.default_rng(0),
    )
    assert pair["estimate"] == pytest.approx(roc_auc(b, o))
    assert pair["low"] == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert pair["high"] == pytest.approx(ref.confidence_interval.high, abs=0.02)


def test_seeded_and_independent_of_row_order():
    scores = make_scores(n_models=3, n_methods=2)
    a = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=100, seed=4)
    b = stats.bootstrap_bench(scores.sample(frac=1.0, random_state=1), alpha=0.05, n_resamples=100, seed=4)
    c = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=100, seed=5)
    pd.testing.assert_frame_equal(a.pairs, stats.bootstrap_bench(scores, alpha=0.05, n_resamples=100, seed=4).pairs)
    # shuffled rows: the same figures (listed in the order the rows first name them)
    key = ["method", "options_hash", "target", "source", "metric"]
    order_a, order_b = a.pairs.sort_values(key).index, b.pairs.sort_values(key).index
    pd.testing.assert_frame_equal(a.pairs.loc[order_a].reset_index(drop=True), b.pairs.loc[order_b].reset_index(drop=True))
    assert same(a.pair_replicates[order_a], b.pair_replicates[order_b])
    key = ["method", "options_hash", "scope", "metric"]
    order_a, order_b = a.summaries.sort_values(key).index, b.summaries.sort_values(key).index
    pd.testing.assert_frame_equal(a.summaries.loc[order_a].reset_index(drop=True), b.summaries.loc[order_b].reset_index(drop=True))
    assert same(a.summary_replicates[order_a], b.summary_replicates[order_b])
    assert not same(a.summary_replicates, c.summary_replicates)
    assert same(a.pairs["estimate"], c.pairs["estimate"])
    assert (a.n_resamples, a.seed, a.confidence) == (100, 4, 0.95)
    assert a.pair_replicates.shape == (len(a.pairs), 100) and a.summary_replicates.shape == (len(a.summaries), 100)


def test_images_are_shared_by_every_method_and_target():
    """Two methods with identical scores get identical replicates under every target, and the same
    image's count is the same wherever it is scored."""
    scores = make_scores(n_models=3, n_methods=1)
    twin = scores.assign(method="twin", options_hash="t")
    result = stats.bootstrap_bench(pd.concat([scores, twin]), alpha=0.05, n_resamples=200)
    p = result.pairs
    assert same(result.pair_replicates[(p["method"] == "meth0").to_numpy()], result.pair_replicates[(p["method"] == "twin").to_numpy()])
    assert set(result.draws) == {("m0", "cal"), ("m1", "cal"), ("m2", "cal"), ("m0", "eval"), ("m1", "eval"), ("m2", "eval"), ("real", "eval")}
    for d in result.draws.values():
        assert (d.counts.sum(axis=1) == d.images.size).all()  # stratified: each set keeps its size


def test_confidence_and_alpha_arguments():
    scores = make_scores(n_models=3, n_methods=1)
    wide = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=300, confidence=0.99)
    narrow = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=300, confidence=0.5)
    ok = wide.summaries["low"].notna().to_numpy()
    assert (wide.summaries["low"][ok] <= narrow.summaries["low"][ok] + 1e-12).all()
    assert (wide.summaries["high"][ok] >= narrow.summaries["high"][ok] - 1e-12).all()
    same_alpha = {("meth0", "h0", t): 0.05 for t in ("m0", "m1", "m2")}
    mapped = stats.bootstrap_bench(scores, alpha=same_alpha, n_resamples=300, confidence=0.99)
    pd.testing.assert_frame_equal(mapped.pairs, wide.pairs)
    other = stats.bootstrap_bench(scores, alpha={**same_alpha, ("meth0", "h0", "m1"): 0.3}, n_resamples=300, confidence=0.99)
    a, b = other.pairs["estimate"].to_numpy(), wide.pairs["estimate"].to_numpy()
    changed = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    assert changed.any() and (other.pairs.loc[changed, "target"] == "m1").all()
    assert (other.pairs.loc[changed, "metric"] == "accuracy").all()
    with pytest.raises(ValueError, match="auto"):
        stats.bootstrap_bench(scores, alpha="auto")
    with pytest.raises(KeyError):
        stats.bootstrap_bench(scores, alpha={("meth0", "h0", "m0"): 0.05})
    with pytest.raises(ValueError):
        stats.bootstrap_bench(scores, alpha=0.05, n_resamples=0)
    with pytest.raises(ValueError, match="columns"):
        stats.bootstrap_bench(scores.drop(columns="image_hash"), alpha=0.05)


# -- clusters --------------------------------------------------------------------------------------------
def cluster_bench() -> tuple[pd.DataFrame, dict[str, str]]:
    """Target T: belonging scores far below any threshold; 9 real images in clusters of 1, 3 and 5:
    the cluster of 3 scores far below (false positives), the others far above (true negatives)."""
    rng = np.random.default_rng(0)
    rows = [("m", "h", "T", "f", "T", "model", "cal", f"c{i}", v) for i, v in enumerate(rng.normal(0, 1, 8))]
    rows += [("m", "h", "T", "f", "T", "model", "eval", f"b{i}", -10.0 + 0.1 * i) for i in range(8)]
    sizes = {"A": 1, "B": 3, "C": 5}
    clusters = {}
    for name, size in sizes.items():
        for j in range(size):
            h = f"r{name}{j}"
            clusters[h] = f"photo-{name}"
            rows.append(("m", "h", "T", "f", "real", "real", "eval", h, (-10.0 if name == "B" else 10.0) + 0.01 * j))
    return pd.DataFrame(rows, columns=COLUMNS[:9]), clusters


def test_cluster_bootstrap_draws_whole_clusters():
    scores, clusters = cluster_bench()
    result = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=500, seed=3, clusters=clusters)
    d = result.draws[("real", "eval")]
    assert d.n_clusters == 3
    per_cluster = {}
    for c in range(3):
        members = d.counts[:, d.clusters == c]
        assert (members == members[:, :1]).all()  # all of a cluster's images, or none, each time
        per_cluster[int((d.clusters == c).sum())] = members[:, 0]
    k1, k3, k5 = per_cluster[1], per_cluster[3], per_cluster[5]
    assert (k1 + k3 + k5 == 3).all()  # three clusters drawn per replicate
    assert len(set(d.counts.sum(axis=1))) > 3  # so the replicate's number of images varies
    # the real pair's accuracy counts whole clusters: 8 true positives, 1 k1 + 5 k5 true negatives
    expected = (8 + k1 + 5 * k5) / (8 + k1 + 3 * k3 + 5 * k5)
    assert same(result.pair_replicate("m", "h", "T", "real", "accuracy"), expected)
    assert result.resampling == "clusters for real eval (9 images in 3 clusters; too few clusters to estimate the variation between them); single images for every other set"
    # the other sets: single images
    assert result.draws[("T", "eval")].n_clusters == 8


def test_one_cluster_per_image_is_the_image_bootstrap():
    scores = make_scores(n_models=3, n_methods=2)
    singletons = {h: f"own-{h}" for h in scores["image_hash"]}
    plain = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=200, seed=8)
    grouped = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=200, seed=8, clusters=singletons)
    assert same(plain.pair_replicates, grouped.pair_replicates)
    assert same(plain.summary_replicates, grouped.summary_replicates)
    assert plain.resampling == grouped.resampling == "single images within every image set (no clusters)"


def test_clusters_widen_the_interval_of_correlated_images():
    """Real crops cut from few photographs score alike; resampling photographs, not crops, shows
    the larger uncertainty."""
    rng = np.random.default_rng(1)
    rows = [("m", "h", "T", "f", "T", "model", "cal", f"c{i}", v) for i, v in enumerate(rng.normal(0, 1, 32))]
    rows += [("m", "h", "T", "f", "T", "model", "eval", f"b{i}", v) for i, v in enumerate(rng.normal(0, 1, 32))]
    clusters = {}
    for p in range(6):
        level = rng.normal(1.5, 1.5)
        for j in range(8):
            clusters[f"p{p}-{j}"] = p
            rows.append(("m", "h", "T", "f", "real", "real", "eval", f"p{p}-{j}", level + rng.normal(0, 0.1)))
    scores = pd.DataFrame(rows, columns=COLUMNS[:9])
    plain = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=500).pairs.set_index(["source", "metric"]).loc[("real", "auc")]
    grouped = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=500, clusters=clusters).pairs.set_index(["source", "metric"]).loc[("real", "auc")]
    assert grouped["estimate"] == plain["estimate"]
    assert grouped["high"] - grouped["low"] > 1.5 * (plain["high"] - plain["low"])


# -- paired comparisons and ranks ------------------------------------------------------------------------
def test_identical_copies_are_never_different_and_a_better_copy_is_detected():
    base = make_scores(n_models=6, n_methods=1, families=("kl", "vq", "dc"))
    copy = base.assign(method="copy", options_hash="c")
    better = base.assign(method="better", options_hash="b")
    other = better["source"] != better["target"]
    better.loc[other, "score"] += 2.0  # other images score higher: easier to tell apart
    result = stats.bootstrap_bench(pd.concat([base, copy, better]), alpha=0.05, n_resamples=1000)
    for metric in ("accuracy", "auc"):
        for scope in ("pair", "real"):
            vs_base = stats.compare_to_leader(result, ("meth0", "h0"), metric, scope).set_index("method")
            row = vs_base.loc["copy"]
            assert (row["difference"], row["low"], row["high"]) == (0.0, 0.0, 0.0)
            assert row["p_value"] == 1.0 and row["p_holm"] == 1.0 and bool(row["tied"])
            vs_best = stats.compare_to_leader(result, ("better", "b"), metric, scope).set_index("method")
            assert list(vs_best.index) == ["meth0", "copy"]
            for m in ("meth0", "copy"):
                assert vs_best.loc[m, "difference"] < 0 and vs_best.loc[m, "high"] < 0
                assert vs_best.loc[m, "p_value"] < 0.05 and vs_best.loc[m, "p_holm"] < 0.05
                assert not vs_best.loc[m, "tied"]
                assert vs_best.loc[m, "p_value"] >= 1 / 1001
    ranks = stats.ranks_with_ties(result, "accuracy", "pair")
    assert list(ranks["method"]) == ["better", "meth0", "copy"]
    assert list(ranks["rank"]) == ["1", "2", "2="]
    assert list(ranks["rank_number"]) == [1, 2, 2]
    assert ranks["p_value"].iloc[2] == 1.0 and ranks["head_method"].iloc[2] == "meth0"
    with pytest.raises(ValueError):
        stats.compare_to_leader(result, ("better", "b"), "tpr_at_1pct_fpr")
    with pytest.raises(KeyError):
        stats.compare_to_leader(result, ("nobody", "x"))


def test_paired_p_value_and_holm():
    assert stats.paired_p_value(np.zeros(99)) == 1.0
    assert stats.paired_p_value(np.ones(99)) == 1 / 100  # floored at 1 / (B + 1)
    d = np.r_[-np.ones(10), np.ones(90)]
    assert stats.paired_p_value(d) == pytest.approx(0.2)
    assert stats.paired_p_value(np.r_[d, np.nan]) == pytest.approx(0.2)
    assert np.isnan(stats.paired_p_value(np.full(5, np.nan)))
    # Holm by hand: sorted 0.01, 0.02, 0.04, 0.3 -> 0.04, 0.06, 0.08 (monotone), 0.3
    assert np.allclose(stats.holm([0.04, 0.01, 0.3, 0.02]), [0.08, 0.04, 0.3, 0.06])
    assert np.allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])
    out = stats.holm([0.01, np.nan, 0.02])
    assert np.isnan(out[1]) and np.allclose(out[[0, 2]], [0.02, 0.02])


def constructed_result(estimates: dict[str, float], replicates: dict[str, np.ndarray]) -> stats.BenchBootstrap:
    rows = [(m, "h", "pair", "accuracy", est, np.nan, np.nan, 1) for m, est in estimates.items()]
    summaries = pd.DataFrame(rows, columns=["method", "options_hash", "scope", "metric", "estimate", "low", "high", "n_pairs"])
    reps = np.vstack([replicates[m] for m in estimates])
    return stats.BenchBootstrap(
        pairs=pd.DataFrame(), summaries=summaries, pair_replicates=np.empty((0, reps.shape[1])), summary_replicates=reps,
        n_resamples=reps.shape[1], seed=0, confidence=0.95, resampling="constructed",
    )


def test_ranks_compare_with_the_head_of_the_tie_group():
    """A ~ B and B ~ C but C is significantly below A: compared with the method just above, all
    three would chain into one rank; compared with the group's head, C starts rank 3."""
    rng = np.random.default_rng(0)
    n = 2000
    e, u, v, w = (rng.normal(0, s, n) for s in (0.01, 0.02, 0.02, 0.01))
    est = {"A": 0.90, "B": 0.89, "C": 0.85, "D": 0.84, "E": 0.60, "F": float("nan")}
    reps = {"A": 0.90 + e, "B": 0.89 + e + u, "C": 0.85 + e + v, "D": 0.84 + e + v + w, "E": 0.60 + e, "F": np.full(n, np.nan)}
    p = {k: stats.paired_p_value(reps[a] - reps[b]) for k, (a, b) in {"BA": ("B", "A"), "CA": ("C", "A"), "CB": ("C", "B"), "DC": ("D", "C")}.items()}
    assert p["BA"] >= 0.05 and p["CA"] < 0.05 and p["CB"] >= 0.05 and p["DC"] >= 0.05  # the construction
    ranks = stats.ranks_with_ties(constructed_result(est, reps))
    assert list(ranks["method"]) == ["A", "B", "C", "D", "E", "F"]
    assert list(ranks["rank"]) == ["1", "1=", "3", "3=", "5", "-"]
    assert list(ranks["head_method"][:5]) == ["A", "A", "C", "C", "E"]
    assert ranks["rank_number"].isna().tolist() == [False] * 5 + [True]
    leader = stats.compare_to_leader(constructed_result(est, reps), ("A", "h")).set_index("method")
    assert bool(leader.loc["B", "tied"]) and not leader.loc["C", "tied"] and not leader.loc["E", "tied"]
    assert np.isnan(leader.loc["F", "p_value"]) and not leader.loc["F", "tied"]


# -- coverage --------------------------------------------------------------------------------------------
def two_model_bench(rng, d, n) -> pd.DataFrame:
    """Targets T and S; under each, the target's images ~ N(0, 1) and the other's ~ N(d, 1)."""
    rows = []
    for t, s in (("T", "S"), ("S", "T")):
        for src, split, mu in ((t, "cal", 0.0), (t, "eval", 0.0), (s, "eval", d)):
            for i, v in enumerate(rng.normal(mu, 1.0, n)):
                rows.append(("m", "h", t, "f", src, "model", split, f"{src}-{split}-{i}", v))
    return pd.DataFrame(rows, columns=COLUMNS[:9])


@pytest.mark.slow
def test_intervals_cover_the_true_auc_and_accuracy():
    """200 simulated benches, 32 calibration and 32 evaluation images per set, 400 replicates each
    (fewer than the default 1,000 to keep the simulation short). True AUC = Phi(d / sqrt 2). True
    accuracy at the population threshold tau* = Phi^-1(1 - alpha) (the KDE threshold's limit for a
    large calibration set): (Phi(tau*) + 1 - Phi(tau* - d)) / 2 with equal set sizes."""
    d, n, alpha, benches = 1.5, 32, 0.05, 200
    true_auc = norm.cdf(d / np.sqrt(2))
    tau = norm.ppf(1 - alpha)
    true_acc = (norm.cdf(tau) + 1 - norm.cdf(tau - d)) / 2
    covered = {"auc": 0, "accuracy": 0}
    start = time.perf_counter()
    for i in range(benches):
        result = stats.bootstrap_bench(two_model_bench(np.random.default_rng(1000 + i), d, n), alpha=alpha, n_resamples=400, seed=i)
        p = result.pairs.set_index(["target", "source", "metric"])
        for metric, truth in (("auc", true_auc), ("accuracy", true_acc)):
            row = p.loc[("T", "S", metric)]
            covered[metric] += bool(row["low"] <= truth <= row["high"])
    share = {k: v / benches for k, v in covered.items()}
    print(f"\ncoverage of 95% intervals over {benches} benches: {share} ({time.perf_counter() - start:.1f} s)")
    assert 0.90 <= share["auc"] <= 0.99
    assert 0.90 <= share["accuracy"] <= 0.99


# -- run time --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_set", [8, 64])
def test_run_time(per_set):
    """The default bench's shape (6 targets, 6 methods, 8 calibration and 8 evaluation images per
    model, 8 real evaluation images) and one with 64 images per set, 1,000 replicates."""
    scores = make_scores(n_models=6, n_methods=6, n_cal=per_set, n_eval=per_set, n_real=per_set)
    start = time.perf_counter()
    result = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=1000)
    seconds = time.perf_counter() - start
    print(f"\nbootstrap_bench: 6 targets x 6 methods, {per_set} images per set, {len(scores)} score rows, "
          f"1000 replicates: {seconds:.2f} s")
    assert len(result.pairs) == 6 * 6 * 7 * 4
    if per_set == 8:
        assert seconds < 20


def test_real_folder_sub_folders_are_clusters_taken_in_turn(tmp_path):
    """A real folder with sub-folders (say, crops of one photograph each): searched recursively,
    each sub-folder one cluster, and a run taking fewer images than there are draws on every one."""
    from PIL import Image

    from aedr.bench.sources import real_refs

    rng = np.random.default_rng(0)
    for photo in ("a", "b"):
        (tmp_path / photo).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / photo / f"{i}.png")
    refs, origin = real_refs(str(tmp_path), "eval", 4, {}, [])
    assert origin == f"folder {tmp_path}"
    assert [r.id for r in refs] == ["real/a/0.png", "real/b/0.png", "real/a/1.png", "real/b/1.png"]
    assert [r.cluster for r in refs] == ["a", "b", "a", "b"]
    flat = tmp_path / "a"
    refs, _ = real_refs(str(flat), "eval", 2, {}, [])
    assert [r.id for r in refs] == ["real/0.png", "real/1.png"] and {r.cluster for r in refs} == {None}


def test_a_run_with_one_model_ranks_by_real_accuracy_with_ties():
    """No model pairs: ranks come from the accuracy against real images, and two methods whose
    real accuracies are not distinguishable share a rank."""
    from aedr.bench.tables import apply_uncertainty

    scores = make_scores(n_models=1, n_methods=2, n_cal=20, n_eval=6, n_real=6, seed=3, shift=1.0)
    scores.loc[scores["method"] == "meth1", "score"] = scores.loc[scores["method"] == "meth0", "score"].to_numpy() + 1e-9
    result = stats.bootstrap_bench(scores, alpha=0.05, n_resamples=200)
    _, summaries = reference_evaluation(scores, 0.05)
    assert all(math.isnan(s.pair.get("accuracy", math.nan)) for s in summaries)
    apply_uncertainty(summaries, result)
    assert [s.rank for s in summaries] == ["1", "1="]  # the same scores: never ranked apart
    # the "too wide to rank" warning names the real-image accuracy it ranked by, with a finite width
    from types import SimpleNamespace

    from aedr.bench.runner import uncertainty_warnings

    config = SimpleNamespace(n_cal=20, n_eval=6)
    (line,) = uncertainty_warnings(config, SimpleNamespace(thresholds=[]), summaries)
    assert "leader's mean real-image accuracy ±" in line and "nan" not in line and "meth1" in line and "--n-real" in line
    # its leaderboard has no pair columns and compares with the leader against the real images
    from aedr.bench.tables import leaderboard_table

    table = leaderboard_table(summaries)
    assert table.title == "Leaderboard · methods ranked by accuracy against real images"
    assert not any(c.startswith("pairs") for c in table.columns) and "Δ real acc vs #1" in table.columns
    row = dict(zip(table.columns, table.rows[1]))
    assert row["rank"] == "1=" and row["p acc (Holm)"] >= 0.05 and math.isfinite(row["Δ real AUC vs #1"].value)
