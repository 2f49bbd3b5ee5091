"""Scoring a plan on Ray: one node with several GPUs, or a cluster.

:class:`RayExecutor` (``executor = "ray"``) runs each target model's units as a Ray Data pipeline:

- the work items are the plan's chunks under that target, each with the units of every method that
  still has work in it (so one actor computes a chunk's first reconstructions once and shares them
  between the methods, exactly as the local executor does);
- optionally, a CPU task stage decodes a chunk's image files (and checks their content hashes)
  before it reaches an actor (``decode_cpus``);
- a callable-class stage on an actor pool (``ray.data.ActorPoolStrategy``) scores them: each actor
  rebuilds the target model and the methods once, loads the model's autoencoder once, and turns
  units into rows with :func:`aedr.bench.execute.score_unit`, the one place scores are computed;
- the rows stream back to the driver, which saves every finished unit with
  :func:`aedr.bench.execute.save_rows` as it arrives (one part file per unit) and updates the
  progress display and the run's statistics.

Units already saved are not in the plan, so a rerun (with this executor or any other) computes only
what is missing. An actor that dies is restarted by Ray and the chunk it was scoring is tried again,
up to ``max_attempts`` times; a chunk that still does not come back is recorded as a failure of its
methods under the target and left unsaved, so the next run computes it. Rows are saved only by the
driver, once per unit: nothing saved is lost or saved twice.

Ray is optional (``pip install "aedr[ray]"``) and imported only when this executor is built.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import logging
import math
import os
import pickle
import sys
import threading
import time
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from ..executors import ExecutorError
from ..images import ImageLoadError, LoadedImage
from ..models import ModelPlugin
from ..reconstruction import ReconstructionCache
from ..text import markup
from .execute import Executor, Job, UnitFailed, record_failure, save_rows, score_unit
from .plan import Unit
from .records import Failure, ProgressEvent

INSTALL_HINT = 'pip install "aedr[ray]"'
OPTIONS_TABLE = "[executors.ray]"


class RayUnavailableError(ExecutorError, ImportError):
    """Ray (with Ray Data) is not installed here."""


def import_ray():
    """``ray`` and ``ray.data``, or :class:`RayUnavailableError` saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs it; a bare `pip install ray` does not)
    except ImportError as exc:
        raise RayUnavailableError(
            f"the ray executor needs Ray with Ray Data, which is not installed here ({exc}); install it with: {INSTALL_HINT}"
        ) from None
    return ray


# -- what travels to the actors ---------------------------------------------------------------------
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


class _FreshLock:
    """Stands for a lock in a model's state: locks cannot be pickled, a new one is made on arrival."""

    def __init__(self, reentrant: bool):
        self.reentrant = reentrant

    def make(self):
        return threading.RLock() if self.reentrant else threading.Lock()


@dataclass
class ModelRecipe:
    """How an actor gets a model: rebuilt by name from the plugin module that registers it (what an
    installed plugin provides: nothing of the driver's state travels), or, for a model registered
    by a plugin object (a notebook, a test), a copy of the driver's instance without its loaded
    autoencoders and with fresh locks."""

    name: str
    module: str | None = None  # the plugin module whose register_models hook registers it
    cls: type | None = None
    state: dict | None = None

    @property
    def how(self) -> str:
        return f"rebuilt from plugin module {self.module}" if self.module else "sent by value"

    def build(self) -> ModelPlugin:
        if self.module is not None:
            module = importlib.import_module(self.module)
            found: dict[str, ModelPlugin] = {}
            module.register_models(register=lambda m: found.setdefault(m.name, m))
            if self.name not in found:
                raise LookupError(f"plugin module {self.module} no longer registers model {self.name!r} on this worker")
            return found[self.name]
        assert self.cls is not None and self.state is not None
        model = object.__new__(self.cls)
        ModelPlugin.__init__(model)  # an empty autoencoder cache and its lock
        for key, value in self.state.items():
            setattr(model, key, value.make() if isinstance(value, _FreshLock) else value)
        return model


def model_recipe(model: ModelPlugin, plugins: Any = None) -> ModelRecipe:
    """The recipe for ``model``, registered in ``plugins`` (the bench's plugin set, or None)."""
    module = _registering_module(model, plugins)
    if module is not None:
        return ModelRecipe(model.name, module=module)
    state: dict[str, Any] = {}
    for key, value in vars(model).items():
        if key == "_autoencoders":
            continue  # loaded weights, per device: each actor loads its own
        state[key] = _FreshLock(isinstance(value, _LOCK_TYPES[1])) if isinstance(value, _LOCK_TYPES) else value
    return ModelRecipe(model.name, cls=type(model), state=state)


