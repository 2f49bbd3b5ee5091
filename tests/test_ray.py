"""The ray executor: the same scores as the local executor, a dying actor loses nothing saved and
computes nothing twice, runs resume across executors, and what travels to the actors."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason='the ray executor needs Ray: pip install "aedr[ray]"')
pytest.importorskip("ray.data", reason='the ray executor needs Ray Data: pip install "aedr[ray]"')

import aedr  # noqa: E402
from aedr.bench import BenchInterrupted, ConfigError, load_config, run_bench  # noqa: E402
from aedr.ray_executor import (  # noqa: E402
    INSTALL_HINT, ActorModels, RayExecutor, RayUnavailableError, model_recipe, packets,
)
from aedr.bench.store import ScoreStore  # noqa: E402
from aedr.methods.aedr_method import AEDR, AEDROptions  # noqa: E402
from test_bench_support import BenchModels, make_models  # noqa: E402

TESTS = Path(__file__).resolve().parent
KEY = ["method", "options_hash", "target", "image_hash"]
BENCH = dict(n_cal=4, n_eval=3, chunk_size=3, real="none", report=False)


# -- a method that counts what it scores, and can kill the process scoring it ----------------------
@dataclass
class CountedOptions(AEDROptions):
    """``counter``: a file that gets one line per image scored (appended from any process).
    ``crash_after``: the first unit that starts once the counter holds this many lines kills its
    process (once per counter file; never ``spare_pid``, the test's own process).
    ``fail_under``: the method raises under this target."""

    counter: str = ""
    crash_after: int = -1
    spare_pid: int = 0
    fail_under: str = ""


class Counted(AEDR):
    name = "counted"
    description = "AEDR that counts the images it scores (a test method)"
    Options = CountedOptions
    options: CountedOptions

    def score(self, model, images, *, cache=None, progress=None):
        if model.name == self.options.fail_under:
            raise RuntimeError(f"refusing to score under {model.name}")
        counter = Path(self.options.counter)
        if self.options.crash_after >= 0 and os.getpid() != self.options.spare_pid and count_lines(counter) >= self.options.crash_after:
            try:
                os.close(os.open(counter.with_suffix(".crashed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)  # the actor dies before it has scored anything of this unit
        scores = super().score(model, images, cache=cache, progress=progress)
        with open(counter, "a") as f:
            f.write("".join(f"{model.name} {im.content_hash}\n" for im in images))
        return scores


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def counted_keys(path: Path) -> pd.Series:
    """How many times each (target, image) was scored."""
    lines = path.read_text().splitlines() if path.exists() else []
    return pd.Series([tuple(line.split()) for line in lines], dtype=object).value_counts()


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("ray-models"), n=2)


@pytest.fixture(scope="module")
def plugins(models):
    return aedr.load_plugins(entry_points=False, extra=[BenchModels(models, methods=[Counted])])


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the module; its workers import this folder's modules (the test
    models and methods) as the test process does."""
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    path = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def ray_config(out, *, methods, method_options=None, **ray_options):
    cfg = load_config("default", models=["tiny-*"], methods=methods, out=str(out), executor="ray",
                      method_options=method_options, **BENCH)
    cfg.executor_options["ray"] = ray_options
    return cfg


def local_config(out, *, methods, method_options=None):
    return load_config("default", models=["tiny-*"], methods=methods, out=str(out), method_options=method_options, **BENCH)


def counted(counter: Path, **extra) -> dict:
    return {"counted": {"counter": str(counter), "spare_pid": os.getpid(), **extra}}


def saved(out) -> pd.DataFrame:
    return ScoreStore(out).load().sort_values(KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, plugins):
    """The local executor's run: AEDR, and the counting method failing under tiny-1."""
    out = tmp_path_factory.mktemp("ray-reference")
    cfg = local_config(out, methods=["aedr", "counted"], method_options=counted(out / "count.txt", fail_under="tiny-1"))
    cfg.perturbations = ["jpeg:80"]  # perturbed copies too: their refs travel with their perturbation
    return run_bench(cfg, plugins=plugins, progress=False)


def aedr_scores(frame: pd.DataFrame) -> pd.Series:
    ok = frame[(frame["method"] == "aedr") & (frame["status"] == "ok")]
    return ok.set_index(["target", "image_hash"])["score"].sort_index()


# -- options and what travels (no Ray needed) -------------------------------------------------------
def test_options_are_checked(plugins, tmp_path):
    with pytest.raises(ConfigError, match=r"\[executors.ray\]: actors"):
        RayExecutor(actors=0)
    with pytest.raises(ConfigError, match=r"num_gpus must be a number"):
        RayExecutor(num_gpus="one")
    with pytest.raises(ConfigError, match=r"ray_logs must be true or false"):
        RayExecutor(ray_logs="yes")
    with pytest.raises(ConfigError, match=r"\[executors.ray\]"):
        run_bench(ray_config(tmp_path, methods=["aedr"], workers=3), plugins=plugins, progress=False)
    ex = RayExecutor(actors=[1, 4], num_gpus=0.25, batch_size=2)
    assert ex.actors == (1, 4) and ex.num_gpus == 0.25 and ex.batch_size == 2


def test_a_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does where Ray is not installed
    with pytest.raises(RayUnavailableError, match=INSTALL_HINT.replace("[", r"\[").replace("]", r"\]")) as info:
        RayExecutor()
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ImportError)


