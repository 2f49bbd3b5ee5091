"""The extension seams: a metric, an executor and a perturbation kind, each added by one plugin with
one registration, reach every place that shows or uses them; and every registered perturbation
kind behaves as the interface says."""

from __future__ import annotations

import io
import json
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aedr
from aedr.bench import Executor, LocalExecutor, Metric, load_config, run_bench
from aedr.kernel import ItemScorer
from aedr.bench.metrics import tpr_at_fpr
from aedr.perturbations import Chain, Perturbation, PerturbationError
from test_bench_support import BenchModels, make_models

BENCH = dict(methods=["aedr"], n_cal=4, n_eval=3, chunk_size=3, real="none")


# -- a metric: one function, one registration ------------------------------------------------------
def tpr_at_10pct(belonging, other, threshold):
    return tpr_at_fpr(belonging, other, 0.10)


def balanced_accuracy(belonging, other, threshold):
    if not np.isfinite(threshold) or not belonging.size or not other.size:
        return float("nan")
    return float((np.mean(belonging < threshold) + np.mean(other >= threshold)) / 2)


class MetricPlugin:
    @aedr.hookimpl
    def register_metrics(self, register):
        register(Metric("tpr_at_10pct_fpr", "TPR@10%FPR", tpr_at_10pct, "pct", "best TPR of any threshold whose FPR <= 10 %"))
        register(Metric("balanced_accuracy", "bal. acc %", balanced_accuracy, "pct", "mean of TPR and TNR at tau_T",
                        uses_threshold=True, leaderboard=True))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("seam-models"), n=2)


@pytest.fixture(scope="module")
def metric_run(tmp_path_factory, models):
    out = tmp_path_factory.mktemp("metric-run")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models), MetricPlugin()])
    cfg = load_config("default", models=["tiny-*"], out=str(out), report=True, **BENCH)
    return run_bench(cfg, plugins=plugins, progress=False)


def test_a_registered_metric_reaches_every_output(metric_run):
    out = Path(metric_run.config.out)
    pairs = pd.read_csv(out / "metrics.csv")
    model_pairs = pairs[pairs["pair_kind"] == "model"]
    assert model_pairs["tpr_at_10pct_fpr"].notna().all() and model_pairs["balanced_accuracy"].notna().all()
    # the metric computes what its function computes, on the pair's scores
    scores = metric_run.scores
    row = model_pairs.iloc[0]
    mine = scores[(scores["target"] == row["target"]) & (scores["split"] == "eval")]
    b = mine[mine["source"] == row["target"]]["score"].to_numpy(float)
    o = mine[mine["source"] == row["source"]]["score"].to_numpy(float)
    assert row["tpr_at_10pct_fpr"] == pytest.approx(tpr_at_fpr(b, o, 0.10))
    assert row["balanced_accuracy"] == pytest.approx(balanced_accuracy(b, o, row["threshold"]))

    doc = json.loads((out / "metrics.json").read_text())
    assert {"tpr_at_10pct_fpr", "balanced_accuracy"} <= {m["name"] for m in doc["metrics"]}
    assert all("tpr_at_10pct_fpr" in p for p in doc["pairs"])
    summary = doc["summaries"][0]
    assert summary["pair_balanced_accuracy"] == pytest.approx(model_pairs["balanced_accuracy"].mean())
    assert summary["pair_accuracy"] == pytest.approx(model_pairs["accuracy"].mean())

    board = (out / "leaderboard.md").read_text()
    assert "pairs bal. acc %" in board.split("## ")[1]  # a leaderboard metric: on the leaderboard itself
    assert "pairs TPR@10%FPR" in board  # threshold-free: in the threshold-free table
    report = (out / "report.html").read_text()
    assert "TPR@10%FPR" in report and "bal. acc %" in report and 'href="#at_threshold"' in report


def test_a_merged_leaderboard_keeps_the_metric_without_its_plugin(metric_run, tmp_path):
    """metrics.json describes its metrics: merging runs needs no plugin installed."""
    from aedr.bench.leaderboard import write_leaderboard

    merged, files = write_leaderboard([metric_run.config.out], tmp_path / "board")
    assert "pairs bal. acc %" in files["md"].read_text()
    assert merged.summaries[0].pair["tpr_at_10pct_fpr"] == pytest.approx(metric_run.summaries[0].pair["tpr_at_10pct_fpr"])


def test_the_reserved_metric_names_are_the_columns_of_a_pair():
    from aedr.bench.metrics import PairMetrics
    from aedr.metric import RESERVED_NAMES

    assert RESERVED_NAMES == set(PairMetrics.__dataclass_fields__) | {"run"}


def test_a_metric_name_must_be_a_new_column():
    with pytest.raises(ValueError, match="column every pair already has"):
        Metric("threshold", "tau", tpr_at_10pct)
    with pytest.raises(ValueError, match="letters, digits"):
        Metric("tpr at 10", "x", tpr_at_10pct)


