"""Benchmark configuration: the shipped TOML files, user TOML files and command-line overrides.

A config file has a ``[bench]`` table (what to run, budgets, where to write), one
``[methods.<name>]`` table per method whose options differ from the method's defaults and, for an
executor that takes options, an ``[executors.<name>]`` table::

    extends = "default"          # optional: start from a shipped config (default, standard, paper) or a file

    [bench]
    models = ["zoo-*"]           # names or glob patterns over the registered models
    methods = ["*"]              # names or glob patterns over the registered methods
    n_cal = 32

    [methods.ronan]
    iterations = 20

    [executors.local]            # the default executor takes no options

Precedence: the dataclass defaults < the ``extends`` chain < the file < command-line flags.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from .. import calibration
from ..devices import DeviceError, check_device
from ..fieldtypes import ConfigError, FieldTypeError, check_fields, check_value, field_types
from ..methods.base import unknown_options

SHIPPED = ("default", "standard", "paper", "robustness")
SHIPPED_ORIGIN = "the shipped config"
AUTO = calibration.AUTO


@dataclass
class BenchConfig:
    """Everything that defines a benchmark run. Written verbatim into ``metrics.json``.

    ``real`` / ``real_cal``: a folder or a registered dataset name for the real evaluation images and
    for the real estimation images (used only to choose alpha automatically); ``None`` leaves them out.
    ``n_real``: real evaluation images (default: ``n_eval``). ``alpha``: a float in (0, 1) or ``"auto"``.
    ``batch_size``: images per forward batch for every method (``None``: each method's default;
    ``"auto"``: the largest batch that fits on the device, see :mod:`aedr.batching`).
    ``chunk_size``: images per saved part file (an interrupted run loses at most one chunk).
    ``share_reconstructions``: first reconstructions cached per (target, chunk) and reused by every method.
    ``report``: write ``report.html`` (drawing its figures takes a few seconds).
    ``bootstrap``: resamples of the joint bootstrap behind every interval and paired comparison
    (0: no intervals); ``confidence``: the intervals' level.
    ``executor``: the registered executor that scores the units (``local``: this process);
    ``executor_options``: its constructor's options, from the ``[executors.<name>]`` tables.
    ``perturbations``: perturbation specs (``"jpeg:90,70,50"``, ``"crop:0.9"``, ``"jpeg:75+resize:0.5"``;
    the syntax of :mod:`aedr.perturbations`), applied to the evaluation images of every source; checked
    against the registered kinds when the run is planned. ``calibrate_perturbed``: fit each perturbation's
    thresholds on equally perturbed calibration images (default: the clean thresholds).
    """

    name: str = "custom"
    models: list[str] = field(default_factory=lambda: ["zoo-*"])
    methods: list[str] = field(default_factory=lambda: ["*"])
    real: str | None = "zoo-real-eval"
    real_cal: str | None = "zoo-real-cal"
    n_cal: int = 32
    n_eval: int = 32
    n_real: int | None = None
    alpha: float | str = 0.05
    device: str = "cpu"
    seed: int = 0
    batch_size: int | Literal["auto"] | None = None
    out: str = "aedr-runs/bench"
    chunk_size: int = 16
    share_reconstructions: bool = True
    report: bool = True
    bootstrap: int = 1000
    confidence: float = 0.95
    executor: str = "local"
    perturbations: list[str] = field(default_factory=list)
    calibrate_perturbed: bool = False
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Where each [methods.<name>] table was last set: a file, a shipped config or the overrides.
    # Not part of the run's definition (left out of to_dict).
    method_origins: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    # -- derived -----------------------------------------------------------------------------
    @property
    def auto_alpha(self) -> bool:
        return self.alpha == AUTO

    @property
    def real_eval_count(self) -> int:
        return self.n_eval if self.n_real is None else self.n_real

    def validate(self) -> None:
        for key in ("models", "methods"):  # a single string is a comma-separated list
            if isinstance(getattr(self, key), str):
                setattr(self, key, split_names([getattr(self, key)]))
        if isinstance(self.perturbations, str):  # specs separated by spaces (commas separate levels)
            self.perturbations = self.perturbations.split()
        if [p.strip().lower() for p in self.perturbations] in (["none"], ["off"]):
            self.perturbations = []  # e.g. --perturb none: a config's perturbations left out
        try:
            check_fields(self)  # every value against its declared type: "no" is not a bool
        except FieldTypeError as exc:
            raise ConfigError(str(exc)) from None
        if not self.models:
            raise ConfigError("models: name at least one model (or a pattern such as 'zoo-*')")
        if not self.methods:
            raise ConfigError("methods: name at least one method (or '*')")
        if self.n_cal < 2:
            raise ConfigError(f"n_cal must be >= 2 (a KDE threshold needs two scores), got {self.n_cal}")
        if self.n_eval < 1:
            raise ConfigError(f"n_eval must be >= 1, got {self.n_eval}")
        if self.batch_size is not None and self.batch_size != "auto" and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 or \"auto\", got {self.batch_size}")
        if self.n_real is not None and self.n_real < 0:
            raise ConfigError(f"n_real must be >= 0, got {self.n_real}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.bootstrap != 0 and self.bootstrap < 200:
            raise ConfigError(f"bootstrap must be 0 (no intervals) or at least 200 resamples, got {self.bootstrap}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must be in [0.5, 1), got {self.confidence}")
        self.alpha = parse_alpha(self.alpha)
        try:
            check_device(self.device)
        except DeviceError as exc:
            raise ConfigError(str(exc)) from None
        for key in ("real", "real_cal"):
            value = getattr(self, key)
            if isinstance(value, str) and value.strip().lower() in ("", "none", "no", "off"):
                setattr(self, key, None)

    def check_method_tables(self, methods: Mapping[str, type]) -> None:
        """Check every ``[methods.<name>]`` table against the registered methods (``name -> Method
        class``): a table for a method that is not registered is an error, and so is any option a
        table gives that its method lacks or whose value has the wrong type, whether or not the method
        is selected. Only a shipped config's tables may name methods not installed (optional plugins)."""
        for name, table in self.method_options.items():
            origin = self.method_origins.get(name)
            where = f"[methods.{name}]" + (f" in {origin}" if origin else "")
            cls = methods.get(name)
            if cls is None:
                if origin is not None and origin.startswith(SHIPPED_ORIGIN):
                    continue
                close = [m for m in methods if m.casefold() == name.casefold()]
                hint = f"did you mean [methods.{close[0]}]? " if close else ""
                raise ConfigError(f"{where}: no method {name!r} is registered; {hint}registered methods: {', '.join(methods) or 'none'}")
            unknown = unknown_options(cls, list(table))
            if unknown is not None:
                raise ConfigError(f"{where}: {unknown}")
            try:
                dataclasses.replace(cls.Options(), **self.options_for(name))
            except FieldTypeError as exc:
                raise ConfigError(f"{where}: {exc}") from None

    def options_for(self, method: str) -> dict[str, Any]:
        """The run-wide device, seed and batch size, then the method's own table (which may override them)."""
        common: dict[str, Any] = {"device": self.device, "seed": self.seed}
        if self.batch_size is not None:
            common["batch_size"] = self.batch_size
        return {**common, **self.method_options.get(method, {})}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("method_origins")
        return d


