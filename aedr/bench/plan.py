"""What a benchmark will do: the selected models and methods, and the units of work.

A unit is one chunk of the images scored under one target model (its own calibration split, every
source's evaluation split, and for automatic alpha the other calibration splits, in that order,
chunked across set boundaries so that batches stay full), scored by one method. Units are ordered
target -> chunk -> method, so that every method scores a chunk right after the others: the chunk's
first reconstructions are computed once (by the first method that needs them) and reused from the
shared cache by the rest.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..methods.base import Method
from ..models import ModelPlugin
from .config import BenchConfig, ConfigError
from .sources import ImageRef, SourceImages
from .store import ScoreRow


@dataclass
class MethodSpec:
    """A configured method, or the reason it cannot run here (``error``)."""

    name: str
    options: dict[str, Any]
    method: Method | None = None
    label: str = ""
    options_hash: str = ""
    description: str = ""
    score_direction: str = "lower score = belonging"
    error: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.options_hash)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "options_hash": self.options_hash,
            "options": self.options,
            "description": self.description,
            "score_direction": self.score_direction,
            "error": self.error,
        }


@dataclass
class Unit:
    """One chunk of the images under one target model, to be scored by one method."""

    method: MethodSpec
    target: str
    chunk: int  # index of the chunk in the plan: units sharing it share images and first passes
    refs: list[ImageRef] = field(default_factory=list)

    @property
    def sets(self) -> str:
        """The image sets the chunk holds, e.g. ``zoo-vq (eval), real (eval)``."""
        return ", ".join(dict.fromkeys(f"{r.source} ({r.split})" for r in self.refs))

    def row(self, ref: ImageRef, score: float, seconds: float, status: str = "ok", error: str = "") -> ScoreRow:
        return ScoreRow(
            self.method.name, self.method.options_hash, self.method.label, self.target, ref.source, ref.kind,
            ref.split, ref.id, ref.content_hash, float(score), float(seconds), status, error,
        )


@dataclass
class Plan:
    config: BenchConfig
    models: list[ModelPlugin]
    methods: list[MethodSpec]
    sources: dict[str, SourceImages]
    units: list[Unit] = field(default_factory=list)
    already_saved: int = 0

    @property
    def runnable(self) -> list[MethodSpec]:
        return [m for m in self.methods if m.error is None]

    @property
    def todo_images(self) -> int:
        return sum(len(u.refs) for u in self.units)

    def image_sets(self, target: str) -> list[tuple[str, str]]:
        """The (source, split) sets scored under ``target``, in plan order."""
        return image_sets_for(target, self.sources, self.config.auto_alpha)

    def todo_by_method(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for u in self.units:
            out[u.method.key] = out.get(u.method.key, 0) + len(u.refs)
        return out


def select_names(patterns: Sequence[str], known: Sequence[str], kind: str, hint: str = "") -> list[str]:
    """Expand names and glob patterns (``zoo-*``, ``*``) over the registered names, keeping order."""
    chosen: list[str] = []
    by_fold = {k.casefold(): k for k in known}
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = [k for k in known if fnmatch.fnmatchcase(k, pattern)]
            if not hits:
                raise ConfigError(f"no {kind} matches {pattern!r}{hint}; registered {kind}s: {', '.join(known) or 'none'}")
        elif pattern in known:
            hits = [pattern]
        elif pattern.casefold() in by_fold:
            hits = [by_fold[pattern.casefold()]]
        else:
            raise ConfigError(f"unknown {kind} {pattern!r}{hint}; registered {kind}s: {', '.join(known) or 'none'}")
        chosen.extend(h for h in hits if h not in chosen)
    return chosen


def build_method(name: str, cls: type[Method], options: dict[str, Any]) -> MethodSpec:
    """Instantiate a method with the config's options; a failure to set up becomes ``error``."""
    known = {f.name for f in dataclasses.fields(cls.Options)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"[methods.{name}]: unknown option(s) {unknown}; {name} has: {', '.join(sorted(known))}")
    spec = MethodSpec(name, dict(options), description=cls.description, score_direction=cls.score_direction)
    try:  # the options themselves: a mistake in the config
        opts = dataclasses.replace(cls.Options(), **options)
        opts.validate()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[methods.{name}]: {exc}") from None
    try:  # setting the method up: what this machine lacks (weights, optional packages)
        method = cls(opts)
    except Exception as exc:
        spec.error = f"{type(exc).__name__}: {exc}"
        spec.label, spec.options_hash = name, ""
        return spec
    spec.method, spec.label, spec.options_hash = method, budget_label(method), method.options_hash()
    spec.options = method.options_dict()
    return spec


BUDGET_OPTIONS = ("iterations",)


def budget_label(method: Method) -> str:
    """The method's label, with its optimisation budget named even when it is the default one."""
    label = method.label
    opts = method.options_dict(include_runtime=False)
    missing = [f"{k}={opts[k]}" for k in BUDGET_OPTIONS if k in opts and f"{k}=" not in label]
    if not missing:
        return label
    if label.endswith(")") and "(" in label:
        return label[:-1] + ", " + ", ".join(missing) + ")"
    return f"{label}(" + ", ".join(missing) + ")"


def image_sets_for(target: str, sources: dict[str, SourceImages], auto_alpha: bool) -> list[tuple[str, str]]:
    """Under target T: T's calibration split, every source's evaluation split and, when alpha is chosen
    automatically, every other source's calibration split (the non-belonging estimation images)."""
    sets = [(target, "cal")]
    sets += [(name, "eval") for name in sources]
    if auto_alpha:
        sets += [(name, "cal") for name, src in sources.items() if name != target and src.cal]
    return sets


def make_units(
    models: Sequence[ModelPlugin],
    methods: Sequence[MethodSpec],
    sources: dict[str, SourceImages],
    config: BenchConfig,
    done: set[tuple[str, str, str, str]],
) -> tuple[list[Unit], int]:
    """Units for every image not yet saved; returns (units, number of image scores already saved)."""
    units: list[Unit] = []
    saved = 0
    chunk_index = 0
    runnable = [m for m in methods if m.error is None]
    for model in models:
        refs = [r for source, split in image_sets_for(model.name, sources, config.auto_alpha) for r in sources[source].split(split)]  # type: ignore[arg-type]
        for start in range(0, len(refs), config.chunk_size):
            chunk = refs[start : start + config.chunk_size]
            for spec in runnable:
                todo = [r for r in chunk if (spec.name, spec.options_hash, model.name, r.content_hash) not in done]
                saved += len(chunk) - len(todo)
                if todo:
                    units.append(Unit(spec, model.name, chunk_index, todo))
            chunk_index += 1
    return units, saved
