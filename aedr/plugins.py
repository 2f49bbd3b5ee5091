"""Finding and loading plugins.

Built-in features (the AEDR method, the ``bench`` commands) are plugins registered through the same
hooks as third-party ones; third-party plugins are found through the ``aedr`` entry-point group.

Environment:
- ``AEDR_PLUGINS=name1,name2``: load only these entry-point plugins (built-ins always load).
- ``AEDR_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins at all.
- ``AEDR_PLUGIN_MODULES=pkg.plugin,other``: also load these importable modules as plugins, as if
  they were installed with an entry point of that name (for developing a plugin without installing
  it: put its folder on ``PYTHONPATH``). Not affected by the two variables above.

A plugin that fails to import, or raises inside a hook, is recorded in :attr:`Plugins.info` and
skipped; the others load normally.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import pluggy

from . import hookspecs
from .registry import DuplicateNameError, Lazy, Registry

if TYPE_CHECKING:
    from .executors import Executor
    from .metric import Metric
    from .datasets import ImageSet
    from .methods.base import Method
    from .models import ModelPlugin
    from .perturbations import Chain, Perturbation

ENTRY_POINT_GROUP = "aedr"
ENV_ONLY = "AEDR_PLUGINS"
ENV_NO_AUTOLOAD = "AEDR_DISABLE_PLUGIN_AUTOLOAD"
ENV_MODULES = "AEDR_PLUGIN_MODULES"
BUILTIN_PLUGINS = ("aedr.default_plugins",)


@dataclass
class PluginInfo:
    """What ``aedr plugins`` shows for one plugin."""

    name: str
    module: str
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    perturbations: list[str] = field(default_factory=list)
    executors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


# (hook, registry kind, PluginInfo list), in the order the registries are filled
_REGISTRIES = (
    ("register_models", "model", "models"),
    ("register_methods", "method", "methods"),
    ("register_datasets", "dataset", "datasets"),
    ("register_metrics", "metric", "metrics"),
    ("register_perturbations", "perturbation", "perturbations"),
    ("register_executors", "executor", "executors"),
)


class Plugins:
    """The loaded plugin set: pluggy manager, per-plugin info, and one registry per kind of
    extension (models, methods, datasets, metrics, perturbations, executors).

    A registry is filled the first time it is read (its hook runs then), so that a command needing
    none of them (``aedr --help``) imports no plugin's models or methods. :attr:`info` fills them
    all, so that it lists everything registered and every hook's errors."""

    def __init__(self, manager: pluggy.PluginManager, info: dict[str, PluginInfo]):
        self.manager = manager
        self._info = info
        self._registries: dict[str, Registry] = {}
        self._lock = threading.RLock()

    def _registry(self, listing: str) -> Registry:
        with self._lock:
            if listing not in self._registries:
                hook, kind, _ = next(r for r in _REGISTRIES if r[2] == listing)
                registry: Registry = Registry(kind, check=_CHECKS[listing])
                _run_hook(self.manager, self._info, hook, registry, _CHECKS[listing], listing)
                self._registries[listing] = registry
            return self._registries[listing]

    @property
    def models(self) -> Registry["ModelPlugin"]:
        return self._registry("models")

    @property
    def methods(self) -> Registry[type["Method"]]:
        return self._registry("methods")

    @property
    def datasets(self) -> Registry["ImageSet"]:
        return self._registry("datasets")

    @property
    def metrics(self) -> Registry["Metric"]:
        return self._registry("metrics")

    @property
    def perturbations(self) -> Registry[type["Perturbation"]]:
        return self._registry("perturbations")

    @property
    def executors(self) -> Registry[type["Executor"]]:
        return self._registry("executors")

    @property
    def info(self) -> dict[str, PluginInfo]:
        for _, _, listing in _REGISTRIES:
            self._registry(listing)
        return self._info

    def model(self, name: str) -> "ModelPlugin":
        return self.models.get(name)

    def method(self, name: str, **options: Any) -> "Method":
        """Method ``name`` built with ``options`` (:func:`aedr.build_method`), looking models up in this set."""
        from .methods.base import build_method

        method = build_method(self.methods.get(name), options)
        method.plugins = self
        return method

    def dataset(self, name: str) -> "ImageSet":
        return self.datasets.get(name)

    def perturbation(self, spec: str) -> "Chain":
        """One perturbation from its spec (``jpeg:90``, ``jpeg:75+resize:0.5``)."""
        from .perturbations import parse_perturbation

        return parse_perturbation(spec, self.perturbations)

    def perturbations_for(self, specs: "str | Sequence[str]") -> list["Chain"]:
        """Every perturbation the specs describe (``jpeg:90,70 crop:0.9``)."""
        from .perturbations import parse_perturbations

        return parse_perturbations(specs, self.perturbations)

    def add_commands(self, cli: Any) -> None:
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(cli=cli)
            except Exception as exc:  # a broken plugin never takes the CLI down
                self._info[impl.plugin_name].errors.append(f"register_commands: {_describe(exc)}")