def parse_alpha(value: Any) -> float | str:
    try:
        return calibration.parse_alpha(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def split_names(values: list[str] | tuple[str, ...] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: lists may be given comma-separated or repeated."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return out


BENCH_KEYS = {f.name for f in dataclasses.fields(BenchConfig)} - {"method_options", "method_origins", "executor_options", "name"}


def shipped_path(name: str) -> Path:
    return Path(str(resources.files("aedr.bench") / "configs" / f"{name}.toml"))


def _read(source: str | Path) -> tuple[dict[str, Any], str, Path | None]:
    """Parse a shipped config name or a TOML file path; returns (data, name, path)."""
    text_source = str(source)
    if text_source in SHIPPED and not Path(text_source).exists():
        path = shipped_path(text_source)
        name = text_source
    else:
        path = Path(source)
        name = path.stem
        if not path.is_file():
            raise ConfigError(f"config {source!s}: no such file (shipped configs: {', '.join(SHIPPED)})")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), name, path
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _merge(base: dict[str, Any], data: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(data) - {"extends", "bench", "methods", "executors"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {unknown}; expected [bench], [methods.<name>], [executors.<name>], extends")
    bench = data.get("bench", {})
    if not isinstance(bench, dict):
        raise ConfigError(f"{where}: [bench] must be a table")
    bad = sorted(set(bench) - BENCH_KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown [bench] key(s) {bad}; known: {', '.join(sorted(BENCH_KEYS))}")
    types_ = field_types(BenchConfig)
    for key, value in bench.items():
        if key in ("models", "methods", "perturbations") and isinstance(value, str):
            continue  # a comma-separated list (for perturbations: specs separated by spaces)
        try:
            check_value(key, value, types_[key])
        except FieldTypeError as exc:
            raise ConfigError(f"{where}: [bench] {exc}") from None
    base.update(copy.deepcopy(bench))
    methods = data.get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{where}: [methods.<name>] entries must be tables of option = value")
    for method, options in methods.items():
        base.setdefault("method_options", {}).setdefault(method, {}).update(copy.deepcopy(options))
        base.setdefault("method_origins", {})[method] = where
    executors = data.get("executors", {})
    if not isinstance(executors, dict) or not all(isinstance(v, dict) for v in executors.values()):
        raise ConfigError(f"{where}: [executors.<name>] entries must be tables of option = value")
    for name, options in executors.items():
        base.setdefault("executor_options", {}).setdefault(name, {}).update(copy.deepcopy(options))


def _resolve(source: str | Path, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    data, name, path = _read(source)
    key = str(path.resolve()) if path else name
    if key in seen:
        raise ConfigError(f"config {source}: 'extends' loops back to itself")
    merged: dict[str, Any] = {}
    parent = data.get("extends")
    if parent is not None:
        if not isinstance(parent, str):
            raise ConfigError(f"{path}: extends must be a shipped config name or a file path")
        parent_path = parent
        if parent not in SHIPPED and path is not None and not Path(parent).is_absolute():
            parent_path = str(path.parent / parent)
        merged, _ = _resolve(parent_path, seen + (key,))
    shipped = path == shipped_path(name)
    _merge(merged, data, f"{SHIPPED_ORIGIN} {name!r}" if shipped else str(path))
    return merged, name


def load_config(source: str | Path | None = None, **overrides: Any) -> BenchConfig:
    """The shipped ``default`` config, or ``source`` (shipped name or TOML file), then ``overrides``
    (``None`` values are ignored, so command-line flags can be passed straight through).

    ``method_options`` and ``executor_options`` in overrides are merged per method (executor) into
    the file's tables.
    """
    merged, name = _resolve(source if source is not None else "default")
    extra_options = overrides.pop("method_options", None) or {}
    extra_executor_options = overrides.pop("executor_options", None) or {}
    unknown = sorted(set(overrides) - BENCH_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "real" in given and "real_cal" not in given:
        given["real_cal"] = None  # the file's estimation images belong to the file's real images
    merged.update(given)
    for method, options in extra_options.items():
        merged.setdefault("method_options", {}).setdefault(method, {}).update(options)
        merged.setdefault("method_origins", {})[method] = "the overrides (--option)"
    for executor, options in extra_executor_options.items():
        merged.setdefault("executor_options", {}).setdefault(executor, {}).update(options)
    try:
        return BenchConfig(name=name, **merged)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