def test_models_travel_by_plugin_module_or_by_value(models, plugins):
    from ray import cloudpickle

    model = plugins.model("tiny-0")
    model.autoencoder("cpu")  # loaded here: the weights do not travel
    recipe = model_recipe(model, plugins)
    assert recipe.module is None and "_autoencoders" not in recipe.state
    rebuilt = cloudpickle.loads(cloudpickle.dumps(recipe)).build()
    assert type(rebuilt) is type(model) and rebuilt.folder == model.folder and rebuilt.family == model.family
    assert rebuilt._autoencoders == {} and isinstance(rebuilt._lock, type(threading.Lock()))

    installed = aedr.load_plugins()  # the shipped plugins: rebuilt by name from their modules
    name = next((n for n in installed.models.names() if n.startswith("zoo-")), None)
    if name is None:
        pytest.skip("the zoo plugin is not installed")
    zoo = installed.model(name)
    recipe = model_recipe(zoo, installed)
    assert recipe.module == "aedr_zoo.plugin" and recipe.state is None
    rebuilt = ActorModels({name: cloudpickle.dumps(recipe)}).model(name)
    assert rebuilt is not zoo and type(rebuilt) is type(zoo) and rebuilt.name == name


def test_pipelines_take_a_window_of_items_and_never_split_a_group(monkeypatch):
    """A pipeline holds consecutive items of one target, at most WINDOW of them unless a group (a
    chunk, a shard) would be split; packets are the groups."""
    import aedr.ray_executor as rx
    from aedr.kernel import WorkItem

    monkeypatch.setattr(rx, "WINDOW", 3)
    groups = [("a", 0), ("a", 0), ("a", 1), ("a", 1), ("a", 2), ("b", 3), ("b", 3), ("b", 3), ("b", 3)]
    items = [WorkItem(i, target, ("aedr", "h"), [], group=g) for i, (target, g) in enumerate(groups)]
    runs = [(t, [i.index for i in run]) for t, run in rx._runs(iter(items))]
    assert runs == [("a", [0, 1, 2, 3]), ("a", [4]), ("b", [5, 6, 7, 8])]
    assert [[i.index for i in p.items] for p in rx.packets(items[:5])] == [[0, 1], [2, 3], [4]]


def test_work_items_group_a_chunks_methods(plugins, tmp_path):
    from aedr.bench.plan import make_units, select_methods, select_models
    from aedr.bench.sources import prepare_sources
    from aedr.bench.progress import PlanProgress
    from aedr.bench.records import RunStats

    cfg = local_config(tmp_path, methods=["aedr", "counted"], method_options=counted(tmp_path / "c.txt"))
    models = select_models(cfg, plugins)
    methods = select_methods(cfg, plugins)
    with PlanProgress(enabled=False) as bar:
        sources = prepare_sources(cfg, models, plugins, bar, RunStats())
    units, _ = make_units(models, methods, sources, cfg, set())
    from aedr.bench.execute import Job, PlanBooks
    from aedr.bench.plan import Plan
    from aedr.executors import LocalExecutor

    job = Job(Plan(cfg, models, methods, sources, units), None, PlanProgress(enabled=False), RunStats(), None)
    items = packets(i for i in PlanBooks(job, LocalExecutor()).items() if i.target == "tiny-0")
    assert [len(it.items) for it in items] == [2] * len(items)  # every chunk: both methods
    assert sorted(i.index for it in items for i in it.items) == [i for i, u in enumerate(units) if u.target == "tiny-0"]
    assert all(i.method == units[i.index].method.key for it in items for i in it.items)  # no method objects: their keys


