"""What a benchmark will do: the selected models and methods, and the units of work.

A unit is one chunk of the images scored under one target model (its own calibration split, every
source's evaluation split, and for automatic alpha the other calibration splits, in that order,
chunked across set boundaries so that batches stay full), scored by one method. Units are ordered
target -> chunk -> method, so that every method scores a chunk right after the others: the chunk's
first reconstructions are computed once (by the first method that needs them) and reused from the
shared cache by the rest.

With perturbations, each target's list goes on with every source's perturbed evaluation images (and,
with ``calibrate_perturbed``, the perturbed calibration images), one perturbation after the other, so
the perturbed images are chunked and shared between methods exactly as the clean ones.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..methods.base import Method, MethodOptionsError, build_method
from ..models import ModelPlugin
from .config import BenchConfig, ConfigError
from .sources import ImageRef, SourceImages
from .store import KEY, ScoreRow

if TYPE_CHECKING:
    import pandas as pd

    from ..perturbations import Chain
    from ..plugins import Plugins


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
    weights: str = ""  # the target's autoencoder fingerprint: part of every row's key

    @property
    def sets(self) -> str:
        """The image sets the chunk holds, e.g. ``zoo-vq (eval), real (eval), real (eval, jpeg:90)``."""
        return ", ".join(dict.fromkeys(f"{r.source} ({r.split}{', ' + r.perturbation if r.perturbation else ''})" for r in self.refs))

    def row(self, ref: ImageRef, score: float, seconds: float, status: str = "ok", error: str = "") -> ScoreRow:
        return ScoreRow(
            self.method.name, self.method.options_hash, self.method.label, self.target, ref.source, ref.kind,
            ref.split, ref.id, ref.content_hash, float(score), float(seconds), status, error, ref.perturbation, self.weights,
        )


@dataclass
class Plan:
    config: BenchConfig
    models: list[ModelPlugin]
    methods: list[MethodSpec]
    sources: dict[str, SourceImages]
    units: list[Unit] = field(default_factory=list)
    already_saved: int = 0
    perturbations: list["Chain"] = field(default_factory=list)
    # perturbation id -> source -> its perturbed images (evaluation split; calibration too with
    # calibrate_perturbed)
    perturbed: dict[str, dict[str, SourceImages]] = field(default_factory=dict)

    @property
    def runnable(self) -> list[MethodSpec]:
        return [m for m in self.methods if m.error is None]

    def scored_sets(self, target: str) -> list[tuple[str, str, str]]:
        """The (perturbation, source, split) sets scored under ``target``, in plan order ("": clean)."""
        return scored_sets_for(target, self.sources, self.config.auto_alpha, self.perturbed)

    def refs(self, perturbation: str, source: str, split: str) -> list[ImageRef]:
        sources = self.perturbed[perturbation] if perturbation else self.sources
        return sources[source].split(split)  # type: ignore[arg-type]

    def shared_pairs(self) -> frozenset[tuple[str, str]]:
        """The (target, source) pairs of two models on one and the same autoencoder (equal
        fingerprints): pairs no autoencoder-based method can separate (``aedr.bench.metrics.pair_kind``)."""
        weights = {m.name: m.autoencoder_fingerprint() for m in self.models}
        return frozenset((t, s) for t in weights for s in weights if t != s and weights[t] == weights[s])

    def hard_pairs(self) -> frozenset[tuple[str, str]]:
        """The hardest third of the model pairs (both orders), by the distance between the two
        models' generated images (:meth:`aedr.ModelPlugin.sample_distance`): chosen without any
        method's score. None when a pair's distance is unknown (then the run has no hard pairs), and
        pairs on one autoencoder never (they are reported apart)."""
        shared = self.shared_pairs()
        names = [m.name for m in self.models]
        models = {m.name: m for m in self.models}
        distance = {}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if (a, b) in shared:
                    continue
                d = models[a].sample_distance(models[b])
                if d is None:
                    return frozenset()
                distance[(a, b)] = float(d)
        hardest = sorted(distance, key=lambda k: (distance[k], k))[: math.ceil(len(distance) / 3)]
        return frozenset(p for a, b in hardest for p in ((a, b), (b, a)))

    def clusters(self) -> dict[str, str]:
        """image hash -> cluster (the photograph a crop was cut from), for the images that belong to one."""
        return {h: c for src in self.sources.values() for h, c in src.clusters().items()}

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


def configure_method(name: str, cls: type[Method], options: dict[str, Any], plugins: "Plugins | None" = None) -> MethodSpec:
    """The method with the config's options (built by :func:`aedr.build_method`). Wrong options are
    a :class:`ConfigError`; a method that cannot be set up here (weights, optional packages) gets
    ``error`` and is left out of the run."""
    spec = MethodSpec(name, dict(options), description=cls.description, score_direction=cls.score_direction)
    try:
        method = build_method(cls, options)
    except MethodOptionsError as exc:
        raise ConfigError(f"[methods.{name}]: {exc}") from None
    except Exception as exc:  # setting the method up: what this machine lacks
        spec.error = f"{type(exc).__name__}: {exc}"
        spec.label, spec.options_hash = name, ""
        return spec
    method.plugins = plugins  # e.g. AEROBLADE's detection models resolve in the bench's plugin set
    spec.method, spec.label, spec.options_hash = method, method.label, method.options_hash()
    spec.options = method.options_dict()
    return spec


def image_sets_for(target: str, sources: dict[str, SourceImages], auto_alpha: bool) -> list[tuple[str, str]]:
    """Under target T: T's calibration split, every source's evaluation split and, when alpha is chosen
    automatically, every other source's calibration split (the non-belonging estimation images)."""
    sets = [(target, "cal")]
    sets += [(name, "eval") for name in sources]
    if auto_alpha:
        sets += [(name, "cal") for name, src in sources.items() if name != target and src.cal]
    return sets