def _registering_module(model: ModelPlugin, plugins: Any) -> str | None:
    """The importable module whose ``register_models`` registered this very instance, if any."""
    if plugins is None:
        return None
    try:
        entry = plugins.models.entry(model.name)
        if entry.obj is not model:
            return None
        obj = plugins.manager.get_plugin(entry.plugin)
    except Exception:
        return None
    if not isinstance(obj, types.ModuleType) or not callable(getattr(obj, "register_models", None)):
        return None
    try:
        if importlib.import_module(obj.__name__) is not obj:
            return None
    except Exception:
        return None
    return obj.__name__


class ActorModels:
    """The models an actor can look up by name (the plan's target, AEROBLADE's detection models):
    built from their pickled recipes on first use. It stands in for a method's plugin set on the
    actor."""

    def __init__(self, recipes: dict[str, bytes]):
        self.recipes = recipes
        self._built: dict[str, ModelPlugin] = {}

    def model(self, name: str) -> ModelPlugin:
        if name not in self._built:
            if name in self.recipes:
                from ray import cloudpickle

                recipe: ModelRecipe = cloudpickle.loads(self.recipes[name])
                self._built[name] = recipe.build()
            else:  # not in the bench's plugin set as the driver knew it: the worker's own plugins
                import aedr

                self._built[name] = aedr.get_plugins().model(name)
        return self._built[name]


@dataclass
class WorkItem:
    """One chunk under one target: its units with their index in the plan. The units travel without
    their method objects (each actor has its own, rebuilt once)."""

    item: int
    chunk: int
    units: list[tuple[int, Unit]]
    images: dict[str, LoadedImage] | None = None  # decoded by the CPU stage, when there is one


def work_items(units: Sequence[tuple[int, Unit]]) -> list[WorkItem]:
    """Consecutive units of one chunk (the plan orders them target -> chunk -> method) -> one item."""
    items: list[WorkItem] = []
    for index, unit in units:
        if not items or items[-1].chunk != unit.chunk:
            items.append(WorkItem(len(items), unit.chunk, []))
        items[-1].units.append((index, dataclasses.replace(unit, method=dataclasses.replace(unit.method, method=None))))
    return items


# -- what runs on Ray -------------------------------------------------------------------------------
class AttemptLedger:
    """One small actor per target (per stream): how many times each work item (each shard of
    files) started (an actor that dies is restarted and its item tried again), and which methods
    failed under the target (their remaining units are dropped by every actor, as the local
    executor drops them). The one retry mechanism: Ray's restarts, capped here."""

    def __init__(self):
        self.attempts: dict[Any, int] = {}
        self.failed: set[tuple[str, str]] = set()

    def begin(self, item: Any) -> tuple[int, list[tuple[str, str]]]:
        self.attempts[item] = self.attempts.get(item, 0) + 1
        return self.attempts[item], sorted(self.failed)

    def fail(self, key: tuple[str, str]) -> None:
        self.failed.add(tuple(key))

    def retried(self) -> dict[Any, int]:
        return {k: v for k, v in self.attempts.items() if v > 1}


def decode_images(batch: dict) -> dict:
    """CPU stage: read and decode each item's image files once (checking their content hashes). An
    image that cannot be read is left out: scoring reads it again and records the skip itself."""
    from ray import cloudpickle

    payloads = []
    for blob in batch["payload"]:
        item: WorkItem = cloudpickle.loads(blob)
        images: dict[str, LoadedImage] = {}
        for _, unit in item.units:
            for ref in unit.refs:
                if ref.content_hash in images:
                    continue
                try:
                    images[ref.content_hash] = ref.load()
                except ImageLoadError:
                    pass
        item.images = images
        payloads.append(cloudpickle.dumps(item))
    return {"item": batch["item"], "payload": _object_array(payloads)}