def test_a_broken_metric_registration_is_isolated(models):
    class Broken:
        @aedr.hookimpl
        def register_metrics(self, register):
            register("not a metric")

    plugins = aedr.load_plugins(entry_points=False, extra=[Broken()])
    assert "accuracy" in plugins.metrics.names()
    assert any("Metric" in e for e in plugins.info["Broken"].errors)


# -- an executor: one class, one registration -------------------------------------------------------
class ReversedExecutor(Executor):
    """Scores the work items last to first, through the kernel as every executor does: the whole of
    a third-party executor is its ``map``."""

    name = "reversed"
    description = "items in reverse order (a test executor)"
    runs: list[int] = []

    def __init__(self, note: str = ""):
        self.note = note

    def map(self, items, scoring, progress=None):
        items = list(items)
        score = ItemScorer(scoring)
        for item in reversed(items):
            yield score(item)
        ReversedExecutor.runs.append(len(items))


class ExecutorPlugin:
    @aedr.hookimpl
    def register_executors(self, register):
        register(ReversedExecutor)


def test_a_registered_executor_runs_the_plan_and_scores_the_same(tmp_path, models):
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models), ExecutorPlugin()])
    assert set(plugins.executors.names()) == {"local", "ray", "reversed"} and plugins.executors.get("local") is LocalExecutor
    local = run_bench(load_config("default", models=["tiny-*"], out=str(tmp_path / "local"), report=False, **BENCH), plugins=plugins, progress=False)
    config = tmp_path / "reversed.toml"
    config.write_text(f'[bench]\nexecutor = "reversed"\nout = "{(tmp_path / "rev").as_posix()}"\n\n[executors.reversed]\nnote = "hello"\n')
    other = run_bench(load_config(config, models=["tiny-*"], report=False, **BENCH), plugins=plugins, progress=False)
    assert ReversedExecutor.runs and other.stats.executor == "reversed" and local.stats.executor == "local"
    key = ["method", "options_hash", "target", "image_hash"]
    both = local.scores.merge(other.scores, on=key, suffixes=("", "_rev"))
    assert len(both) == len(local.scores) > 0
    np.testing.assert_allclose(both["score"].to_numpy(float), both["score_rev"].to_numpy(float), rtol=1e-5)
    assert json.loads((tmp_path / "rev" / "metrics.json").read_text())["config"]["executor"] == "reversed"


def contributing_example(heading: str) -> types.ModuleType:
    """The first Python block after ``heading`` in CONTRIBUTING.md, run as a plugin module."""
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    block = text[text.index(heading):].split("```python\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("contributing_example")
    exec(compile(block, "CONTRIBUTING.md", "exec"), module.__dict__)
    return module


def test_the_contributing_executor_example_is_complete_and_scores_as_the_local_executor(tmp_path, models):
    example = contributing_example("### Executor (`aedr.executors.Executor`)")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models), example])
    assert plugins.executors.get("reversed") is example.ReversedExecutor
    runs = {name: run_bench(load_config("default", models=["tiny-*"], out=str(tmp_path / name), executor=name, report=False, **BENCH),
                            plugins=plugins, progress=False) for name in ("local", "reversed")}
    key = ["method", "options_hash", "target", "image_hash"]
    both = runs["local"].scores.merge(runs["reversed"].scores, on=key, suffixes=("", "_rev"))
    assert len(both) == len(runs["local"].scores) > 0 and runs["reversed"].stats.scored == runs["local"].stats.scored
    np.testing.assert_array_equal(both["score"].to_numpy(float), both["score_rev"].to_numpy(float))


def test_an_unknown_executor_or_option_is_a_config_error(tmp_path, models):
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])
    with pytest.raises(aedr.bench.ConfigError, match="Unknown executor 'raay'"):
        run_bench(load_config("default", models=["tiny-*"], out=str(tmp_path / "a"), executor="raay", **BENCH), plugins=plugins, progress=False)
    config = tmp_path / "bad.toml"
    config.write_text('[executors.local]\nworkers = 4\n')
    with pytest.raises(aedr.bench.ConfigError, match=r"\[executors.local\]"):
        run_bench(load_config(config, models=["tiny-*"], out=str(tmp_path / "b"), **BENCH), plugins=plugins, progress=False)


# -- perturbations: the registry's every entry ----------------------------------------------------------
PLUGINS = aedr.load_plugins(entry_points=False)
KINDS = PLUGINS.perturbations.names()