def scored_sets_for(
    target: str, sources: dict[str, SourceImages], auto_alpha: bool, perturbed: dict[str, dict[str, SourceImages]] | None = None
) -> list[tuple[str, str, str]]:
    """Under target T: the clean sets of :func:`image_sets_for`, then for each perturbation the same
    sets among the perturbed ones (every source's evaluation split; the calibration splits only where
    they were perturbed, i.e. with ``calibrate_perturbed``), as (perturbation, source, split)."""
    sets = [("", source, split) for source, split in image_sets_for(target, sources, auto_alpha)]
    for pid, psources in (perturbed or {}).items():
        sets += [(pid, source, split) for source, split in image_sets_for(target, psources, auto_alpha)
                 if source in psources and psources[source].split(split)]  # type: ignore[arg-type]
    return sets


def make_units(
    models: Sequence[ModelPlugin],
    methods: Sequence[MethodSpec],
    sources: dict[str, SourceImages],
    config: BenchConfig,
    done: set[tuple[str, ...]],
    perturbed: dict[str, dict[str, SourceImages]] | None = None,
) -> tuple[list[Unit], int]:
    """Units for every image not yet saved (``done``: saved keys in the store's key order) under the
    target's current weights; returns (units, number of image scores already saved)."""
    units: list[Unit] = []
    saved = 0
    chunk_index = 0
    runnable = [m for m in methods if m.error is None]
    for model in models:
        weights = model.autoencoder_fingerprint()
        refs = [
            r for pid, source, split in scored_sets_for(model.name, sources, config.auto_alpha, perturbed)
            for r in ((perturbed or {})[pid] if pid else sources)[source].split(split)  # type: ignore[arg-type]
        ]
        for start in range(0, len(refs), config.chunk_size):
            chunk = refs[start : start + config.chunk_size]
            for spec in runnable:
                todo = [r for r in chunk if (spec.name, spec.options_hash, model.name, weights, r.perturbation, r.content_hash) not in done]
                saved += len(chunk) - len(todo)
                if todo:
                    units.append(Unit(spec, model.name, chunk_index, todo, weights))
            chunk_index += 1
    return units, saved


# -- selecting what runs ------------------------------------------------------------------------------
def select_models(config: BenchConfig, plugins: "Plugins") -> list[ModelPlugin]:
    hint = " (is the zoo plugin installed? `aedr models` lists the registered models)" if any("zoo" in p for p in config.models) else ""
    names = select_names(config.models, plugins.models.names(), "model", hint)
    return [plugins.model(n) for n in names]


def select_perturbations(config: BenchConfig, plugins: "Plugins") -> list["Chain"]:
    """The config's perturbations parsed against the registered kinds, in order, without duplicates.
    A spec that cannot be parsed (an unknown kind, a bad level) is a :class:`ConfigError` naming it."""
    from ..perturbations import PerturbationError

    chains: dict[str, "Chain"] = {}
    for spec in config.perturbations:
        try:
            for chain in plugins.perturbations_for(spec):
                chains.setdefault(chain.id, chain)
        except PerturbationError as exc:
            message = str(exc).rstrip(".")
            if "Known perturbations" not in message:
                message += f" (kinds: {', '.join(plugins.perturbations.names()) or 'none'})"
            raise ConfigError(f"perturbation {spec!r}: {message}") from None
    return list(chains.values())


def select_methods(config: BenchConfig, plugins: "Plugins") -> list[MethodSpec]:
    config.check_method_tables({n: plugins.methods.get(n) for n in plugins.methods.names()})
    names = select_names(config.methods, plugins.methods.names(), "method")
    return [configure_method(n, plugins.methods.get(n), config.options_for(n), plugins) for n in names]


# -- the plan's rows ----------------------------------------------------------------------------------
# ``perturbation``: "" for a clean image; ``image_hash``: of the pixels scored; ``clean_hash``: of the
# clean image (the same as image_hash for a clean image), which pairs a perturbed image with its original.
PLAN_COLUMNS = ["method", "options_hash", "label", "target", "weights", "target_family", "source", "source_kind", "split",
                "perturbation", "image_id", "image_hash", "clean_hash"]


def plan_frame(plan: Plan) -> "pd.DataFrame":
    """One row per (method, target, perturbation, source, split, image) of the plan."""
    import pandas as pd

    rows = []
    for spec in plan.runnable:
        for model in plan.models:
            weights = model.autoencoder_fingerprint()
            for pid, source, split in plan.scored_sets(model.name):
                for ref in plan.refs(pid, source, split):
                    rows.append((spec.name, spec.options_hash, spec.label, model.name, weights, model.family,
                                 source, ref.kind, split, pid, ref.id, ref.content_hash, ref.base_hash))
    return pd.DataFrame(rows, columns=PLAN_COLUMNS).astype({c: "string" for c in PLAN_COLUMNS})


def plan_scores(plan: Plan, store_rows: "pd.DataFrame") -> "pd.DataFrame":
    """The plan's rows joined with the saved scores (missing work: status "missing", score NaN)."""
    frame = plan_frame(plan)
    saved = store_rows[[*KEY, "score", "seconds", "status", "error"]]
    out = frame.merge(saved, on=list(KEY), how="left")
    out["status"] = out["status"].fillna("missing")
    out["error"] = out["error"].fillna("")
    return out
