"""Bench building blocks checked against independent computations: metrics against scikit-learn,
configs against the shipped files, the score store against interruption and duplicates."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from aedr.bench.commands import join_multi_values
from aedr.bench.config import BenchConfig, ConfigError, load_config
from aedr.bench.metrics import Threshold, fit_threshold, pair_metrics, roc_auc, tpr_at_fpr
from aedr.bench.plan import select_names
from aedr.bench.store import ScoreRow, ScoreStore
from aedr.calibration import kde_threshold


def _sk_tpr_at(b, o, max_fpr):
    y = np.r_[np.ones(len(b)), np.zeros(len(o))]
    fpr, tpr, _ = sk_roc_curve(y, -np.r_[b, o], drop_intermediate=False)
    return tpr[fpr <= max_fpr].max()


@pytest.mark.parametrize("seed", range(6))
def test_auc_and_tpr_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    nb, no = rng.integers(3, 60, size=2)
    b = rng.normal(0, 1, nb)
    o = rng.normal(rng.uniform(-0.5, 2), 1, no)
    if seed % 2:  # ties across and within the classes
        b, o = np.round(b, 1), np.round(o, 1)
    y = np.r_[np.ones(nb), np.zeros(no)]
    assert roc_auc(b, o) == pytest.approx(roc_auc_score(y, -np.r_[b, o]), abs=1e-12)
    for f in (0.0, 0.01, 0.05, 0.2):
        assert tpr_at_fpr(b, o, f) == pytest.approx(_sk_tpr_at(b, o, f), abs=1e-12)


def test_pair_metrics_count_by_hand():
    b = np.array([0.1, 0.2, 0.35, 0.5, np.nan])  # NaN: not counted
    o = np.array([0.3, 0.6, 0.7, 0.4, 0.45, 0.2])
    th = Threshold("m", "h", "m", "T", 0.05, "fixed", 0.4, 4)
    pm = pair_metrics(b, o, th, method="m", options_hash="h", label="m", target="T", target_family="kl", source="S", pair_kind="model")
    # belonging iff score < 0.4: b -> 0.1, 0.2, 0.35 in (TP 3, FN 1); o -> 0.3, 0.2 in (FP 2, TN 4)
    assert (pm.tp, pm.fn, pm.fp, pm.tn) == (3, 1, 2, 4)
    assert pm.n_target == 4 and pm.n_source == 6
    assert pm.values["accuracy"] == pytest.approx(7 / 10)
    assert pm.values["auc"] == pytest.approx(roc_auc_score(np.r_[np.ones(4), np.zeros(6)], -np.r_[b[:4], o]))
    own = pair_metrics(b, None, th, method="m", options_hash="h", label="m", target="T", target_family="kl", source="T", pair_kind="self")
    assert own.values["accuracy"] == pytest.approx(3 / 4) and np.isnan(own.values["auc"])


def test_thresholds_fixed_and_auto():
    rng = np.random.default_rng(1)
    cal = rng.normal(1.0, 0.1, 40)
    fixed = fit_threshold(cal, 0.05, None, method="m", options_hash="h", label="m", target="T")
    assert fixed.threshold == kde_threshold(cal, 0.05) and fixed.alpha_selection == "fixed"
    far = rng.normal(3.0, 0.1, 40)
    auto = fit_threshold(cal, "auto", far, method="m", options_hash="h", label="m", target="T")
    assert auto.alpha_selection == "auto" and auto.n_estimation == 40 and auto.estimation_accuracy > 0.9
    assert auto.threshold == pytest.approx(kde_threshold(cal, auto.alpha))
    bad = fit_threshold(np.array([1.0]), 0.05, None, method="m", options_hash="h", label="m", target="T")
    assert np.isnan(bad.threshold) and "at least 2" in bad.error


def test_shipped_configs_load_and_overrides_win(tmp_path):
    default = load_config()
    assert default.name == "default" and default.models == ["zoo-*"] and default.methods == ["*"]
    paper = load_config("paper")
    assert paper.n_eval > default.n_eval
    over = load_config("default", n_eval=3, alpha="auto", models=["a", "b"], method_options={"ronan": {"iterations": 7}})
    assert (over.n_eval, over.alpha, over.models) == (3, "auto", ["a", "b"])
    assert over.options_for("ronan")["iterations"] == 7 and over.options_for("ronan")["device"] == "cpu"
    user = tmp_path / "mine.toml"
    user.write_text('extends = "default"\n[bench]\nn_cal = 5\nreal = "none"\n[methods.ronan]\nlr = 0.5\n')
    cfg = load_config(user, n_cal=None)
    assert cfg.name == "mine" and cfg.n_cal == 5 and cfg.real is None and cfg.options_for("ronan")["lr"] == 0.5
    assert cfg.n_eval == default.n_eval


@pytest.mark.parametrize(
    "text, message",
    [("[bench]\nn_cal = 1\n", "n_cal"), ("[bench]\nbogus = 1\n", "bogus"), ("[bench]\nalpha = 2.0\n", "alpha"), ("oops = 1\n", "oops")],
)
def test_bad_configs_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_select_names_globs_and_errors():
    known = ["zoo-a", "zoo-b", "sd15"]
    assert select_names(["zoo-*"], known, "model") == ["zoo-a", "zoo-b"]
    assert select_names(["SD15", "zoo-b", "zoo-*"], known, "model") == ["sd15", "zoo-b", "zoo-a"]
    with pytest.raises(ConfigError, match="registered models: zoo-a"):
        select_names(["nope-*"], known, "model")
    with pytest.raises(ConfigError, match="unknown model 'x'"):
        select_names(["x"], known, "model")
    with pytest.raises(ConfigError):
        BenchConfig(models=[])


def _row(i: int, score: float, method: str = "m") -> ScoreRow:
    return ScoreRow(method, "h", method, "T", "S", "model", "eval", f"img{i}", f"hash{i}", score, 0.1)


def test_store_parts_are_atomic_deduplicated_and_consolidated(tmp_path):
    store = ScoreStore(tmp_path)
    store.write_chunk([_row(0, 1.0), _row(1, 2.0)])
    store.write_chunk([_row(1, 3.0), _row(2, 4.0)])  # image 1 again: the later row wins
    # A temporary file left by a killed writer is never read as a part.
    (store.parts_dir / ".part-x.parquet.123.tmp").write_bytes(b"partial")
    frame = ScoreStore(tmp_path).load()
    assert sorted(zip(frame["image_id"], frame["score"])) == [("img0", 1.0), ("img1", 3.0), ("img2", 4.0)]
    all_rows = store.consolidate()
    assert len(all_rows) == 3 and not store.part_files() and store.path.is_file()
    store.write_chunk([_row(3, 5.0, method="other")])
    again = ScoreStore(tmp_path).load()
    assert len(again) == 4 and set(again["method"]) == {"m", "other"}
    assert pd.read_parquet(store.path)["score"].dtype == np.float64
    assert os.path.exists(store.parts_dir)


def test_list_options_take_space_separated_values():
    args = ["--models", "zoo-a", "zoo-b", "--methods", "aedr", "ronan", "--n-eval", "3", "-m", "x", "--real", "dir"]
    assert join_multi_values(args) == ["--models", "zoo-a,zoo-b", "--methods", "aedr,ronan", "--n-eval", "3", "-m", "x", "--real", "dir"]
    assert join_multi_values(["--models", "--n-eval", "2"]) == ["--models", "--n-eval", "2"]


def test_evaluate_auto_alpha_uses_other_sources_calibration_images():
    """alpha = auto: T's calibration scores against every other source's calibration scores under T;
    the evaluation images never enter the choice."""
    from types import SimpleNamespace

    from aedr.bench.metrics import evaluate
    from aedr.calibration import choose_alpha

    rng = np.random.default_rng(0)
    rows = []

    def add(target, source, split, values):
        for i, v in enumerate(values):
            rows.append(dict(method="m", options_hash="h", target=target, source=source, split=split, score=float(v), seconds=0.01, status="ok", image_hash=f"{source}{split}{i}"))

    for t in ("A", "B"):
        add(t, t, "cal", rng.normal(1, 0.1, 30))
        add(t, t, "eval", rng.normal(1, 0.1, 20))
        for s, mu in (("A", 1.3), ("B", 1.3), ("real", 1.6)):
            if s != t:
                add(t, s, "cal", rng.normal(mu, 0.1, 25))
                add(t, s, "eval", rng.normal(mu + 5, 0.1, 20))  # far away: would change nothing if used
    frame = pd.DataFrame(rows)
    spec = SimpleNamespace(name="m", options_hash="h", label="m")
    models = [SimpleNamespace(name="A", family="kl"), SimpleNamespace(name="B", family="vq")]
    ev = evaluate(frame, methods=[spec], models=models, sources=["A", "B", "real"], source_kinds={"A": "model", "B": "model", "real": "real"}, alpha="auto")
    for th in ev.thresholds:
        g = frame[frame["target"] == th.target]
        own = g[(g["source"] == th.target) & (g["split"] == "cal")]["score"]
        others = g[(g["source"] != th.target) & (g["split"] == "cal")]["score"]
        expected = choose_alpha(own, others)
        assert (th.alpha, th.threshold, th.n_estimation) == (expected.alpha, expected.threshold, 50)
        assert th.alpha_selection == "auto"
    pairs = ev.pairs_frame()
    assert set(pairs["pair_kind"]) == {"self", "model", "real"} and len(pairs) == 6
    assert set(ev.timings_frame()["images"]) == {30 + 20 + 25 + 20 + 25 + 20}


@pytest.mark.parametrize("config", ["default", "standard", "paper", "robustness"])
def test_shipped_configs_resolve_against_the_installed_plugins(config):
    """Every option a shipped config sets exists in the method it names (guards against renames)."""
    import aedr
    from aedr.bench.plan import select_methods, select_models

    plugins = aedr.load_plugins()
    cfg = load_config(config)
    for method, options in cfg.method_options.items():
        if method in plugins.methods:
            fields = {f.name for f in dataclasses.fields(plugins.methods.get(method).Options)}
            assert set(options) <= fields, (method, set(options) - fields)
    methods = select_methods(cfg, plugins)
    assert {m.name for m in methods} == set(plugins.methods.names())
    if any(n.startswith("zoo-") for n in plugins.models.names()):
        assert {m.name for m in select_models(cfg, plugins)} == {n for n in plugins.models.names() if n.startswith("zoo-")}
