"""The results document of a run, ``metrics.json``: its typed parts, written by
``aedr.bench.outputs`` and read back by ``aedr.bench.leaderboard``.

Format ``aedr-bench/3``: ``aedr-bench/2`` with each method's open-set attribution (``openset``:
:class:`OpenSetRecord` per method, perturbation and threshold policy; ``openset_metrics``; the
summaries' ``openset_<metric>`` figures, scope "openset"). Readers also take ``aedr-bench/2`` (no
open-set figures) and ``aedr-bench/1``, the format before metrics had a direction, converting on
reading: its metrics are higher-is-better, a file without a metric list holds the built-in metrics,
a pair without a perturbation is clean. Any other format is refused, naming the file and the format.

Summary figures are named by typed values: a :class:`Scope` (what a mean is over: the model pairs,
the pairs against real images, one target family's pairs, or the mean over the run's
perturbations) and a :class:`ScopedMetric` (one metric over one scope). Their ``key`` is the one
place the text keys of metrics.json (``"pair"``, ``"family:kl"``, ``"pair:accuracy"``) are built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import pandas as pd

from ..files import jsonable
from .metrics import BUILTIN_METRICS, TIMING_COLUMNS, MetricInfo, pairs_columns

FORMAT = "aedr-bench/3"
READS = ("aedr-bench/1", "aedr-bench/2", FORMAT)


class SchemaError(ValueError):
    """A document that is not, or not any longer, a readable aedr bench results file."""


# -- scopes ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scope:
    """What a summary figure is the mean over. ``kind``: "pair" (the ordered model pairs), "real"
    (the targets' pairs against real images), "family" / "real-family" (those of the targets whose
    autoencoder is in ``family``), "robust" (the mean over the run's perturbations) or "openset"
    (a method's open-set attribution over every model at once, ``aedr.bench.openset``)."""

    kind: str
    family: str = ""

    KINDS: ClassVar[tuple[str, ...]] = ("pair", "real", "family", "real-family", "robust", "openset", "hard")
    PAIR: ClassVar["Scope"]
    HARD: ClassVar["Scope"]
    REAL: ClassVar["Scope"]
    ROBUST: ClassVar["Scope"]
    OPENSET: ClassVar["Scope"]

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"scope kind must be one of {', '.join(self.KINDS)}, got {self.kind!r}")
        if bool(self.family) != (self.kind in ("family", "real-family")):
            raise ValueError(f"scope {self.kind!r}: a family is given exactly for 'family' and 'real-family'")

    @property
    def key(self) -> str:
        """Its text in results files and frames: "pair", "real", "robust", "family:<f>", "real-family:<f>"."""
        return f"{self.kind}:{self.family}" if self.family else self.kind

    @classmethod
    def of(cls, scope: "Scope | str") -> "Scope":
        """A scope, or the scope whose ``key`` is ``scope``."""
        if isinstance(scope, Scope):
            return scope
        kind, _, family = str(scope).partition(":")
        return cls(kind, family)

    @classmethod
    def target_family(cls, family: str, *, real: bool = False) -> "Scope":
        return cls("real-family" if real else "family", family)


Scope.PAIR, Scope.REAL, Scope.ROBUST, Scope.OPENSET, Scope.HARD = Scope("pair"), Scope("real"), Scope("robust"), Scope("openset"), Scope("hard")


@dataclass(frozen=True)
class ScopedMetric:
    """One metric over one scope (a method's mean pair accuracy: ``ScopedMetric(Scope.PAIR, "accuracy")``).
    Robust figures (scope "robust") name their metric as :func:`robust_name` does."""

    scope: Scope
    metric: str

    @property
    def key(self) -> str:
        """Its text in results files: "<scope key>:<metric>" (``"pair:accuracy"``, ``"family:kl:auc"``)."""
        return f"{self.scope.key}:{self.metric}"

    @classmethod
    def parse(cls, key: str) -> "ScopedMetric":
        scope, _, metric = key.rpartition(":")
        return cls(Scope.of(scope), metric)


# Robust figures: the metrics averaged over a run's perturbations, over model pairs and against real images.
ROBUST_METRICS = ("accuracy", "auc")


def robust_name(scope: Scope, metric: str) -> str:
    """The name of the robust figure of ``metric`` over ``scope`` (PAIR: the metric's name; REAL: "real_<metric>")."""
    if scope not in (Scope.PAIR, Scope.REAL):
        raise ValueError(f"robust figures are over model pairs or real images, not {scope.key!r}")
    return metric if scope == Scope.PAIR else f"real_{metric}"


ROBUST_FIGURES = tuple(robust_name(sc, m) for sc in (Scope.PAIR, Scope.REAL) for m in ROBUST_METRICS)


# -- a method's summary --------------------------------------------------------------------------------------
@dataclass
class SummaryRecord:
    """One method's summary as metrics.json holds it (``aedr.bench.tables.MethodSummary`` in the file).
    ``pair``, ``real``, ``robust``: figure name -> value; ``intervals`` and ``versus_leader`` keyed by
    ``ScopedMetric.key``. In the file the figures are flat columns: ``pair_<metric>``,
    ``real_<metric>`` per described metric, ``robust_<figure>`` per robust figure and
    ``openset_<metric>`` per open-set metric (``openset_rank``: the rank, with ties, by open-set accuracy)."""

    method: str
    options_hash: str
    label: str
    pair: dict[str, float]
    real: dict[str, float]
    seconds_per_image: float
    n_pairs: int
    n_real_pairs: int
    n_targets: int
    images_timed: int
    family_pair_accuracy: dict[str, float] = field(default_factory=dict)
    family_real_accuracy: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    rank: str = ""
    versus_leader: dict[str, dict[str, Any]] = field(default_factory=dict)
    robust: dict[str, float] = field(default_factory=dict)
    openset: dict[str, float] = field(default_factory=dict)
    openset_rank: str = ""
    n_shared_pairs: int = 0  # pairs of models on one autoencoder: reported apart, in no mean
    hard: dict[str, float] = field(default_factory=dict)  # the means over the hard model pairs
    n_hard_pairs: int = 0

    def record(self) -> dict[str, Any]:
        """The summary as metrics.json holds it (flat figure columns)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        pair, real, robust, openset, hard = d.pop("pair"), d.pop("real"), d.pop("robust"), d.pop("openset"), d.pop("hard")
        head = {k: d.pop(k) for k in ("method", "options_hash", "label")}
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        return {**head, **{f"pair_{k}": v for k, v in pair.items()}, **{f"real_{k}": v for k, v in real.items()},
                **{f"robust_{k}": v for k, v in robust.items()}, **{f"openset_{k}": v for k, v in openset.items()},
                **{f"hard_{k}": v for k, v in hard.items()}, **d}

    @classmethod
    def from_record(cls, record: dict[str, Any], metrics: Sequence[MetricInfo], openset: Sequence[MetricInfo] = ()) -> "SummaryRecord":
        def figures(prefix: str, names) -> dict[str, float]:  # a figure written as null (NaN) is left out
            return {n: float(v) for n in names if _is_number(v := record.get(f"{prefix}_{n}"))}

        names = [m.name for m in metrics]
        intervals = {str(k): (float(v[0]), float(v[1])) for k, v in (record.get("intervals") or {}).items() if v and None not in v}
        return cls(
            method=str(record.get("method")), options_hash=str(record.get("options_hash")), label=str(record.get("label", record.get("method"))),
            pair=figures("pair", names), real=figures("real", names), robust=figures("robust", ROBUST_FIGURES),
            seconds_per_image=_number(record.get("seconds_per_image")), n_pairs=int(record.get("n_pairs") or 0),
            n_real_pairs=int(record.get("n_real_pairs") or 0), n_targets=int(record.get("n_targets") or 0),
            images_timed=int(record.get("images_timed") or 0),
            family_pair_accuracy=dict(record.get("family_pair_accuracy") or {}), family_real_accuracy=dict(record.get("family_real_accuracy") or {}),
            intervals=intervals, rank=str(record.get("rank", "")), versus_leader=dict(record.get("versus_leader") or {}),
            openset=figures("openset", [m.name for m in openset]), openset_rank=str(record.get("openset_rank", "")),
            n_shared_pairs=int(record.get("n_shared_pairs") or 0), hard=figures("hard", names), n_hard_pairs=int(record.get("n_hard_pairs") or 0),
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else float("nan")


# -- open-set attribution --------------------------------------------------------------------------------
@dataclass
class OpenSetRecord:
    """One method's open-set attribution (``aedr.bench.openset``) on one perturbation's images ("" clean)
    under one threshold policy ("clean": tau_T and the tail probabilities from T's clean calibration
    images; "recalibrated": from T's calibration images under the same perturbation).

    ``matrix``: one row per source (``sources``, of ``source_kinds``, with ``n_images`` images each),
    one column per candidate (``candidates``) then "none": the share of the source's images whose
    verdict it is; ``several``: per source, the share accepted by more than one candidate.
    ``figures`` and ``intervals``: every open-set metric by name; ``false_accusation``: per model
    left out of the candidates, (value, low, high); ``oscr_curve``: "false_acceptance" (a grid over
    [0, 1]) and "correct_classification" (the mean over leave-one-model-out folds)."""

    method: str
    options_hash: str
    label: str
    perturbation: str
    policy: str
    candidates: list[str]
    sources: list[str]
    source_kinds: list[str]
    n_images: list[int]
    matrix: list[list[float]]
    several: list[float]
    figures: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    false_accusation: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    oscr_curve: dict[str, list[float]] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["intervals"] = {k: list(v) for k, v in self.intervals.items()}
        d["false_accusation"] = {k: list(v) for k, v in self.false_accusation.items()}
        return d

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "OpenSetRecord":
        def triple(v: Any) -> tuple[float, ...]:
            return tuple(_number(x) for x in v)

        d = {f.name: record.get(f.name) for f in dataclasses.fields(cls)}
        d["matrix"] = [[_number(x) for x in row] for row in d["matrix"] or []]
        d["several"] = [_number(x) for x in d["several"] or []]
        d["figures"] = {str(k): _number(v) for k, v in (d["figures"] or {}).items()}
        d["intervals"] = {str(k): triple(v) for k, v in (d["intervals"] or {}).items()}
        d["false_accusation"] = {str(k): triple(v) for k, v in (d["false_accusation"] or {}).items()}
        d["oscr_curve"] = {str(k): [_number(x) for x in v] for k, v in (d["oscr_curve"] or {}).items()}
        for key in ("candidates", "sources", "source_kinds"):
            d[key] = [str(x) for x in d[key] or []]
        d["n_images"] = [int(x) for x in d["n_images"] or []]
        return cls(**{k: ("" if v is None else v) for k, v in d.items()})


# -- the document ----------------------------------------------------------------------------------------------
@dataclass
class BenchDocument:
    """metrics.json. ``metrics`` describes every metric the pairs and summaries hold (so a leaderboard
    is merged without the plugins that registered them); ``pairs`` are flat rows with the columns of
    ``aedr.bench.metrics.pairs_columns`` (clean pairs, then every perturbation's); the sections
    typed as plain mappings are recorded for people and are not read back."""

    config_name: str
    config: dict[str, Any]
    protocol: dict[str, Any]
    started: str
    finished: str
    run: dict[str, Any]
    provenance: dict[str, Any]
    models: list[dict[str, Any]]
    methods: list[dict[str, Any]]
    image_sets: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    metrics: list[MetricInfo]
    uncertainty: dict[str, Any] | None
    summaries: list[SummaryRecord]
    thresholds: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    robustness: dict[str, Any] | None
    timings: list[dict[str, Any]]
    tables: dict[str, Any]
    score_direction: str = ""
    format: str = FORMAT
    openset_metrics: list[MetricInfo] = field(default_factory=list)
    openset: list[OpenSetRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The document as metrics.json writes it (JSON-ready: no NaN-free guarantee, see ``jsonable``)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["metrics"] = [dataclasses.asdict(m) for m in self.metrics]
        d["summaries"] = [s.record() for s in self.summaries]
        d["openset_metrics"] = [dataclasses.asdict(m) for m in self.openset_metrics]
        d["openset"] = [r.record() for r in self.openset]
        head = {"format": d.pop("format"), "score_direction": d.pop("score_direction")}
        return jsonable({**head, **d})

    @classmethod
    def from_json(cls, doc: Any, where: str) -> "BenchDocument":
        """The document in ``doc`` (read from ``where``, named in errors); aedr-bench/1 is converted."""
        fmt = doc.get("format") if isinstance(doc, dict) else None
        if not isinstance(fmt, str) or not fmt.startswith("aedr-bench/"):
            raise SchemaError(f"{where}: not an aedr bench metrics file")
        if fmt not in READS:
            raise SchemaError(f"{where}: format {fmt!r} is not one this aedr reads ({', '.join(READS)}); it was written by a newer aedr")
        # aedr-bench/1 files written before metrics were described hold the built-in ones
        metrics = [MetricInfo.of(m) for m in doc.get("metrics") or [m.describe() for m in BUILTIN_METRICS]]
        openset_metrics = [MetricInfo.of(m) for m in doc.get("openset_metrics") or []]
        return cls(
            config_name=str(doc.get("config_name", "")), config=dict(doc.get("config") or {}), protocol=dict(doc.get("protocol") or {}),
            started=str(doc.get("started", "")), finished=str(doc.get("finished", "")), run=dict(doc.get("run") or {}),
            provenance=dict(doc.get("provenance") or {}), models=list(doc.get("models") or []), methods=list(doc.get("methods") or []),
            image_sets=list(doc.get("image_sets") or []), failures=list(doc.get("failures") or []), metrics=metrics,
            uncertainty=doc.get("uncertainty"), summaries=[SummaryRecord.from_record(s, metrics, openset_metrics) for s in doc.get("summaries") or []],
            thresholds=list(doc.get("thresholds") or []), pairs=list(doc.get("pairs") or []), robustness=doc.get("robustness"),
            timings=list(doc.get("timings") or []), tables=dict(doc.get("tables") or {}),
            score_direction=str(doc.get("score_direction", "")), format=FORMAT, openset_metrics=openset_metrics,
            openset=[OpenSetRecord.from_record(r) for r in doc.get("openset") or []],
        )

    def pairs_frame(self, *, perturbation: str | None = "") -> pd.DataFrame:
        """The pairs with the declared columns, figures as numbers; only ``perturbation``'s ("" the
        clean pairs; None every pair). A pair without a perturbation is clean."""
        pairs = pd.DataFrame(self.pairs, columns=pairs_columns(self.metrics))
        pairs["perturbation"] = ["" if pd.isna(v) else str(v) for v in pairs["perturbation"]]
        if perturbation is not None:
            pairs = pairs[pairs["perturbation"] == perturbation].reset_index(drop=True)
        for col in [m.name for m in self.metrics] + ["threshold", "alpha"]:
            pairs[col] = pd.to_numeric(pairs[col], errors="coerce")
        return pairs

    def timings_frame(self) -> pd.DataFrame:
        timings = pd.DataFrame(self.timings, columns=TIMING_COLUMNS)
        for col in ("images", "seconds", "seconds_per_image"):
            timings[col] = pd.to_numeric(timings[col], errors="coerce")
        return timings