def _object_array(values: list):
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class ChunkScorer:
    """The scoring stage's callable class: one instance per actor, for one target model.

    Built once per actor: rebuilds the model and the methods from what the driver sent and loads the
    autoencoder each method uses (once). Called with work items; returns one row per unit: its
    plan index and its outcome, pickled."""

    def __init__(self, setup: bytes, ledger: Any):
        from ray import cloudpickle

        self.ledger = ledger
        self.error: str | None = None
        self.methods: dict[tuple[str, str], Any] = {}  # method key -> the actor's Method
        self.method_errors: dict[tuple[str, str], str] = {}
        s = pickle.loads(setup)
        _actor_threads(s["threads"])
        self.target: str = s["target"]
        self.max_attempts: int = s["max_attempts"]
        self.share: bool = s["share"]
        self.cache_items: int = s["cache_items"]
        self.failed: set[tuple[str, str]] = set()
        try:
            self.models = ActorModels(s["models"])
            self.model = self.models.model(self.target)
        except Exception as exc:
            self.error = f"model {self.target!r} could not be rebuilt on the Ray worker ({_describe(exc)}); " \
                "install aedr and the model's plugin on every node"
            return
        for key, blob in s["methods"].items():
            try:
                method = _on_assigned_gpu(cloudpickle.loads(blob))
                method.plugins = self.models
                self.methods[key] = method
            except Exception as exc:
                self.method_errors[key] = f"the method could not be rebuilt on the Ray worker ({_describe(exc)})"
        for method in self.methods.values():
            try:
                method.autoencoder(self.model)  # loaded once per actor; a failure is reported per unit
            except Exception:
                pass

    def __call__(self, batch: dict) -> dict:
        from ray import cloudpickle

        indices, outcomes = [], []
        for blob in batch["payload"]:
            item: WorkItem = cloudpickle.loads(blob)
            for index, outcome in self._score_item(item):
                indices.append(index)
                outcomes.append(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
        import numpy as np

        return {"unit": np.asarray(indices, dtype=np.int64), "payload": _object_array(outcomes)}

    def _begin(self, item: WorkItem) -> int:
        import ray

        try:
            attempt, failed = ray.get(self.ledger.begin.remote(item.item))
        except Exception:  # the ledger is gone: score anyway
            return 1
        self.failed.update(tuple(k) for k in failed)
        return attempt

    def _score_item(self, item: WorkItem) -> Iterator[tuple[int, tuple]]:
        attempt = self._begin(item)
        if attempt > self.max_attempts:
            for index, _ in item.units:
                yield index, ("lost", f"their Ray actor died during each of {self.max_attempts} attempt(s)")
            return
        images = dict(item.images or {})
        cache = ReconstructionCache(max_items=self.cache_items) if self.share else None
        for index, unit in item.units:
            key = unit.method.key
            if self.error is not None or key in self.method_errors:
                yield index, ("failed", "RuntimeError", self.error or self.method_errors[key], len(unit.refs))
                continue
            if key in self.failed:
                yield index, ("dropped", len(unit.refs))
                continue
            unit = dataclasses.replace(unit, method=dataclasses.replace(unit.method, method=self.methods[key]))
            hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
            start = time.perf_counter()
            try:
                rows, unscored = score_unit(unit, self.model, images=images, cache=cache)
            except UnitFailed as exc:
                self.failed.add(key)
                try:
                    self.ledger.fail.remote(key)
                except Exception:
                    pass
                yield index, ("failed", type(exc.cause).__name__, str(exc.cause), exc.remaining)
                continue
            seconds = time.perf_counter() - start
            if cache is not None:
                hits, misses = cache.hits - hits, cache.misses - misses
            yield index, ("ok", rows, unscored, seconds, hits, misses)


# The watchdog of a Ray started by this process (Linux): Ray's own clean-up runs when the driver exits,
# which ``kill -9`` skips; its main processes then end with the driver, but the agents and workers the
# raylet started are left running. A small process outside the driver's notes every process the Ray
# processes start while the driver runs, and stops them all once it has ended (each checked by name
# first: a PID may have been reused).
_WATCHDOG = r"""
import os, signal, sys, time
driver, pids = int(sys.argv[1]), {int(p) for p in sys.argv[2:]}
def read(pid, name):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""
def alive(pid):
    stat = read(pid, "stat")
    return bool(stat) and stat.rsplit(b")", 1)[1].split()[0] != b"Z"
def children(parents):
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read(entry, "stat")
            if stat and int(stat.rsplit(b")", 1)[1].split()[1]) in parents:
                found.add(int(entry))
    return found
while alive(driver):
    pids |= children(pids)  # the agents and workers the raylet starts outlive it: note them while it runs
    time.sleep(0.5)
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in pids:
        if b"ray" in read(pid, "cmdline"):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
    time.sleep(2)
"""


def watch_driver(ray):
    """Start the watchdog of the Ray processes this process started (None where it cannot run: not
    Linux, or a Ray whose processes this version does not list)."""
    import subprocess

    worker = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(worker, "_global_node", None)
    processes = getattr(node, "all_processes", None)
    if not sys.platform.startswith("linux") or not processes:
        return None
    pids = [str(info.process.pid) for infos in processes.values() for info in infos if getattr(info, "process", None)]
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), *pids], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _gpu_ids() -> list:
    try:
        import ray

        return list(ray.get_gpu_ids())
    except Exception:
        return []


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _remote_cause(type_name: str, message: str) -> Exception:
    """An exception that reads like the one the actor caught (``TypeName: message``)."""
    name = type_name if type_name.isidentifier() else "RemoteError"
    return type(name, (Exception,), {"__module__": __name__})(message)


