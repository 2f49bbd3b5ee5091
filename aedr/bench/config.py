"""Benchmark configuration: the shipped TOML files, user TOML files and command-line overrides.

A config file has a ``[bench]`` table (what to run, budgets, where to write) and one
``[methods.<name>]`` table per method whose options differ from the method's defaults::

    extends = "default"          # optional: start from a shipped config (default, paper) or a file

    [bench]
    models = ["zoo-*"]           # names or glob patterns over the registered models
    methods = ["*"]              # names or glob patterns over the registered methods
    n_cal = 32

    [methods.ronan]
    iterations = 20

Precedence: the dataclass defaults < the ``extends`` chain < the file < command-line flags.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

SHIPPED = ("default", "paper")
AUTO = "auto"


class ConfigError(ValueError):
    """A configuration the user has to fix (unknown key, wrong type, impossible budget)."""


@dataclass
class BenchConfig:
    """Everything that defines a benchmark run. Written verbatim into ``metrics.json``.

    ``real`` / ``real_cal``: a folder or a registered dataset name for the real evaluation images and
    for the real estimation images (used only to choose alpha automatically); ``None`` leaves them out.
    ``n_real``: real evaluation images (default: ``n_eval``). ``alpha``: a float in (0, 1) or ``"auto"``.
    ``batch_size``: images per forward batch for every method (``None``: each method's default).
    ``chunk_size``: images per saved part file (an interrupted run loses at most one chunk).
    ``share_reconstructions``: first reconstructions cached per (target, chunk) and reused by every method.
    ``report``: write ``report.html`` (drawing its figures takes a few seconds).
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
    batch_size: int | None = None
    out: str = "aedr-runs/bench"
    chunk_size: int = 16
    share_reconstructions: bool = True
    report: bool = True
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        if isinstance(self.models, str):
            self.models = split_names([self.models])
        if isinstance(self.methods, str):
            self.methods = split_names([self.methods])
        if not self.models:
            raise ConfigError("models: name at least one model (or a pattern such as 'zoo-*')")
        if not self.methods:
            raise ConfigError("methods: name at least one method (or '*')")
        for key in ("n_cal", "n_eval", "chunk_size", "seed"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{key} must be an integer, got {value!r}")
        if self.n_cal < 2:
            raise ConfigError(f"n_cal must be >= 2 (a KDE threshold needs two scores), got {self.n_cal}")
        if self.n_eval < 1:
            raise ConfigError(f"n_eval must be >= 1, got {self.n_eval}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.n_real is not None and (not isinstance(self.n_real, int) or self.n_real < 0):
            raise ConfigError(f"n_real must be a non-negative integer, got {self.n_real!r}")
        if self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {self.chunk_size}")
        self.alpha = parse_alpha(self.alpha)
        for key in ("real", "real_cal"):
            value = getattr(self, key)
            if isinstance(value, str) and value.strip().lower() in ("", "none", "no", "off"):
                setattr(self, key, None)
        if not isinstance(self.method_options, dict) or not all(isinstance(v, dict) for v in self.method_options.values()):
            raise ConfigError("[methods.<name>] entries must be tables of option = value")

    def options_for(self, method: str) -> dict[str, Any]:
        """The run-wide device, seed and batch size, then the method's own table (which may override them)."""
        common: dict[str, Any] = {"device": self.device, "seed": self.seed}
        if self.batch_size is not None:
            common["batch_size"] = self.batch_size
        return {**common, **self.method_options.get(method, {})}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_alpha(value: Any) -> float | str:
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"alpha must be a number in (0, 1) or 'auto', got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"alpha must be a number in (0, 1) or 'auto', got {value!r}")
    return float(value)


def split_names(values: list[str] | tuple[str, ...] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: lists may be given comma-separated or repeated."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return out


BENCH_KEYS = {f.name for f in dataclasses.fields(BenchConfig)} - {"method_options", "name"}


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
    unknown = sorted(set(data) - {"extends", "bench", "methods"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {unknown}; expected [bench], [methods.<name>], extends")
    bench = data.get("bench", {})
    if not isinstance(bench, dict):
        raise ConfigError(f"{where}: [bench] must be a table")
    bad = sorted(set(bench) - BENCH_KEYS)
    if bad:
        raise ConfigError(f"{where}: unknown [bench] key(s) {bad}; known: {', '.join(sorted(BENCH_KEYS))}")
    base.update(copy.deepcopy(bench))
    methods = data.get("methods", {})
    if not isinstance(methods, dict) or not all(isinstance(v, dict) for v in methods.values()):
        raise ConfigError(f"{where}: [methods.<name>] entries must be tables of option = value")
    for method, options in methods.items():
        base.setdefault("method_options", {}).setdefault(method, {}).update(copy.deepcopy(options))


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
    _merge(merged, data, str(path))
    return merged, name


def load_config(source: str | Path | None = None, **overrides: Any) -> BenchConfig:
    """The shipped ``default`` config, or ``source`` (shipped name or TOML file), then ``overrides``
    (``None`` values are ignored, so command-line flags can be passed straight through).

    ``method_options`` in overrides are merged per method into the file's tables.
    """
    merged, name = _resolve(source if source is not None else "default")
    extra_options = overrides.pop("method_options", None) or {}
    unknown = sorted(set(overrides) - BENCH_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    if "real" in given and "real_cal" not in given:
        given["real_cal"] = None  # the file's estimation images belong to the file's real images
    merged.update(given)
    for method, options in extra_options.items():
        merged.setdefault("method_options", {}).setdefault(method, {}).update(options)
    try:
        return BenchConfig(name=name, **merged)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