def _run_hook(pm: pluggy.PluginManager, info: dict[str, PluginInfo], hook_name: str, registry: Registry, check, listing: str) -> None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        record = info[impl.plugin_name]

        def register(obj, _record=record) -> None:
            if not isinstance(obj, Lazy):  # a lazy entry is checked when it is loaded
                check(obj)
            name = obj.name
            try:
                registry.add(name, obj, _record.name)
            except DuplicateNameError as exc:
                _record.errors.append(str(exc))
                return
            getattr(_record, listing).append(name)

        try:
            impl.function(register=register)
        except Exception as exc:
            record.errors.append(f"{hook_name}: {_describe(exc)}")


def _check_model(obj: object) -> None:
    from .models import ModelPlugin

    if not isinstance(obj, ModelPlugin):
        raise TypeError(f"register_models expects ModelPlugin instances, got {obj!r}")


def _check_method(obj: object) -> None:
    from .methods.base import Method

    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise TypeError(f"register_methods expects Method subclasses, got {obj!r}")


def _check_dataset(obj: object) -> None:
    from .datasets import ImageSet

    if not isinstance(obj, ImageSet):
        raise TypeError(f"register_datasets expects ImageSet instances, got {obj!r}")


def _check_metric(obj: object) -> None:
    from .metric import Metric, OpenSetMetric

    if not isinstance(obj, (Metric, OpenSetMetric)):
        raise TypeError(f"register_metrics expects aedr.bench.Metric or aedr.bench.OpenSetMetric instances, got {obj!r}")


def _check_perturbation(obj: object) -> None:
    from .perturbations import Perturbation

    if not (isinstance(obj, type) and issubclass(obj, Perturbation) and obj.name):
        raise TypeError(f"register_perturbations expects named aedr.Perturbation subclasses, got {obj!r}")


def _check_executor(obj: object) -> None:
    from .executors import Executor

    if not (isinstance(obj, type) and issubclass(obj, Executor) and obj.name):
        raise TypeError(f"register_executors expects named aedr.Executor subclasses (or aedr.registry.Lazy entries), got {obj!r}")


_CHECKS = {
    "models": _check_model, "methods": _check_method, "datasets": _check_dataset,
    "metrics": _check_metric, "perturbations": _check_perturbation, "executors": _check_executor,
}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _selected_entry_points() -> list[md.EntryPoint]:
    if _env_flag(ENV_NO_AUTOLOAD):
        return []
    eps = list(md.entry_points(group=ENTRY_POINT_GROUP))
    only = os.environ.get(ENV_ONLY)
    if only is not None:
        wanted = {n.strip() for n in only.split(",") if n.strip()}
        eps = [ep for ep in eps if ep.name in wanted]
    return sorted(eps, key=lambda ep: ep.name)


def _listed_modules() -> list[str]:
    return [n.strip() for n in os.environ.get(ENV_MODULES, "").split(",") if n.strip()]


def load_plugins(
    *, entry_points: bool = True, extra: Iterable[ModuleType | object] = ()
) -> Plugins:
    """Load built-ins, entry-point plugins and ``AEDR_PLUGIN_MODULES`` (unless ``entry_points`` is
    False) and ``extra`` plugin objects."""
    pm = pluggy.PluginManager("aedr")
    pm.add_hookspecs(hookspecs)
    info: dict[str, PluginInfo] = {}

    def add(name: str, obj: object, module: str, version: str | None, builtin: bool) -> None:
        record = info.setdefault(name, PluginInfo(name, module, version, builtin))
        try:
            pm.register(obj, name=name)
            record.hooks = [h.name for h in pm.get_hookcallers(obj) or []]
        except Exception as exc:
            record.errors.append(f"register: {_describe(exc)}")

    for module_name in BUILTIN_PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # optional built-in not present in this build
                continue
            info[module_name] = PluginInfo(module_name, module_name, None, True, errors=[f"import: {_describe(exc)}"])
            continue
        except Exception as exc:
            info[module_name] = PluginInfo(module_name, module_name, None, True, errors=[f"import: {_describe(exc)}"])
            continue
        add(module_name, module, module_name, None, True)

    for ep in _selected_entry_points() if entry_points else []:
        version = ep.dist.version if ep.dist is not None else None
        try:
            module = ep.load()
        except Exception as exc:
            info[ep.name] = PluginInfo(ep.name, ep.value, version, errors=[f"import: {_describe(exc)}"])
            continue
        add(ep.name, module, ep.value, version, False)

    for module_name in _listed_modules() if entry_points else []:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            info[module_name] = PluginInfo(module_name, module_name, errors=[f"import: {_describe(exc)}"])
            continue
        if not pm.is_registered(module):  # also installed: loaded once, through its entry point
            add(module_name, module, module_name, None, False)

    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        add(name, obj, name, None, False)

    return Plugins(pm, info)


_default: Plugins | None = None


def get_plugins(*, reload: bool = False) -> Plugins:
    """The process-wide plugin set, loaded on first use (the CLI and the top-level API use it)."""
    global _default
    if _default is None or reload:
        _default = load_plugins()
    return _default


def get_model(name: str) -> "ModelPlugin":
    return get_plugins().model(name)


def get_perturbation(spec: str) -> "Chain":
    return get_plugins().perturbation(spec)


def get_method(name: str, **options: Any) -> "Method":
    return get_plugins().method(name, **options)