# -- the executor -----------------------------------------------------------------------------------
def _number(name: str, value: Any, *, minimum: float = 0.0, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise ExecutorError(f"{OPTIONS_TABLE}: {name} must be {kind} >= {minimum:g}{' or left out' if allow_none else ''}, got {value!r}")
    return value


class RayExecutor(Executor):
    """Scores the units on Ray: per target model, a Ray Data pipeline whose actors (``actors`` of
    them, or an autoscaling pool when ``actors`` is left out) each load the model's autoencoder
    once; the driver saves every unit as it comes back.

    Options (the config's ``[executors.ray]`` table):

    - ``address``: left out, start a Ray instance on this machine (or use the one this process has
      already started); ``"auto"`` or ``"ray://head:10001"`` to join a running cluster.
    - ``actors``: actors per target model: a number, ``[min, max]`` for an autoscaling pool, or left
      out for an autoscaling pool of at least one actor (as many as the resources allow).
    - ``num_gpus``: GPUs per actor, fractional allowed (``0.25``: four actors share a GPU); left
      out: 1 when the bench's ``device`` is CUDA, else 0.
    - ``num_cpus``: CPUs per actor (default 1; also the actor's torch threads).
    - ``batch_size``: work items (chunks) handed to an actor per call (default 1).
    - ``decode_cpus``: CPUs per image-decoding task; 0 decodes in the scoring actor; left out: 1 when
      the actors use GPUs, else 0 (decoding tasks need CPUs the actors leave free).
    - ``max_attempts``: times a chunk is tried when its actor dies (default 3); after that its units
      are recorded as failures and left for the next run.
    - ``runtime_env``: Ray's runtime environment for the job (``pip``, ``env_vars``,
      ``working_dir``...), used when this executor starts or joins Ray.
    - ``ray_logs``: show Ray's own logging (its start-up lines, the workers' output) on the console;
      off by default: Ray's errors and aedr's messages are shown either way.
    """

    name = "ray"
    description = "on Ray: one actor pool per target model (a GPU node or a cluster); each unit saved as it comes back"

    def __init__(
        self,
        address: str | None = None,
        actors: int | list[int] | None = None,
        num_gpus: float | None = None,
        num_cpus: float = 1.0,
        batch_size: int = 1,
        decode_cpus: float | None = None,
        max_attempts: int = 3,
        runtime_env: dict | None = None,
        ray_logs: bool = False,
    ):
        if address is not None and not isinstance(address, str):
            raise ExecutorError(f"{OPTIONS_TABLE}: address must be a string (\"auto\", \"ray://host:10001\"), got {address!r}")
        if actors is not None and not isinstance(actors, int):
            if not (isinstance(actors, (list, tuple)) and len(actors) == 2):
                raise ExecutorError(f"{OPTIONS_TABLE}: actors must be a number, [min, max] or left out, got {actors!r}")
            low = _number("actors[0]", actors[0], minimum=1, integer=True)
            high = _number("actors[1]", actors[1], minimum=low, integer=True)
            actors = (low, high)
        elif actors is not None:
            _number("actors", actors, minimum=1, integer=True)
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise ExecutorError(f"{OPTIONS_TABLE}: runtime_env must be a table, got {runtime_env!r}")
        self.address = address
        self.actors = actors
        self.num_gpus = _number("num_gpus", num_gpus, allow_none=True)
        self.num_cpus = _number("num_cpus", num_cpus)
        self.batch_size = _number("batch_size", batch_size, minimum=1, integer=True)
        self.decode_cpus = _number("decode_cpus", decode_cpus, allow_none=True)
        self.max_attempts = _number("max_attempts", max_attempts, minimum=1, integer=True)
        self.runtime_env = dict(runtime_env) if runtime_env else None
        if not isinstance(ray_logs, bool):
            raise ExecutorError(f"{OPTIONS_TABLE}: ray_logs must be true or false, got {ray_logs!r}")
        self.ray_logs = ray_logs
        import_ray()

    # -- setup -------------------------------------------------------------------------------------
    def _gpus_per_actor(self, job: Job) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if str(job.plan.config.device).startswith("cuda") else 0.0

    def _decode_cpus(self, gpus: float) -> float:
        if self.decode_cpus is not None:
            return float(self.decode_cpus)
        return 1.0 if gpus > 0 else 0.0

    def _compute(self):
        from ray.data import ActorPoolStrategy

        if self.actors is None:
            return ActorPoolStrategy(min_size=1, max_size=None)
        if isinstance(self.actors, tuple):
            return ActorPoolStrategy(min_size=self.actors[0], max_size=self.actors[1])
        return ActorPoolStrategy(size=self.actors)

    def _runtime_env(self) -> dict | None:
        """The user's runtime_env; for a Ray started here, the driver's import path goes along too
        (plugins found through ``sys.path`` are found by the workers as well)."""
        env = copy.deepcopy(self.runtime_env) if self.runtime_env else {}
        if self.address is None:
            prefixes = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
            extra = [p for p in sys.path if p and os.path.isdir(p) and not os.path.realpath(p).startswith(prefixes)]
            env_vars = env.setdefault("env_vars", {})
            current = env_vars.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
            paths = list(dict.fromkeys([*extra, *(p for p in current.split(os.pathsep) if p)]))
            if paths:
                env_vars["PYTHONPATH"] = os.pathsep.join(paths)
        return env or None

    def _connect(self) -> bool:
        """Start or join Ray; True when this call started it (and must shut it down)."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        kwargs: dict[str, Any] = {"address": self.address, "runtime_env": self._runtime_env(), "log_to_driver": self.ray_logs,
                                  "logging_level": logging.INFO if self.ray_logs else logging.ERROR}
        if self.address is None:
            kwargs["include_dashboard"] = False
        try:
            ray.init(**kwargs)
        except Exception as exc:
            where = f"at {self.address!r}" if self.address else "on this machine"
            raise ExecutorError(f"{OPTIONS_TABLE}: could not start or join Ray {where}: {_describe(exc)}") from None
        self._watchdog = watch_driver(ray) if self.address is None else None
        return True

    def _disconnect(self, started: bool) -> None:
        """Shut down the Ray this executor started (and its watchdog); nothing for a joined one."""
        if not started:
            return
        import_ray().shutdown()
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:
            watchdog.terminate()
            watchdog.wait()

    def _models(self, job: Job) -> dict[str, bytes]:
        """Every model's pickled recipe: the plan's (one that cannot be pickled is a config error) and
        the others of the bench's plugin set (a method may look them up by name: AEROBLADE's
        detection mode)."""
        from ray import cloudpickle

        plugins = next((s.method.plugins for s in job.plan.runnable if s.method is not None and s.method.plugins is not None), None)
        out: dict[str, bytes] = {}
        for model in job.plan.models:
            try:
                out[model.name] = cloudpickle.dumps(model_recipe(model, plugins))
            except Exception as exc:
                raise ExecutorError(f"{OPTIONS_TABLE}: model {model.name!r} cannot be sent to Ray workers ({_describe(exc)}); "
                                  "register it from an importable plugin module instead") from None
        for entry in plugins.models if plugins is not None else ():
            if entry.name not in out:
                try:
                    out[entry.name] = cloudpickle.dumps(model_recipe(entry.obj, plugins))
                except Exception:
                    pass  # looked up on the worker, in its own plugins, if a method asks for it
        return out

    def _setup(self, job: Job, target: str, models: dict[str, bytes], methods: dict[tuple[str, str], bytes]) -> bytes:
        config = job.plan.config
        return pickle.dumps({
            "target": target,
            "models": models,
            "methods": methods,
            "max_attempts": self.max_attempts,
            "share": bool(config.share_reconstructions),
            "cache_items": 64 * config.chunk_size,
            "threads": scoring_threads(),
        }, protocol=pickle.HIGHEST_PROTOCOL)

    def _methods(self, job: Job) -> dict[tuple[str, str], bytes]:
        from ray import cloudpickle

        out = {}
        for spec in job.plan.runnable:
            try:
                out[spec.key] = cloudpickle.dumps(shipped_method(spec.method))
            except Exception as exc:
                raise ExecutorError(f"{OPTIONS_TABLE}: method {spec.label!r} cannot be sent to Ray workers ({_describe(exc)})") from None
        return out

    # -- running -----------------------------------------------------------------------------------
    def run(self, job: Job) -> list[Failure]:
        self.job = job
        self.failed: dict[tuple, Failure] = {}
        self._lost_units: dict[tuple, list] = {}
        if not job.plan.units:
            return []
        ray = import_ray()
        gpus = self._gpus_per_actor(job)
        if gpus > 0 and not str(job.plan.config.device).startswith("cuda"):
            job.console.print(f"[yellow]note:[/] {OPTIONS_TABLE} num_gpus = {gpus:g} but the bench's device is "
                              f"{markup(job.plan.config.device)}: the methods run on that device")
        t0 = time.perf_counter()
        started = self._connect()
        try:
            models = self._models(job)
            methods = self._methods(job)
            by_target: dict[str, list[tuple[int, Unit]]] = {}
            for index, unit in enumerate(job.plan.units):
                by_target.setdefault(unit.target, []).append((index, unit))
            for target, units in by_target.items():
                self._run_target(ray, target, units, self._setup(job, target, models, methods), gpus)
        finally:
            job.stats.scoring_seconds += time.perf_counter() - t0
            self._disconnect(started)
        return list(self.failed.values())

    def _parallelism(self, ray, gpus: float) -> float:
        """About how many actors work at once (to turn measured seconds into an ETA)."""
        if isinstance(self.actors, int):
            return float(self.actors)
        try:
            total = ray.cluster_resources()
            fit = [total.get("CPU", 1.0) / self.num_cpus] if self.num_cpus > 0 else []
            if gpus > 0:
                fit.append(total.get("GPU", 0.0) / gpus)
            n = math.floor(min(fit)) if fit else 1
        except Exception:
            n = 1
        if isinstance(self.actors, tuple):
            n = min(max(n, self.actors[0]), self.actors[1])
        return float(max(1, n))

    def _run_target(self, ray, target: str, units: list[tuple[int, Unit]], setup: bytes, gpus: float) -> None:
        job = self.job
        job.progress.unit(f"starting Ray actors for {target}", target)
        items = work_items(units)
        by_index = dict(units)
        ledger = ray.remote(num_cpus=0)(AttemptLedger).remote()
        done: set[int] = set()
        self._parallel = max(1.0, self._parallelism(ray, gpus))
        error: BaseException | None = None
        try:
            with _quiet_ray_data():
                rows = iter(self._pipeline(ray, items, setup, ledger, gpus).iter_rows())
                try:
                    for row in rows:
                        self._receive(by_index, done, int(row["unit"]), pickle.loads(row["payload"]))
                except (KeyboardInterrupt, OSError):
                    raise
                except Exception as exc:  # the pipeline itself failed: what came back is saved
                    error = exc
                finally:
                    close = getattr(rows, "close", None)
                    if close is not None:
                        close()
            try:
                retried = ray.get(ledger.retried.remote())
            except Exception:
                retried = {}
        finally:
            ray.kill(ledger)
        if retried:
            job.console.print(f"[yellow]note:[/] Ray: {len(retried)} chunk(s) under {markup(target)} were tried again after their actor died")
        why = f"the Ray pipeline failed ({_describe(error)})" if error is not None else "Ray did not return them (see Ray's error above)"
        for index, unit in units:
            if index not in done:
                self._lost(unit, why)
        self._report_lost()

    def _pipeline(self, ray, items: list[WorkItem], setup: bytes, ledger, gpus: float):
        """The target's Ray Data pipeline: its work items, the optional decoding tasks, the actors."""
        from ray import cloudpickle

        # (cloudpickle: a perturbed image's ref carries its perturbation chain, whose classes may be
        # defined where plain pickle cannot reach them)
        ds = ray.data.from_items(
            [{"item": it.item, "payload": cloudpickle.dumps(it)} for it in items],
            override_num_blocks=len(items),
        )
        context = _quiet(ds)  # this pipeline's own copy
        context.max_errored_blocks = -1  # a chunk that cannot be scored is reported, the others go on
        decode = self._decode_cpus(gpus)
        if decode > 0:
            ds = ds.map_batches(decode_images, batch_size=1, num_cpus=decode, batch_format="numpy")
        return ds.map_batches(
            ChunkScorer,
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=self._compute(),
            num_cpus=self.num_cpus,
            num_gpus=gpus,
            fn_constructor_kwargs={"setup": setup, "ledger": ledger},
        )

    def score_files(self, task):
        """``aedr score --executor ray``: see :func:`stream_on_ray`."""
        return stream_on_ray(self, task)

    def _receive(self, by_index: dict[int, Unit], done: set[int], index: int, outcome: tuple) -> None:
        job = self.job
        if index in done or index not in by_index:
            return  # a duplicate (a chunk Ray ran again after it came back): saved once
        done.add(index)
        unit = by_index[index]
        spec = unit.method
        kind = outcome[0]
        job.progress.unit(f"{spec.label} · {unit.target} ← {unit.sets}", unit.target)
        if kind == "ok":
            _, rows, unscored, seconds, hits, misses = outcome
            save_rows(job, rows)
            job.stats.cache_hits += hits
            job.stats.cache_misses += misses
            n = len(unit.refs) - unscored
            job.progress.scored(spec.key, n, seconds / self._parallel)
            if unscored:
                job.progress.dropped(spec.key, unscored)
            if job.callback is not None and n:
                job.callback(ProgressEvent(spec.name, unit.target, unit.sets, n, job.stats.scored))
        elif kind == "failed":
            _, type_name, message, remaining = outcome
            if (spec.key, unit.target) in self.failed:
                job.progress.dropped(spec.key, remaining)
            else:
                record_failure(job, self.failed, unit, UnitFailed(_remote_cause(type_name, message), remaining))
        elif kind == "dropped":
            job.progress.dropped(spec.key, outcome[1])
        else:
            self._lost(unit, outcome[1])

    def _lost(self, unit: Unit, why: str) -> None:
        """A unit Ray could not score: left unsaved (the next run computes it), reported per method."""
        entry = self._lost_units.setdefault((unit.method.key, unit.target), [unit, 0, 0, why])
        entry[1] += 1
        entry[2] += len(unit.refs)
        self.job.progress.dropped(unit.method.key, len(unit.refs))

    def _report_lost(self) -> None:
        for (key, target), (unit, n_units, n_images, why) in self._lost_units.items():
            error = f"UnitLost: {n_units} unit(s), {n_images} image(s) not scored: {why}; rerun to score them (saved work is kept)"
            self.job.console.print(f"[yellow]warning:[/] {markup(unit.method.label)} under {markup(target)}: {markup(error)}")
            if (key, target) not in self.failed:
                self.failed[(key, target)] = Failure(unit.method.name, unit.method.label, target, error)
        self._lost_units.clear()