def photo(size=(48, 40), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def test_the_built_in_kinds_are_registered():
    assert {"jpeg", "webp", "resize", "crop", "blur", "noise"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_perturbation_kind_is_deterministic_rgb_and_round_trips_its_id(kind):
    cls = PLUGINS.perturbations.get(kind)
    assert issubclass(cls, Perturbation) and cls.description and cls.levels
    for level in cls.levels:
        chain = PLUGINS.perturbation(f"{kind}:{level:g}")
        assert PLUGINS.perturbation(chain.id).id == chain.id  # the id is a spec of itself
        a, b = chain.apply(photo(), seed=7), chain.apply(photo(), seed=7)
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("kind", KINDS)
def test_every_perturbation_kind_rejects_levels_out_of_range(kind):
    with pytest.raises(PerturbationError):
        PLUGINS.perturbation(f"{kind}:-5")
    with pytest.raises(PerturbationError, match="give the"):
        PLUGINS.perturbation(kind)


def test_jpeg_is_a_pil_round_trip():
    im = photo()
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=70)
    expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert np.array_equal(np.asarray(PLUGINS.perturbation("jpeg:70").apply(im)), expected)


def test_crop_and_resize_sizes():
    im = photo((50, 40))
    assert PLUGINS.perturbation("crop:0.5").apply(im).size == (25, 20)
    assert PLUGINS.perturbation("crop:0.9").apply(im).size == (45, 36)
    assert np.array_equal(np.asarray(PLUGINS.perturbation("crop:0.5").apply(im)), np.asarray(im)[10:30, 12:37])
    assert PLUGINS.perturbation("resize:0.5").apply(im).size == (25, 20)


def test_blur_is_scipy_gaussian_filter_and_noise_depends_on_the_seed():
    from scipy.ndimage import gaussian_filter

    im = photo()
    x = np.asarray(im, dtype=np.float64)
    expected = np.clip(np.rint(np.stack([gaussian_filter(x[..., c], 2.0, mode="reflect") for c in range(3)], -1)), 0, 255)
    assert np.array_equal(np.asarray(PLUGINS.perturbation("blur:2").apply(im)), expected.astype(np.uint8))
    noise = PLUGINS.perturbation("noise:0.1")
    a, b = np.asarray(noise.apply(im, seed=1), float), np.asarray(noise.apply(im, seed=2), float)
    assert not np.array_equal(a, b)
    assert np.std(a - x) == pytest.approx(0.1 * 255, rel=0.15)  # clipping trims a little


def test_spec_syntax_levels_and_chains():
    chains = PLUGINS.perturbations_for(["jpeg:90,70", "crop:0.9 jpeg:90", "jpeg:75+resize:0.5"])
    assert [c.id for c in chains] == ["jpeg:90", "jpeg:70", "crop:0.9", "jpeg:75+resize:0.5"]
    chain = chains[-1]
    assert isinstance(chain, Chain) and [s.name for s in chain.steps] == ["jpeg", "resize"]
    assert chain.apply(photo((40, 40))).size == (20, 20)
    with pytest.raises(PerturbationError, match="Unknown perturbation 'jpg'. Did you mean: jpeg"):
        PLUGINS.perturbation("jpg:90")
    with pytest.raises(PerturbationError, match="one level per step"):
        PLUGINS.perturbation("jpeg:90,80+resize:0.5")
    with pytest.raises(PerturbationError, match="whole number"):
        PLUGINS.perturbation("jpeg:90.5")
    with pytest.raises(PerturbationError, match="describes 2"):
        PLUGINS.perturbation("jpeg:90,80")


def test_a_third_party_perturbation_kind_is_one_class_and_one_registration():
    class Invert(Perturbation):
        name, parameter, description, levels = "invert", "amount", "blend with the negative", (0.5, 1.0)

        def check(self, level):
            if not 0 <= level <= 1:
                raise PerturbationError("invert: amount must be in [0, 1]")

        def apply(self, image, rng):
            x = np.asarray(image, dtype=np.float64)
            return Image.fromarray(np.rint(x + self.level * (255 - 2 * x)).astype(np.uint8))

    class InvertPlugin:
        @aedr.hookimpl
        def register_perturbations(self, register):
            register(Invert)

    plugins = aedr.load_plugins(entry_points=False, extra=[InvertPlugin()])
    out = plugins.perturbation("invert:1+crop:0.5").apply(photo((40, 40)))
    assert out.size == (20, 20)
    assert np.array_equal(np.asarray(out), 255 - np.asarray(photo((40, 40)))[10:30, 10:30])


def test_a_method_failing_under_every_target_leaves_a_complete_run(tmp_path, models):
    """No usable score for one method: its failures are recorded, the others get intervals and ranks."""
    from aedr.methods.aedr_method import AEDR

    class Broken(AEDR):
        name = "broken"

        def score_batch(self, ctx, x0):
            raise RuntimeError("always fails")

    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models, methods=[Broken])])
    cfg = load_config("default", models=["tiny-*"], methods=["aedr", "broken"], out=str(tmp_path / "out"), report=True,
                      **{k: v for k, v in BENCH.items() if k != "methods"})
    result = run_bench(cfg, plugins=plugins, progress=False)
    assert {f.method for f in result.failures} == {"broken"} and len(result.failures) == 2
    ranked = {s.method: s for s in result.summaries}
    assert ranked["aedr"].rank == "1" and ranked["aedr"].intervals
    assert (tmp_path / "out" / "report.html").exists()