# -- on Ray ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_scores_equal_the_local_executors(local_ray, plugins, reference, tmp_path):
    out = tmp_path / "ray"
    cfg = ray_config(out, methods=["aedr", "counted"], method_options=counted(Path(reference.config.out) / "count.txt", fail_under="tiny-1"),
                     actors=2)
    cfg.perturbations = ["jpeg:80"]
    result = run_bench(cfg, plugins=plugins, progress=False)
    assert result.stats.executor == "ray"
    assert (result.scores["perturbation"] == "jpeg:80").any()
    mine = pd.read_parquet(out / "scores.parquet").sort_values(KEY).reset_index(drop=True)
    theirs = pd.read_parquet(Path(reference.config.out) / "scores.parquet").sort_values(KEY).reset_index(drop=True)
    assert len(mine) == len(theirs) > 0
    assert mine[KEY + ["status"]].equals(theirs[KEY + ["status"]])
    np.testing.assert_allclose(mine["score"].to_numpy(float), theirs["score"].to_numpy(float), rtol=0, atol=1e-6, equal_nan=True)
    # the method failing under tiny-1 is a failure under Ray too, and its work there is not saved
    assert [(f.method, f.target) for f in result.failures] == [(f.method, f.target) for f in reference.failures] == [("counted", "tiny-1")]
    assert "refusing to score" in result.failures[0].error
    # first reconstructions are shared between the methods of a chunk, as locally
    assert result.stats.cache_hits == reference.stats.cache_hits > 0
    assert result.stats.scored == reference.stats.scored and result.stats.chunks_written == reference.stats.chunks_written