# -- aedr score --executor ray: files into parquet shards ------------------------------------------
def _paths(batch: dict) -> list:
    """The batch's file paths (sent as bytes: any name the file system allows travels unchanged)."""
    return [os.fsdecode(bytes(p)) for p in batch["path"]]


def decode_files(batch: dict, load_options: dict | None = None) -> dict:
    """CPU stage of file scoring: each file read and decoded once (``payload``: the pickled image,
    or the pickled reason the file cannot be used)."""
    from ..stream import load_paths

    payloads = []
    for path in _paths(batch):
        images, skipped = load_paths([path], load_options)
        payloads.append(pickle.dumps(images[0] if images else skipped[0], protocol=pickle.HIGHEST_PROTOCOL))
    return {"path": batch["path"], "payload": _object_array(payloads)}


def scoring_threads() -> int:
    """The driver's torch thread count: every actor scores with it, because a convolution's result
    depends on how many threads share its sums (in the last bits), and the rows must be the same
    whichever executor computed them (the local executor scores with it in the driver)."""
    import torch

    return torch.get_num_threads()


def _actor_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _on_assigned_gpu(method):
    """A method set to ``cuda:N`` runs on the GPU Ray assigned to this actor (``cuda``)."""
    if _gpu_ids() and str(method.options.device).startswith("cuda:"):
        method.options = dataclasses.replace(method.options, device="cuda")
    return method


