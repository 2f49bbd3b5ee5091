"""Scoring on Ray: one node with several GPUs, or a cluster.

:class:`RayExecutor` (``executor = "ray"``, ``aedr score --executor ray``) maps work items to
outcomes as a Ray Data pipeline per target model:

- consecutive work items of one group (a bench chunk: the units of every method scoring it; a
  stream shard: its clean and perturbed copies) travel together as one packet, so one actor loads
  their images once and computes their first reconstructions once, as the local executor does;
- optionally, a CPU task stage decodes a packet's images (:func:`aedr.kernel.preload`) before it
  reaches an actor (``decode_cpus``);
- a callable-class stage on an actor pool (``ray.data.ActorPoolStrategy``) scores them: each actor
  rebuilds the target model and the methods once, loads the model's autoencoder once, and scores
  each item with :func:`aedr.kernel.score_item`, the one place scores are computed, which records
  every failure in the outcome instead of raising;
- the outcomes stream back to the driver, whose books (the bench's, the stream's) save them.

One retry mechanism: an actor that dies is restarted by Ray and the packet it was scoring is tried
again; a small ledger actor counts the tries, and after ``max_attempts`` the packet's items come back
as ``lost`` outcomes (their work is left for the next run). Failures inside a method never kill an
actor: they are caught by the kernel and come back as ``failed`` outcomes (see docs/scale.md).

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
import types
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Iterator

from .executors import Executor, ExecutorError
from .images import LoadedImage
from .kernel import ItemScorer, Outcome, Progress, Scoring, WorkItem, preload, scoring_threads
from .models import ModelPlugin
from .plugins import get_plugins
from .text import console as text_console
from .text import markup

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
                self._built[name] = get_plugins().model(name)
        return self._built[name]


@dataclass
class Packet:
    """Consecutive work items of one group, as they travel to an actor (``number``: the packet's
    place in its pipeline, what the ledger counts tries of); ``memo``: their images, when a decoding
    stage loaded them."""

    number: int
    group: Hashable
    items: list[WorkItem]
    memo: dict[Hashable, LoadedImage] = field(default_factory=dict)


def packets(items: Iterable[WorkItem]) -> list[Packet]:
    out: list[Packet] = []
    for item in items:
        if not out or out[-1].group != item.group:
            out.append(Packet(len(out), item.group, []))
        out[-1].items.append(item)
    return out


# -- what runs on Ray -------------------------------------------------------------------------------
class AttemptLedger:
    """One small actor per pipeline: how many times each packet started (an actor that dies is
    restarted and its packet tried again), and which methods failed under the target (their other
    items are dropped by every actor, as the drivers drop them). The one retry mechanism."""

    def __init__(self):
        self.attempts: dict[Any, int] = {}
        self.failed: set[tuple[str, str]] = set()

    def begin(self, packet: Any) -> tuple[int, list[tuple[str, str]]]:
        self.attempts[packet] = self.attempts.get(packet, 0) + 1
        return self.attempts[packet], sorted(self.failed)

    def fail(self, key: tuple[str, str]) -> None:
        self.failed.add(tuple(key))

    def retried(self) -> dict[Any, int]:
        return {k: v for k, v in self.attempts.items() if v > 1}


def decode_packets(batch: dict) -> dict:
    """CPU stage: each packet's images read and decoded once (:func:`aedr.kernel.preload`); an image
    that cannot be read is left out: scoring tries it again and records why."""
    from ray import cloudpickle

    payloads = []
    for blob in batch["payload"]:
        packet: Packet = cloudpickle.loads(blob)
        packet.memo = preload(packet.items)
        payloads.append(cloudpickle.dumps(packet))
    return {"packet": batch["packet"], "payload": _object_array(payloads)}


def _object_array(values: list):
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class PacketScorer:
    """The scoring stage's callable class: one instance per actor, for one target model. Built once
    per actor (the model and the methods rebuilt from what the driver sent, each method's
    autoencoder loaded once); called with packets, it returns their items' outcomes, pickled."""

    def __init__(self, setup: bytes, ledger: Any):
        from ray import cloudpickle

        self.ledger = ledger
        self.errors: dict[Any, str] = {}  # a method key, or the target, -> why it cannot run here
        s = pickle.loads(setup)
        _actor_threads(s["threads"])
        self.target, self.max_attempts = s["target"], s["max_attempts"]
        self.failed: set[tuple[str, str]] = set()
        models, methods = ActorModels(s["models"]), {}
        try:
            model = models.model(self.target)
        except Exception as exc:
            self.errors[self.target] = f"model {self.target!r} could not be rebuilt on the Ray worker ({_describe(exc)}); " \
                "install aedr and the model's plugin on every node"
            return
        for key, blob in s["methods"].items():
            try:
                methods[key] = _on_assigned_gpu(cloudpickle.loads(blob))
                methods[key].plugins = models
                methods[key].autoencoder(model)  # loaded once per actor
            except Exception as exc:
                self.errors[key] = f"the method could not be set up on the Ray worker ({_describe(exc)})"
        self.scorer = ItemScorer(Scoring({self.target: model}, methods, s["share"], s["cache_items"]))

    def __call__(self, batch: dict) -> dict:
        from ray import cloudpickle

        outcomes = []
        for blob in batch["payload"]:
            packet: Packet = cloudpickle.loads(blob)
            outcomes += [pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL) for o in self._score(packet)]
        return {"payload": _object_array(outcomes)}

    def _begin(self, packet: Packet) -> int:
        import ray

        try:
            attempt, failed = ray.get(self.ledger.begin.remote(packet.number))
        except Exception:  # the ledger is gone: score anyway
            return 1
        self.failed.update(tuple(k) for k in failed)
        return attempt

    def _score(self, packet: Packet) -> Iterator[Outcome]:
        if self._begin(packet) > self.max_attempts:
            why = f"their Ray actor died during each of {self.max_attempts} attempt(s)"
            yield from (Outcome(item.index, "lost", error=why) for item in packet.items)
            return
        if self.target not in self.errors:
            self.scorer.enter(packet.group, packet.memo)
        for item in packet.items:
            error = self.errors.get(self.target) or self.errors.get(item.method)
            if error is not None:
                yield Outcome(item.index, "failed", error=f"RuntimeError: {error}")
            elif item.method in self.failed:
                yield Outcome(item.index, "dropped")
            else:
                outcome = self.scorer(item)
                if outcome.status == "failed":
                    self._fail(item.method)
                yield outcome

    def _fail(self, key: tuple[str, str]) -> None:
        self.failed.add(key)
        try:
            self.ledger.fail.remote(key)
        except Exception:
            pass


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