@pytest.mark.slow
@pytest.mark.parametrize("max_attempts", [3, 1])
def test_an_actor_dying_mid_run_loses_nothing_and_computes_nothing_twice(local_ray, plugins, reference, tmp_path, max_attempts):
    out, counter = tmp_path / "run", tmp_path / "count.txt"
    options = counted(counter, crash_after=4)
    extra = {"decode_cpus": 0.5} if max_attempts == 1 else {}  # also through the CPU decoding stage
    first = run_bench(ray_config(out, methods=["counted"], method_options=options, actors=1, max_attempts=max_attempts, **extra),
                      plugins=plugins, progress=False)
    assert counter.with_suffix(".crashed").exists()  # an actor did die
    after_first = saved(out)
    plan_size = len(first.scores)
    times = counted_keys(counter)
    assert (times == 1).all() and len(times) == len(after_first)  # each saved image scored once, nothing else
    if max_attempts > 1:  # Ray restarted the actor and tried the chunk again: the run completed
        assert first.failures == [] and len(after_first) == plan_size
    else:  # not tried again: its units are a failure, left unsaved, and the next run computes them
        assert [f.target for f in first.failures] and all("rerun" in f.error for f in first.failures)
        assert 0 < len(after_first) < plan_size
        second = run_bench(ray_config(out, methods=["counted"], method_options=options, actors=1), plugins=plugins, progress=False)
        assert second.failures == [] and second.stats.already_saved == len(after_first)
        assert second.stats.scored == plan_size - len(after_first)
    final = saved(out)
    assert len(final) == plan_size and (final["status"] == "ok").all()
    kept = final.merge(after_first, on=KEY, suffixes=("", "_first"))
    assert len(kept) == len(after_first) and (kept["seconds"] == kept["seconds_first"]).all()  # not computed again
    times = counted_keys(counter)
    assert (times == 1).all() and len(times) == plan_size
    # the scores are AEDR's, as the local executor computes them
    ref = aedr_scores(reference.scores)
    mine = final.set_index(["target", "image_hash"])["score"].sort_index()
    np.testing.assert_allclose(mine.to_numpy(float), ref.loc[mine.index].to_numpy(float), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_a_local_run_interrupted_then_resumed_on_ray_computes_nothing_twice(local_ray, plugins, tmp_path):
    out, counter = tmp_path / "run", tmp_path / "count.txt"
    options = counted(counter)
    events = []

    def stop_after_two(event):
        events.append(event)
        if len(events) == 2:
            raise KeyboardInterrupt

    with pytest.raises(BenchInterrupted):
        run_bench(local_config(out, methods=["counted"], method_options=options), plugins=plugins, progress=False, callback=stop_after_two)
    before = saved(out)
    assert len(before) > 0
    result = run_bench(ray_config(out, methods=["counted"], method_options=options, actors=2), plugins=plugins, progress=False)
    assert result.failures == [] and result.stats.already_saved == len(before)
    final = saved(out)
    assert len(final) == len(result.scores) and (final["status"] == "ok").all()
    kept = final.merge(before, on=KEY, suffixes=("", "_first"))
    assert len(kept) == len(before) and (kept["seconds"] == kept["seconds_first"]).all()  # not computed again
    times = counted_keys(counter)  # (the interrupted unit stopped inside the method, before it counted)
    assert (times == 1).all() and set(times.index) == set(zip(final["target"], final["image_hash"]))
    # a third run, on Ray, has nothing to do and starts no actor
    again = run_bench(ray_config(out, methods=["counted"], method_options=options, actors=2), plugins=plugins, progress=False)
    assert again.stats.scored == 0 and again.stats.already_saved == len(final)
    assert counted_keys(counter).equals(times)


# -- aedr score --executor ray: files into parquet shards ---------------------------------------------
@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    from conftest import photo_crops

    root = tmp_path_factory.mktemp("ray-files")
    for im in photo_crops(9, seed=3):
        Image.fromarray(im.rgb).save(root / f"{im.id}.png")
    (root / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def file_task(folder, out, method, model, **kw):
    from aedr.stream import FileScoring

    return FileScoring([folder], model, method, out, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("decode_cpus", [0, 1])
def test_ray_streams_files_as_the_local_executor_does_and_resumes_its_run(local_ray, plugins, image_folder, tmp_path, decode_cpus):
    from aedr.executors import LocalExecutor
    from aedr.stream import stream_files

    model = plugins.model("tiny-0")
    counter = tmp_path / "count.txt"
    method = plugins.method("counted", counter=str(counter), spare_pid=os.getpid())
    local = stream_files(file_task(image_folder, tmp_path / "local.parquet", method, model, shard_size=3), LocalExecutor())
    assert (local.scored, local.skipped) == (9, 1)
    # a local run stopped after one shard, then finished on Ray: nothing scored twice
    mixed = tmp_path / "mixed.parquet"

    def stop(n, calls=[0]):
        calls[0] += 1
        if calls[0] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_files(file_task(image_folder, mixed, method, model, shard_size=3, progress=stop), LocalExecutor())
    before = count_lines(counter)
    # 2 CPUs: two scoring actors, or one actor and a CPU for the decoding tasks (docs/scale.md)
    report = stream_files(file_task(image_folder, mixed, method, model, shard_size=2), RayExecutor(actors=2 - decode_cpus, decode_cpus=decode_cpus))
    assert report.already == 2 and report.scored + report.skipped == 8  # broken.png is tried again
    assert count_lines(counter) - before == 7  # the crops the first shard (broken.png and two crops) did not hold
    from aedr.stream import ScoreShards

    mine = ScoreShards(mixed).read().sort_values("image").reset_index(drop=True)  # one row per file
    theirs = ScoreShards(tmp_path / "local.parquet").read().sort_values("image").reset_index(drop=True)
    assert mine["image"].tolist() == theirs["image"].tolist() and mine["image"].is_unique
    assert mine[["content_hash", "model", "method", "options_hash", "error"]].equals(theirs[["content_hash", "model", "method", "options_hash", "error"]])
    np.testing.assert_allclose(mine["score"].to_numpy(float), theirs["score"].to_numpy(float), rtol=0, atol=1e-6, equal_nan=True)
    assert "broken.png" in mine.loc[mine["error"] != "", "image"].iloc[0]


@pytest.mark.slow
def test_ray_rows_equal_local_rows_bit_for_bit(local_ray, image_folder, tmp_path):
    """An actor scores with the driver's torch thread count whatever its num_cpus: the rows are the
    same whichever executor computed them, so a run resumed across executors mixes nothing."""
    import torch

    from aedr.executors import LocalExecutor
    from aedr.stream import stream_files
    from aedr.stream import ScoreShards

    model, method = aedr.get_plugins().model("zoo-kl-a"), aedr.get_method("aedr")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a count an actor of one CPU would not pick for itself
    try:
        stream_files(file_task(image_folder, tmp_path / "local.parquet", method, model), LocalExecutor())
        stream_files(file_task(image_folder, tmp_path / "ray.parquet", method, model), RayExecutor(actors=1, num_cpus=1))
    finally:
        torch.set_num_threads(threads)
    mine, theirs = (ScoreShards(tmp_path / f"{n}.parquet").read().sort_values("image").reset_index(drop=True) for n in ("ray", "local"))
    assert mine["error"].tolist() == theirs["error"].tolist() and (mine["error"] == "").sum() == 9
    np.testing.assert_array_equal(mine["score"].to_numpy(float), theirs["score"].to_numpy(float))


@pytest.mark.slow
def test_perturbed_copies_stream_on_ray_as_locally(local_ray, image_folder, tmp_path, monkeypatch):
    """``aedr score DIR --perturb jpeg:90 --executor ray``: the same rows as the local executor's."""
    from aedr.stream import ScoreShards
    from conftest import cli_runner

    run = cli_runner(aedr.get_plugins(), monkeypatch)
    for executor in ("local", "ray"):
        run("score", image_folder, "--model", "zoo-kl-a", "--perturb", "jpeg:90", "--executor", executor, "--out", tmp_path / f"{executor}.parquet")
    mine, theirs = (ScoreShards(tmp_path / f"{n}.parquet").read().sort_values("image").reset_index(drop=True) for n in ("ray", "local"))
    assert set(mine["perturbation"]) == {"jpeg:90"} and (mine["error"] == "").sum() == 9
    assert mine[["image", "perturbation", "error"]].equals(theirs[["image", "perturbation", "error"]])
    np.testing.assert_array_equal(mine["score"].to_numpy(float), theirs["score"].to_numpy(float))


@pytest.mark.slow
def test_the_ray_a_driver_started_ends_when_the_driver_is_killed(tmp_path):
    """``kill -9`` skips Ray's own clean-up at exit: Ray's main processes end with the driver, but the
    agents the raylet started (DashboardAgent, RuntimeEnvAgent) do not; the watchdog stops them."""
    import signal
    import subprocess
    import time

    script = ("import time, ray\n"
              "from aedr.ray_executor import RayExecutor\n"
              "RayExecutor()._connect()\n"
              "node = ray._private.worker._global_node\n"
              "print(' '.join(str(i.process.pid) for v in node.all_processes.values() for i in v), flush=True)\n"
              "time.sleep(600)\n")
    def running(pid: int) -> bool:
        try:
            return b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def children(parents: set[int]) -> set[int]:
        found = set()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and int((entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[1]) in parents:
                    found.add(int(entry.name))
            except OSError:
                pass
        return found

    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        started = {int(p) for p in driver.stdout.readline().split()}
        deadline = time.monotonic() + 30
        while not any(b"Agent" in Path(f"/proc/{p}/cmdline").read_bytes() for p in children(started) if running(p)):
            assert time.monotonic() < deadline, "the raylet started no agent"
            time.sleep(0.5)
        time.sleep(1)  # the watchdog polls twice a second
        pids = started | children(started)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()

    deadline = time.monotonic() + 30
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in pids if running(p)]


@pytest.mark.slow
def test_a_streams_actor_that_dies_is_retried_by_one_mechanism_and_nothing_is_lost(local_ray, plugins, image_folder, tmp_path):
    """The file's actor dies once mid-stream: Ray restarts it, the ledger counts the try, the batch is
    scored again; no deprecated Ray argument is passed (no warning of aedr's making)."""
    import warnings

    from aedr.stream import stream_files

    model = plugins.model("tiny-0")
    counter = tmp_path / "count.txt"
    method = plugins.method("counted", counter=str(counter), spare_pid=os.getpid(), crash_after=3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        report = stream_files(file_task(image_folder, tmp_path / "s.parquet", method, model, shard_size=3), RayExecutor(actors=1, max_attempts=3))
    assert (report.scored, report.skipped) == (9, 1) and (counter.with_suffix(".crashed")).exists()
    assert not [str(w.message) for w in seen if "deprecated" in str(w.message).lower() and "aedr" in (w.filename or "")]
    from aedr.stream import ScoreShards

    frame = ScoreShards(tmp_path / "s.parquet").read()
    assert (frame["error"] == "").sum() == 9 and frame["image"].is_unique


def test_executor_options_are_checked_like_method_options(plugins, tmp_path):
    """One mechanism: the constructor's declared types (aedr.fieldtypes), for a config's table and for
    --executor-option text alike; an unknown option names the table and the executor's options."""
    from aedr.executors import ExecutorError, build_executor

    ex = build_executor(plugins, "ray", {"actors": "1,4", "num_gpus": "0.25", "ray_logs": "yes"}, text=True)
    assert ex.actors == (1, 4) and ex.num_gpus == 0.25 and ex.ray_logs is True
    with pytest.raises(ExecutorError, match=r"\[executors.ray\]: executor 'ray' has no option 'actorz' \(did you mean 'actors'\?\)"):
        build_executor(plugins, "ray", {"actorz": 2})
    with pytest.raises(ConfigError, match=r"\[executors.ray\]: actors must be an integer or a list of integers"):
        run_bench(ray_config(tmp_path, methods=["aedr"], actors="two"), plugins=plugins, progress=False)
    cfg = load_config("default", executor="ray", executor_options={"ray": {"address": "auto"}})  # --ray-address: made so, not changed after
    assert cfg.executor_options["ray"] == {"address": "auto"}