def shipped_method(method):
    """A copy of a method as it travels to actors: without its plugin set (modules and locks do not
    pickle); each actor gives it its own model lookup."""
    method = copy.copy(method)
    method.plugins = None
    return method


def _quiet(ds):
    """A pipeline's own context: no progress bars or start-up notes of Ray Data's."""
    context = ds.context
    context.enable_progress_bars = False
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    return context


class FileScorer:
    """The file-scoring stage's callable class: one per actor; rebuilds the model and the method
    once, loads the autoencoder once, and turns a batch of files (or of images the CPU stage
    decoded) into the rows :func:`aedr.stream.score_loaded` makes. A failure is caught here and
    becomes an error row for each of the batch's files; a batch whose actor died ``max_attempts``
    times (counted by the ledger, as for the bench's chunks) becomes error rows too, and the run
    goes on (a rerun tries those files again)."""

    def __init__(self, setup: bytes, ledger: Any):
        from ray import cloudpickle

        self.ledger = ledger
        s = pickle.loads(setup)
        self.max_attempts: int = s["max_attempts"]
        _actor_threads(s["threads"])
        self.load_options = s["load_options"]
        self.perturbations, self.seed = cloudpickle.loads(s["perturbations"]), s["seed"]
        models = ActorModels(s["models"])
        self.model = models.model(s["target"])
        self.method = _on_assigned_gpu(cloudpickle.loads(s["method"]))
        self.method.plugins = models
        self.method.autoencoder(self.model)

    def __call__(self, batch: dict) -> dict:
        from ..stream import COLUMNS

        frame = self._rows(batch)
        return {c: (frame[c].to_numpy(dtype=float) if c == "score" else _object_array(list(frame[c]))) for c in COLUMNS}

    def _rows(self, batch: dict):
        import ray

        from ..images import LoadedImage
        from ..scoring import Skip
        from ..stream import load_paths, score_loaded

        paths = _paths(batch)
        try:
            attempt = ray.get(self.ledger.begin.remote(paths[0]))[0] if paths else 1
        except Exception:  # the ledger is gone: score anyway
            attempt = 1
        if attempt > self.max_attempts:
            failed = f"its Ray actor died during each of {self.max_attempts} attempt(s) at this shard"
        else:
            try:
                if "payload" in batch:
                    decoded = [pickle.loads(p) for p in batch["payload"]]
                    images = [d for d in decoded if isinstance(d, LoadedImage)]
                    skipped = [d for d in decoded if not isinstance(d, LoadedImage)]
                else:
                    images, skipped = load_paths(paths, self.load_options)
                return score_loaded(self.model, self.method, images, skipped, self.perturbations, self.seed)
            except Exception as exc:
                failed = f"scoring failed on the Ray worker ({_describe(exc)})"
        return score_loaded(self.model, self.method, [], [Skip(p, failed) for p in paths], self.perturbations, self.seed)