def _number(name: str, value: Any, *, minimum: float = 0.0, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value < minimum:
        kind = "a whole number" if integer else "a number"
        raise ExecutorError(f"{OPTIONS_TABLE}: {name} must be {kind} >= {minimum:g}{' or left out' if allow_none else ''}, got {value!r}")
    return value


class RayExecutor(Executor):
    """Scores work items on Ray: per target model, a Ray Data pipeline whose actors (``actors`` of
    them, or an autoscaling pool when ``actors`` is left out) each load the model's autoencoder
    once; outcomes are yielded as they come back.

    Options (the config's ``[executors.ray]`` table):

    - ``address``: left out, start a Ray instance on this machine (or use the one this process has
      already started); ``"auto"`` or ``"ray://head:10001"`` to join a running cluster.
    - ``actors``: actors per target model: a number, ``[min, max]`` for an autoscaling pool, or left
      out for an autoscaling pool of at least one actor (as many as the resources allow).
    - ``num_gpus``: GPUs per actor, fractional allowed (``0.25``: four actors share a GPU); left
      out: 1 when the bench's ``device`` is CUDA, else 0.
    - ``num_cpus``: CPUs per actor (default 1; also the actor's torch threads).
    - ``batch_size``: packets (a chunk's or a shard's items) handed to an actor per call (default 1).
    - ``decode_cpus``: CPUs per image-decoding task; 0 decodes in the scoring actor; left out: 1 when
      the actors use GPUs, else 0 (decoding tasks need CPUs the actors leave free).
    - ``max_attempts``: times a packet is tried when its actor dies (default 3); after that its
      items come back ``lost`` and are left for the next run.
    - ``runtime_env``: Ray's runtime environment for the job (``pip``, ``env_vars``,
      ``working_dir``...), used when this executor starts or joins Ray.
    - ``ray_logs``: show Ray's own logging (its start-up lines, the workers' output) on the console;
      off by default: Ray's errors and aedr's messages are shown either way.
    """

    name = "ray"
    description = "on Ray: one actor pool per target model (a GPU node or a cluster); each item saved as it comes back"

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

    # -- running -----------------------------------------------------------------------------------
    def map(self, items: Iterable[WorkItem], scoring: Scoring, progress: Progress | None = None) -> Iterator[Outcome]:
        """A pipeline per run of consecutive items of one target (at most ``WINDOW`` items each, so a
        stream of files is taken a window at a time); every item comes back as an outcome."""
        ray = import_ray()
        gpus = self._gpus_per_actor(scoring)
        if gpus > 0 and not scoring.device.startswith("cuda"):
            text_console(stderr=True).print(f"[yellow]note:[/] {OPTIONS_TABLE} num_gpus = {gpus:g} but the methods' device is "
                                            f"{markup(scoring.device)}: they run on that device")
        started = self._connect()
        try:
            models, methods = self._models(scoring), self._methods(scoring)
            self.parallelism = max(1.0, self._parallelism(ray, gpus))
            for target, run in _runs(items):
                setup = self._setup(scoring, target, models, methods)
                yield from self._run_target(ray, target, packets(run), setup, gpus)
        finally:
            self._disconnect(started)

    def _gpus_per_actor(self, scoring: Scoring) -> float:
        if self.num_gpus is not None:
            return float(self.num_gpus)
        return 1.0 if scoring.device.startswith("cuda") else 0.0

    def _models(self, scoring: Scoring) -> dict[str, bytes]:
        """Every model's pickled recipe: the targets' (one that cannot be pickled is an error) and
        the others of the methods' plugin set (a method may look them up by name: AEROBLADE's
        detection mode)."""
        from ray import cloudpickle

        plugins = next((m.plugins for m in scoring.methods.values() if m.plugins is not None), None) or get_plugins()
        out: dict[str, bytes] = {}
        for model in scoring.models.values():
            try:
                out[model.name] = cloudpickle.dumps(model_recipe(model, plugins))
            except Exception as exc:
                raise ExecutorError(f"{OPTIONS_TABLE}: model {model.name!r} cannot be sent to Ray workers ({_describe(exc)}); "
                                    "register it from an importable plugin module instead") from None
        for entry in plugins.models:
            if entry.name not in out:
                try:
                    out[entry.name] = cloudpickle.dumps(model_recipe(entry.obj, plugins))
                except Exception:
                    pass  # looked up on the worker, in its own plugins, if a method asks for it
        return out

    def _methods(self, scoring: Scoring) -> dict[tuple[str, str], bytes]:
        from ray import cloudpickle

        out = {}
        for key, method in scoring.methods.items():
            try:
                out[key] = cloudpickle.dumps(shipped_method(method))
            except Exception as exc:
                raise ExecutorError(f"{OPTIONS_TABLE}: method {method.label!r} cannot be sent to Ray workers ({_describe(exc)})") from None
        return out

    def _setup(self, scoring: Scoring, target: str, models: dict[str, bytes], methods: dict[tuple[str, str], bytes]) -> bytes:
        return pickle.dumps({"target": target, "models": models, "methods": methods, "max_attempts": self.max_attempts,
                             "share": scoring.share_reconstructions, "cache_items": scoring.cache_items,
                             "threads": scoring_threads()}, protocol=pickle.HIGHEST_PROTOCOL)

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

    def _run_target(self, ray, target: str, packs: list[Packet], setup: bytes, gpus: float) -> Iterator[Outcome]:
        """One pipeline: every item of ``packs`` comes back, as its outcome or as ``lost``."""
        ledger = ray.remote(num_cpus=0)(AttemptLedger).remote()
        pending = {item.index for p in packs for item in p.items}
        why = "Ray did not return them (see Ray's error above)"
        try:
            with _quiet_ray_data():
                rows = iter(self._pipeline(ray, packs, setup, ledger, gpus).iter_rows())
                try:
                    for row in rows:
                        outcome = pickle.loads(row["payload"])
                        if outcome.index in pending:
                            pending.discard(outcome.index)
                            yield outcome
                except (KeyboardInterrupt, OSError, GeneratorExit):
                    raise
                except Exception as exc:  # the pipeline itself failed: what came back stands
                    why = f"the Ray pipeline failed ({_describe(exc)})"
                finally:
                    getattr(rows, "close", lambda: None)()
            self._note_retries(ray, ledger, target)
        finally:
            ray.kill(ledger)
        yield from (Outcome(index, "lost", error=why) for index in sorted(pending))

    def _note_retries(self, ray, ledger, target: str) -> None:
        try:
            retried = ray.get(ledger.retried.remote())
        except Exception:
            retried = {}
        if retried:
            text_console(stderr=True).print(f"[yellow]note:[/] Ray: {len(retried)} packet(s) under {markup(target)} "
                                            "were tried again after their actor died")

    def _pipeline(self, ray, packs: list[Packet], setup: bytes, ledger, gpus: float):
        """The target's Ray Data pipeline: its packets, the optional decoding tasks, the actors."""
        from ray import cloudpickle

        # (cloudpickle: a perturbed image carries its perturbation chain, whose classes may be
        # defined where plain pickle cannot reach them)
        ds = ray.data.from_items([{"packet": p.number, "payload": cloudpickle.dumps(p)} for p in packs],
                                 override_num_blocks=len(packs))
        context = _quiet(ds)  # this pipeline's own copy
        context.max_errored_blocks = -1  # a packet that cannot be scored is reported, the others go on
        decode = self._decode_cpus(gpus)
        if decode > 0:
            ds = ds.map_batches(decode_packets, batch_size=1, num_cpus=decode, batch_format="numpy")
        return ds.map_batches(PacketScorer, batch_size=self.batch_size, batch_format="numpy", compute=self._compute(),
                              num_cpus=self.num_cpus, num_gpus=gpus, fn_constructor_kwargs={"setup": setup, "ledger": ledger})


# Items per pipeline at most: what the driver holds in flight. A stream's shard of 256 files is an item,
# so a pipeline takes the stream's default window of 65,536 file names; a bench target's units usually fit in one.
WINDOW = 256


def _runs(items: Iterable[WorkItem]) -> Iterator[tuple[str, list[WorkItem]]]:
    """Consecutive items of one target, ``WINDOW`` at most (a window never splits a group)."""
    run: list[WorkItem] = []
    for item in items:
        if run and (item.target != run[-1].target or (len(run) >= WINDOW and item.group != run[-1].group)):
            yield run[-1].target, run
            run = []
        run.append(item)
    if run:
        yield run[-1].target, run


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