def stream_on_ray(executor: "RayExecutor", task: Any) -> Any:
    """:meth:`RayExecutor.score_files`: a window of files at a time through CPU decoding tasks
    (``decode_cpus``) and an actor pool (one per window); the driver writes each block that comes
    back as a shard. An actor that dies is restarted by Ray and its batch tried again, up to
    ``max_attempts`` times in all (the ledger counts them, as for the bench's chunks); then its
    files get error rows and the run goes on."""
    from ray import cloudpickle

    import aedr

    from ..stream import StreamFailed, StreamReport, streaming, write_shard

    ray = import_ray()
    report = StreamReport()
    t0 = time.perf_counter()
    device = str(task.method.options.device)
    gpus = float(executor.num_gpus) if executor.num_gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
    decode = executor._decode_cpus(gpus)
    try:
        recipes = {task.model.name: cloudpickle.dumps(model_recipe(task.model, task.method.plugins or aedr.get_plugins()))}
        setup = pickle.dumps({"target": task.model.name, "models": recipes, "method": cloudpickle.dumps(shipped_method(task.method)),
                              "load_options": dict(task.load_options), "threads": scoring_threads(),
                              "perturbations": cloudpickle.dumps(list(task.perturbations)), "seed": task.seed,
                              "max_attempts": executor.max_attempts}, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise ExecutorError(f"{OPTIONS_TABLE}: model {task.model.name!r} or its method cannot be sent to Ray workers ({_describe(exc)})") from None
    with streaming(task) as (shards, pending):
        started = executor._connect()
        ledger = None
        try:
            # Ray Data restarts a dead actor and retries its batch for ever; the ledger caps the tries
            ledger = ray.remote(num_cpus=0)(AttemptLedger).remote()
            with _quiet_ray_data():
                for window in pending.windows():
                    ds = ray.data.from_items([{"path": os.fsencode(p)} for p in window],
                                             override_num_blocks=max(1, math.ceil(len(window) / task.shard_size)))
                    _quiet(ds)
                    if decode > 0:
                        ds = ds.map_batches(decode_files, batch_size=task.shard_size, num_cpus=decode, batch_format="numpy",
                                            fn_kwargs={"load_options": dict(task.load_options)})
                    ds = ds.map_batches(FileScorer, batch_size=task.shard_size, batch_format="numpy", compute=executor._compute(),
                                        num_cpus=executor.num_cpus, num_gpus=gpus,
                                        fn_constructor_kwargs={"setup": setup, "ledger": ledger})
                    try:
                        for batch in ds.iter_batches(batch_size=None, batch_format="pandas"):
                            if len(batch):
                                write_shard(shards, pending.complete(batch), report)
                                if task.progress is not None:
                                    task.progress(batch["image"].nunique())  # files, not their perturbed copies
                    except (KeyboardInterrupt, OSError, StreamFailed):
                        raise
                    except Exception as exc:  # the pipeline failed: what came back is saved
                        raise StreamFailed(f"the Ray pipeline failed ({_describe(exc)}); the {report.shards} shard(s) written are kept: "
                                           "rerun the same command to score the rest") from exc
        finally:
            report.already = pending.already
            report.seconds = time.perf_counter() - t0
            if ledger is not None:
                ray.kill(ledger)
            executor._disconnect(started)
    return report


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's progress and execution notes stay out of aedr's console (its errors do not)."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray(\.|$)")
            yield
    finally:
        logger.setLevel(level)
