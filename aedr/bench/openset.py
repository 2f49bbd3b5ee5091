"""Open-set attribution: "here are the cards of my N models; which one made this image, or none?"

The bench scores every evaluation image of every source (each model's own, the real images) under
every target model. For one method, each target T is a candidate with its threshold tau_T and the
KDE of its calibration scores; an image's verdict is what ``aedr attribute`` answers with one card
per model: the candidates whose score is below their threshold accept it, and the first of them in
``aedr.calibration.typicality_order`` (highest tail probability P(S >= s) under the candidate's
calibration KDE; equal tail probabilities in the run's model order) is the verdict; no acceptance is
"none". The same function orders both, so the bench measures what the command does.

Figures, per method (each source weighs the same in a mean over sources):

* the **attribution matrix**: per source (rows), the share of its images whose verdict is each
  candidate, or "none" (the row sums to 1), and the share accepted by several candidates;
* **closed-set accuracy**: the share of a model's images whose most typical candidate (highest tail
  probability, thresholds ignored) is the model itself, mean over the candidate models;
* **open-set accuracy**: the share of a source's images whose verdict is right (its model; "none"
  for real images and for a model that is not a candidate), mean over every source;
* **false-accusation rate** (leave one model out): model M is removed from the candidates; the
  share of M's images that another candidate accepts, per model and its mean over models;
* **unknown-detection AUROC** and **OSCR**, leave one model out: in fold M the candidates are the
  other models, the known images theirs, the unknown ones M's and the real images; an image's
  knownness is its highest tail probability over the fold's candidates (-1 when none scored it).
  AUROC: P(a known image is more known than an unknown one), ties half. OSCR: the area under the
  correct-classification rate (known images whose most typical candidate is their model, with
  knownness >= delta, over all known images) against the false-acceptance rate of the unknown images
  (knownness >= delta), delta over the whole scale: P(a correctly classified known image is more
  known than an unknown one, ties half) x the closed-set rate of the fold. Both are means over folds.

Every figure is computed on every bootstrap replicate at once (the replicates of the run's joint
bootstrap: the same resampled images for every method, each tau_T and each calibration KDE refitted
on the replicate's calibration images), which gives the intervals and the paired comparisons.
Figures are :class:`aedr.metric.OpenSetMetric` entries (registered like the pair metrics), so a
plugin adds another open-set figure the same way.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd

from ..calibration import kde_tail_probability, typicality_order
from ..metric import OpenSetMetric
from . import vectorised
from .metrics import MetricInfo, Threshold
from .schema import OpenSetRecord, Scope, ScopedMetric
from .stats import BenchBootstrap, SetDraws, ranks_with_ties
from .tables import Table, column_format, estimate, versus_leader

if TYPE_CHECKING:
    from .plan import Plan
    from .tables import MethodSummary

CLEAN, RECALIBRATED = "clean", "recalibrated"  # threshold policies under a perturbation
CURVE_POINTS = 101  # the OSCR curve's false-acceptance grid, 0 .. 1


# -- one method's images under every candidate, on every replicate ----------------------------------------
@dataclass(frozen=True, eq=False)
class OpenSetSample:
    """One method's evaluation images under every candidate, on R rows (row 0 the data, rows 1..B the
    bootstrap replicates). ``scores`` (n, k): image i under candidate j (NaN: not scored);
    ``tau`` (R, k); ``tail`` (R, n, k) tail probabilities; ``counts`` (R, n) each image's multiplicity;
    ``source`` (n,) each image's source (an index into ``sources``); ``truth`` (n,) the candidate
    that made it, -1 for a real image or a model that is not a candidate."""

    candidates: tuple[str, ...]
    sources: tuple[str, ...]
    kinds: tuple[str, ...]
    source: np.ndarray
    truth: np.ndarray
    scores: np.ndarray
    tau: np.ndarray
    tail: np.ndarray
    counts: np.ndarray

    @property
    def rows(self) -> int:
        return self.counts.shape[0]

    @cached_property
    def accepted(self) -> np.ndarray:
        """(R, n, k): candidate j accepts image i (score < tau_j)."""
        with np.errstate(invalid="ignore"):
            return self.scores[None, :, :] < self.tau[:, None, :]

    @cached_property
    def verdict(self) -> np.ndarray:
        """(R, n): the index of the verdict's candidate, -1 for "none"."""
        return verdicts(self.accepted, self.tail)

    @cached_property
    def top(self) -> np.ndarray:
        """(R, n): the most typical candidate, thresholds ignored (-1 when no candidate scored it)."""
        return most_typical(self.tail)

    def rate(self, hit: np.ndarray, images: np.ndarray) -> np.ndarray:
        """(R,): the share of ``images`` (a boolean (n,) mask) where ``hit`` (R, n) holds, each image
        weighted by its count; NaN for a row without such images."""
        w = self.counts * images[None, :]
        total = w.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(total > 0, (w * hit).sum(axis=1) / total, np.nan)

    def per_source(self, hit: np.ndarray, which: Sequence[int] | None = None) -> np.ndarray:
        """(R, S): ``rate`` of ``hit`` within each source of ``which`` (default: every source)."""
        which = range(len(self.sources)) if which is None else which
        return np.stack([self.rate(hit, self.source == s) for s in which], axis=1) if len(which) else np.empty((self.rows, 0))

    @cached_property
    def folds(self) -> list["Fold"]:
        """The leave-one-model-out folds, one per candidate."""
        return leave_one_out(self)

    def model_sources(self) -> list[int]:
        """The sources whose images a candidate made."""
        return sorted({int(s) for s, t in zip(self.source, self.truth) if t >= 0})


def verdicts(accepted: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """The verdict of every image (last axis: candidates): the index of the first accepting candidate in
    ``typicality_order``, -1 where none accepts (``Attribution.attributed_to``'s first model)."""
    order = typicality_order(tail, accepted)
    first = np.take_along_axis(order, np.zeros(order.shape[:-1] + (1,), dtype=np.int64), axis=-1)[..., 0]
    hit = np.take_along_axis(accepted, first[..., None], axis=-1)[..., 0]
    return np.where(hit, first, -1)


def most_typical(tail: np.ndarray) -> np.ndarray:
    """The candidate ranked first by ``typicality_order`` (the closed-set answer), -1 where every
    tail probability is NaN."""
    first = typicality_order(tail)[..., 0]
    seen = np.isfinite(np.take_along_axis(tail, first[..., None], axis=-1)[..., 0])
    return np.where(seen, first, -1)


def _nanmean(stack: np.ndarray, axis: int = 1) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, axis=axis) if stack.shape[axis] else np.full(stack.shape[0], np.nan)


# -- the figures --------------------------------------------------------------------------------------------------
def closed_set_accuracy(sample: OpenSetSample) -> np.ndarray:
    hit = sample.top == sample.truth[None, :]
    return _nanmean(sample.per_source(hit, sample.model_sources()))


def open_set_accuracy(sample: OpenSetSample) -> np.ndarray:
    return _nanmean(sample.per_source(sample.verdict == sample.truth[None, :]))


def false_accusations(sample: OpenSetSample) -> np.ndarray:
    """(R, k): per candidate model M, the share of M's images that another candidate accepts (M
    left out of the candidates); NaN for a model without images, and with a single candidate."""
    k = len(sample.candidates)
    if k < 2:  # no other candidate to accuse
        return np.full((sample.rows, k), np.nan)
    others = sample.accepted & (np.arange(k)[None, None, :] != sample.truth[None, :, None])
    accused = others.any(axis=2)
    return np.stack([sample.rate(accused, sample.truth == j) for j in range(k)], axis=1) if k else np.empty((sample.rows, 0))


def false_accusation_rate(sample: OpenSetSample) -> np.ndarray:
    return _nanmean(false_accusations(sample))


@dataclass(frozen=True)
class Fold:
    """Leave-one-model-out fold ``left``: knownness (R, n), the closed-set answer among the other
    candidates (R, n), and the known and unknown images (n,)."""

    knownness: np.ndarray
    top: np.ndarray
    known: np.ndarray
    unknown: np.ndarray


def leave_one_out(sample: OpenSetSample) -> list[Fold]:
    out = []
    for j in range(len(sample.candidates)):
        tail = sample.tail.copy()
        tail[:, :, j] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            known_ness = np.nan_to_num(np.nanmax(tail, axis=2), nan=-1.0) if tail.shape[2] else np.full(tail.shape[:2], -1.0)
        truth = sample.truth
        out.append(Fold(known_ness, most_typical(tail), (truth >= 0) & (truth != j), (truth < 0) | (truth == j)))
    return out


def _fold_auc(sample: OpenSetSample, fold: Fold, known_weight: np.ndarray) -> np.ndarray:
    """P(a known image, weighted by ``known_weight`` x its count, is more known than an unknown one), ties half."""
    kn, un = fold.knownness[:, fold.known], fold.knownness[:, fold.unknown]
    return vectorised.auc(-kn, -un, belonging_counts=(sample.counts * known_weight)[:, fold.known],
                          other_counts=sample.counts[:, fold.unknown])


def unknown_auroc(sample: OpenSetSample) -> np.ndarray:
    ones = np.ones(sample.counts.shape)
    return _nanmean(np.stack([_fold_auc(sample, f, ones) for f in sample.folds], axis=1) if sample.candidates else np.empty((sample.rows, 0)))


def oscr(sample: OpenSetSample) -> np.ndarray:
    values = []
    for f in sample.folds:
        correct = (f.top == sample.truth[None, :]).astype(np.float64)
        ccr = sample.rate(correct, f.known)
        auc = _fold_auc(sample, f, correct)
        has_unknown = (sample.counts[:, f.unknown].sum(axis=1) > 0)
        values.append(np.where(np.isfinite(ccr) & has_unknown, np.where(ccr > 0, auc * ccr, 0.0), np.nan))
    return _nanmean(np.stack(values, axis=1) if values else np.empty((sample.rows, 0)))


def oscr_curve(sample: OpenSetSample, points: int = CURVE_POINTS) -> dict[str, list[float]]:
    """Row 0's OSCR curve, mean over the folds: at each false-acceptance rate x of a grid over [0, 1],
    the best correct-classification rate of any knownness threshold whose false-acceptance rate is <= x."""
    grid = np.linspace(0.0, 1.0, points)
    curves = []
    for f in sample.folds:
        w = sample.counts[0]
        k, u = f.known & (w > 0), f.unknown & (w > 0)
        if not k.any() or not u.any():
            continue
        kn = f.knownness[0]
        deltas = np.unique(kn[k | u])[::-1]
        correct = k & (f.top[0] == sample.truth)
        ccr = np.array([0.0, *[(w * correct * (kn >= d)).sum() / w[k].sum() for d in deltas]])
        far = np.array([0.0, *[(w * u * (kn >= d)).sum() / w[u].sum() for d in deltas]])
        curves.append([ccr[far <= x + 1e-12].max() for x in grid])
    mean = np.mean(curves, axis=0) if curves else np.full(points, np.nan)
    return {"false_acceptance": [float(x) for x in grid], "correct_classification": [float(y) for y in mean]}


def attribution_matrix(sample: OpenSetSample) -> tuple[np.ndarray, np.ndarray]:
    """Row 0's matrix (S, k + 1): per source the share of its images whose verdict is each candidate,
    then "none"; and (S,) the share accepted by several candidates."""
    v = sample.verdict[:1]
    cols = [sample.per_source(v == j)[0] for j in range(len(sample.candidates))] + [sample.per_source(v == -1)[0]]
    several = sample.per_source(sample.accepted[:1].sum(axis=2) >= 2)[0]
    return np.stack(cols, axis=1), several


BUILTIN_OPENSET_METRICS = (
    OpenSetMetric("open_set_accuracy", "open-set acc %", open_set_accuracy, "pct",
                  "share of images whose verdict is right (real images: none), mean over sources", leaderboard=True),
    OpenSetMetric("false_accusation_rate", "false acc. %", false_accusation_rate, "pct",
                  "a model left out of the candidates: share of its images another candidate accepts, mean over models",
                  leaderboard=True, higher_is_better=False),
    OpenSetMetric("closed_set_accuracy", "closed-set acc %", closed_set_accuracy, "pct",
                  "share of a model's images whose most typical candidate is the model, mean over models"),
    OpenSetMetric("unknown_auroc", "unknown AUROC", unknown_auroc, "auc",
                  "leave one model out: P(a known image is more typical of a candidate than an unknown one), ties half"),
    OpenSetMetric("oscr", "OSCR", oscr, "auc",
                  "leave one model out: area under correct classification against false acceptance of unknowns"),
)


# -- from a bench's scores ------------------------------------------------------------------------------------------
def _set_counts(draws: Mapping[tuple[str, str], SetDraws] | None, key: tuple[str, str], hashes: np.ndarray, rows: int) -> np.ndarray:
    """(rows, len(hashes)): row 0 each image once, then each replicate's counts of the set ``key``
    (an image the draws do not hold counts 0 there)."""
    out = np.ones((rows, hashes.size))
    if rows == 1:
        return out
    d = None if draws is None else draws.get(key)
    out[1:] = 0.0
    if d is not None and d.images.size:
        pos = np.clip(np.searchsorted(d.images, hashes), 0, d.images.size - 1)
        found = d.images[pos] == hashes
        out[1:, found] = d.counts[:, pos[found]]
    return out


def _tails(cal: np.ndarray, cal_counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(R, n): row 0 exactly as a card computes it (``aedr.calibration.kde_tail_probability``), then
    every replicate's refitted KDE."""
    out = np.full((cal_counts.shape[0], values.size), np.nan)
    try:
        out[0] = kde_tail_probability(cal, values)
    except ValueError:  # fewer than 2 distinct calibration scores: no KDE, no tail probability
        return out
    if cal_counts.shape[0] > 1:
        out[1:] = vectorised.kde_tail_probabilities(cal, values, counts=cal_counts[1:])
    return out


@dataclass(frozen=True)
class Candidate:
    """One candidate model of a method: its threshold (row 0) and its calibration scores, named by
    their clean image hashes (what the bootstrap draws are keyed by)."""

    name: str
    threshold: Threshold
    cal: np.ndarray
    cal_hashes: np.ndarray


def build_sample(
    eval_rows: pd.DataFrame, candidates: Sequence[Candidate], sources: Sequence[str], kinds: Sequence[str],
    draws: Mapping[tuple[str, str], SetDraws] | None = None, rows: int = 1,
) -> OpenSetSample:
    """A method's :class:`OpenSetSample` from its evaluation rows (columns source, clean_hash, target,
    score; finite scores) and its candidates; ``draws`` and ``rows`` (1 + replicates) for the bootstrap."""
    names = [c.name for c in candidates]
    table = eval_rows.pivot_table(index=["source", "clean_hash"], columns="target", values="score", aggfunc="first")
    table = table.reindex(columns=names)
    table = table[table.notna().any(axis=1)]
    order = {s: i for i, s in enumerate(sources)}
    table = table.iloc[sorted(range(len(table)), key=lambda i: (order.get(table.index[i][0], len(order)), table.index[i][1]))]
    src = np.array([order[s] for s, _ in table.index], dtype=np.int64)
    hashes = np.array([h for _, h in table.index], dtype=object)
    truth = np.array([names.index(sources[s]) if kinds[s] == "model" and sources[s] in names else -1 for s in src], dtype=np.int64)
    scores = table.to_numpy(dtype=np.float64).reshape(len(table), len(names))
    counts = np.ones((rows, len(table)))
    for s in np.unique(src):
        counts[:, src == s] = _set_counts(draws, (sources[s], "eval"), hashes[src == s], rows)
    tau = np.full((rows, len(names)), np.nan)
    tail = np.full((rows, len(table), len(names)), np.nan)
    for j, c in enumerate(candidates):
        cal_counts = _set_counts(draws, (c.name, "cal"), c.cal_hashes, rows)
        tau[0, j] = c.threshold.threshold
        if rows > 1 and c.cal.size and math.isfinite(c.threshold.alpha):
            tau[1:, j] = vectorised.kde_thresholds(c.cal, c.threshold.alpha, counts=cal_counts[1:])
        tail[:, :, j] = _tails(c.cal, cal_counts, scores[:, j])
    return OpenSetSample(tuple(names), tuple(sources), tuple(kinds), src, truth, scores, tau, tail, counts)


# -- a run's open-set figures -------------------------------------------------------------------------------------
def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


def method_record(sample: OpenSetSample, metrics: Sequence[OpenSetMetric], ids: dict[str, str], confidence: float) -> tuple[OpenSetRecord, dict[str, np.ndarray]]:
    """One method's record (figures on row 0, intervals from the other rows) and each figure's replicates."""
    values = {m.name: np.asarray(m.compute(sample), dtype=np.float64) for m in metrics}
    boot = sample.rows > 1
    matrix, several = attribution_matrix(sample)
    accused = false_accusations(sample)
    record = OpenSetRecord(
        **ids, candidates=list(sample.candidates), sources=list(sample.sources), source_kinds=list(sample.kinds),
        n_images=[int((sample.source == s).sum()) for s in range(len(sample.sources))],
        matrix=matrix.tolist(), several=several.tolist(), figures={n: float(v[0]) for n, v in values.items()},
        intervals={n: _interval(v[1:], confidence) for n, v in values.items()} if boot else {},
        false_accusation={c: (float(accused[0, j]), *(_interval(accused[1:, j], confidence) if boot else (math.nan, math.nan)))
                          for j, c in enumerate(sample.candidates)},
        oscr_curve=oscr_curve(sample),
    )
    return record, {n: v[1:] for n, v in values.items()}


@dataclass
class OpenSetView:
    """Every method's open-set attribution on one perturbation's images ("" clean) under one threshold
    policy; ``replicates``: (method, options_hash) -> figure -> its bootstrap replicates."""

    perturbation: str
    policy: str
    records: list[OpenSetRecord]
    replicates: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)

    def record(self, method: str, options_hash: str) -> OpenSetRecord | None:
        return next((r for r in self.records if (r.method, r.options_hash) == (method, options_hash)), None)


@dataclass
class OpenSet:
    """A run's open-set attribution: the clean view first, then per perturbation one view per threshold
    policy the run's scores allow ("clean" always; "recalibrated" when the perturbed calibration
    images were scored, ``--calibrate-perturbed``)."""

    metrics: list[OpenSetMetric]
    views: list[OpenSetView]
    confidence: float = 0.95
    n_resamples: int = 0
    seed: int = 0

    @property
    def clean(self) -> OpenSetView:
        return self.views[0]

    def records(self) -> list[OpenSetRecord]:
        return [r for v in self.views for r in v.records]

    def infos(self) -> list[MetricInfo]:
        return [MetricInfo.of(m) for m in self.metrics]


@dataclass(frozen=True)
class ViewInputs:
    """What one view is computed from: the evaluation rows, the calibration rows and thresholds of the
    threshold policy, and the bootstrap draws (None: no intervals)."""

    perturbation: str
    policy: str
    eval_rows: pd.DataFrame
    cal_rows: pd.DataFrame
    thresholds: Mapping[tuple[str, str, str], Threshold]
    draws: Mapping[tuple[str, str], SetDraws] | None
    rows: int


def compute_view(inputs: ViewInputs, plan: "Plan", metrics: Sequence[OpenSetMetric], confidence: float) -> OpenSetView:
    """Every runnable method's record on ``inputs``."""
    names = [m.name for m in plan.models]
    sources = list(plan.sources)
    kinds = [plan.sources[s].kind for s in sources]
    view = OpenSetView(inputs.perturbation, inputs.policy, [])
    ev_groups = dict(tuple(inputs.eval_rows.groupby(["method", "options_hash"], sort=False)))
    cal_groups = dict(tuple(inputs.cal_rows.groupby(["method", "options_hash", "target"], sort=False)))
    for spec in plan.runnable:
        rows = ev_groups.get((spec.name, spec.options_hash))
        if rows is None or not len(rows):
            continue
        candidates = []
        for t in names:
            cal = cal_groups.get((spec.name, spec.options_hash, t), inputs.cal_rows.iloc[0:0])
            th = inputs.thresholds.get((spec.name, spec.options_hash, t)) or Threshold(spec.name, spec.options_hash, spec.label, t, math.nan, "", math.nan, 0)
            candidates.append(Candidate(t, th, cal["score"].to_numpy(dtype=np.float64), cal["clean_hash"].to_numpy(dtype=object)))
        sample = build_sample(rows, candidates, sources, kinds, inputs.draws, inputs.rows)
        ids = dict(method=spec.name, options_hash=spec.options_hash, label=spec.label, perturbation=inputs.perturbation, policy=inputs.policy)
        record, reps = method_record(sample, metrics, ids, confidence)
        view.records.append(record)
        view.replicates[(spec.name, spec.options_hash)] = reps
    return view


def usable_rows(scores: pd.DataFrame) -> pd.DataFrame:
    """The ok rows with a finite score, with a ``clean_hash`` (the image's own hash when the frame has none)."""
    frame = scores[(scores["status"] == "ok") & np.isfinite(pd.to_numeric(scores["score"], errors="coerce"))].copy()
    if "clean_hash" not in frame.columns:
        frame["clean_hash"] = frame["image_hash"]
    if "perturbation" not in frame.columns:
        frame["perturbation"] = ""
    frame["perturbation"] = frame["perturbation"].fillna("")
    return frame


def _split(frame: pd.DataFrame, split: str, perturbation: str) -> pd.DataFrame:
    rows = frame[(frame["split"] == split) & (frame["perturbation"] == perturbation)]
    return rows[rows["source"] == rows["target"]] if split == "cal" else rows


def _thresholds(evaluation) -> dict[tuple[str, str, str], Threshold]:
    return {(t.method, t.options_hash, t.target): t for t in evaluation.thresholds}


def view_inputs(scores: pd.DataFrame, clean_ev, uncertainty: BenchBootstrap | None, robustness=None) -> list[ViewInputs]:
    """The clean view, then each perturbation under the clean thresholds and, where its calibration
    images were scored perturbed, under thresholds recalibrated on them."""
    frame = usable_rows(scores)
    rows = 1 + (uncertainty.n_resamples if uncertainty is not None else 0)
    clean_draws = None if uncertainty is None else uncertainty.draws
    clean_cal, clean_th = _split(frame, "cal", ""), _thresholds(clean_ev)
    out = [ViewInputs("", CLEAN, _split(frame, "eval", ""), clean_cal, clean_th, clean_draws, rows)]
    for result in [] if robustness is None else robustness.results:
        pid, boot = result.id, result.bootstrap
        draws = None if boot is None or clean_draws is None else {**boot.draws, **{k: v for k, v in clean_draws.items() if k[1] == "cal"}}
        n = rows if draws is not None else 1
        evals = _split(frame, "eval", pid)
        out.append(ViewInputs(pid, CLEAN, evals, clean_cal, clean_th, draws, n))
        if robustness.calibrate_perturbed:  # the perturbed calibration images were scored
            out.append(ViewInputs(pid, RECALIBRATED, evals, _split(frame, "cal", pid), _thresholds(result.evaluation),
                                  None if boot is None else boot.draws, rows if boot is not None else 1))
    return out


def evaluate_openset(scores: pd.DataFrame, plan: "Plan", clean_ev, *, metrics: Sequence[OpenSetMetric],
                     uncertainty: BenchBootstrap | None = None, robustness=None) -> OpenSet:
    """Every view of a run (see :func:`view_inputs`), each method's figures with their intervals."""
    config = plan.config
    views = [compute_view(i, plan, metrics, config.confidence) for i in view_inputs(scores, clean_ev, uncertainty, robustness)]
    return OpenSet(list(metrics), views, config.confidence, 0 if uncertainty is None else uncertainty.n_resamples, config.seed)


# -- the summaries: figures, intervals, paired comparisons, ranks ------------------------------------------------
def view_bootstrap(openset: OpenSet, view: OpenSetView) -> BenchBootstrap | None:
    """The view's replicates as a :class:`BenchBootstrap` of summaries in scope "openset" (what
    ``compare_to_leader`` and ``ranks_with_ties`` take); None without replicates."""
    if not openset.n_resamples or not view.replicates:
        return None
    rows, values = [], []
    for r in view.records:
        for name, reps in view.replicates[(r.method, r.options_hash)].items():
            low, high = r.intervals.get(name, (math.nan, math.nan))
            rows.append((r.method, r.options_hash, Scope.OPENSET.key, name, r.figures[name], low, high, len(r.candidates)))
            values.append(reps)
    summaries = pd.DataFrame(rows, columns=["method", "options_hash", "scope", "metric", "estimate", "low", "high", "n_pairs"])
    return BenchBootstrap(
        pairs=pd.DataFrame(), summaries=summaries, pair_replicates=np.empty((0, openset.n_resamples)), summary_replicates=np.vstack(values),
        n_resamples=openset.n_resamples, seed=openset.seed, confidence=openset.confidence, resampling="", metrics=tuple(openset.infos()),
    )


def apply_openset(summaries: Sequence["MethodSummary"], openset: OpenSet, level: float = 0.05) -> None:
    """Each summary's clean open-set figures and intervals; with replicates, its paired comparison with
    the leader (the first summary) on every leaderboard open-set metric, and its rank with ties by
    open-set accuracy (``aedr.bench.stats.ranks_with_ties``: methods whose difference is not
    significant share a rank)."""
    view = openset.clean
    for s in summaries:
        r = view.record(s.method, s.options_hash)
        if r is None:
            continue
        s.openset = dict(r.figures)
        for name, (low, high) in r.intervals.items():
            s.intervals[ScopedMetric(Scope.OPENSET, name).key] = (low, high)
    boot = view_bootstrap(openset, view)
    present = {(r.method, r.options_hash) for r in view.records}
    if boot is None or not summaries or (summaries[0].method, summaries[0].options_hash) not in present:
        return
    for info in (m for m in openset.infos() if m.leaderboard):
        versus_leader(summaries, boot, ScopedMetric(Scope.OPENSET, info.name), level)
    by_key = {(s.method, s.options_hash): s for s in summaries}
    if any(m.name == "open_set_accuracy" for m in openset.metrics):
        for row in ranks_with_ties(boot, "open_set_accuracy", Scope.OPENSET, level=level).itertuples(index=False):
            s = by_key.get((row.method, row.options_hash))
            if s is not None:
                s.openset_rank = str(row.rank)


# -- tables -----------------------------------------------------------------------------------------------------------
VERDICT_RULE = ("Verdict: among the candidates whose score is below their τ_T, the one with the highest tail probability "
                "(ties: the first in the run's model order), as `aedr attribute` decides; none when no candidate accepts.")


def _cell(record: OpenSetRecord, name: str):
    low, high = record.intervals.get(name, (None, None))
    return estimate(record.figures.get(name, math.nan), low, high)


def summary_table(summaries: Sequence["MethodSummary"], openset: OpenSet) -> Table:
    """Every open-set figure of every method on the clean images, with intervals and the rank with ties."""
    metrics = openset.metrics
    ranked = any(s.openset_rank for s in summaries)
    if ranked:  # in the order of its own ranks ("1" before "1="), not the leaderboard's
        accuracy = {id(s): s.openset.get("open_set_accuracy", math.nan) for s in summaries}
        summaries = sorted(summaries, key=lambda s: -accuracy[id(s)] if accuracy[id(s)] == accuracy[id(s)] else math.inf)
    rows = [[*([s.openset_rank or "–"] if ranked else []), s.label, *[s.cell(Scope.OPENSET, m.name) for m in metrics]] for s in summaries]
    return Table(
        "openset", "Open-set attribution: which of the run's models made each image, or none",
        [*(["rank"] if ranked else []), "method", *[m.title for m in metrics]], [*(["text"] if ranked else []), "text", *[column_format(m) for m in metrics]],
        rows, VERDICT_RULE + " " + " ".join(f"{m.title}: {m.description}." for m in metrics if m.description)
        + (" Rank: by open-set accuracy, \"k=\" not distinguishable (paired bootstrap, p >= 0.05) from the method heading its group." if ranked else ""),
    )


def false_accusation_table(summaries: Sequence["MethodSummary"], openset: OpenSet) -> Table:
    """Per model left out of the candidates: the share of its images another candidate accepts."""
    view = openset.clean
    models = list(dict.fromkeys(c for r in view.records for c in r.candidates))
    rows = []
    for s in summaries:
        r = view.record(s.method, s.options_hash)
        if r is not None:
            rows.append([s.label, *[estimate(*r.false_accusation.get(m, (math.nan, None, None))) for m in models],
                         s.cell(Scope.OPENSET, "false_accusation_rate")])
    return Table("false_accusation", "False accusation (%): each model left out of the candidates", ["method", *models, "mean"],
                 ["text", *["rpct"] * len(models), "rpct"], rows,
                 "Column M: M removed from the candidates; the share of M's evaluation images that another candidate accepts. Lower is better.")


def perturbation_table(summaries: Sequence["MethodSummary"], openset: OpenSet) -> Table:
    """Open-set accuracy and false accusation per perturbation, under each threshold policy the run has."""
    policies = list(dict.fromkeys(v.policy for v in openset.views[1:]))
    names = [n for n in ("open_set_accuracy", "false_accusation_rate") if any(m.name == n for m in openset.metrics)]
    titles = {m.name: m.title for m in openset.metrics}
    cols = [f"{titles[n]} ({'clean τ' if p == CLEAN else 'recalibrated τ'})" for n in names for p in policies]
    rows = []
    for s in summaries:
        for pid in dict.fromkeys(v.perturbation for v in openset.views[1:]):
            cells = []
            for n in names:
                for p in policies:
                    v = next((x for x in openset.views if x.perturbation == pid and x.policy == p), None)
                    r = None if v is None else v.record(s.method, s.options_hash)
                    cells.append(math.nan if r is None else _cell(r, n))
            rows.append([s.label, pid, *cells])
    note = ("Clean τ: thresholds and tail probabilities from T's clean calibration images; recalibrated τ: from T's calibration "
            "images under the same perturbation (--calibrate-perturbed). " + VERDICT_RULE)
    return Table("openset_perturbed", "Open-set attribution under perturbations", ["method", "perturbation", *cols],
                 ["text", "text", *[column_format(next(m for m in openset.metrics if m.name == n)) for n in names for _ in policies]], rows, note)


def run_openset(scores: pd.DataFrame, plan: "Plan", clean_ev, summaries: Sequence["MethodSummary"], metrics: Sequence[OpenSetMetric],
                uncertainty: BenchBootstrap | None, robustness=None) -> tuple[OpenSet | None, list[Table]]:
    """A run's open-set attribution, applied to its summaries, and its tables (none without open-set metrics)."""
    if not metrics or not len(scores):
        return None, []
    openset = evaluate_openset(scores, plan, clean_ev, metrics=metrics, uncertainty=uncertainty, robustness=robustness)
    apply_openset(summaries, openset)
    tables = [summary_table(summaries, openset), false_accusation_table(summaries, openset)]
    if len(openset.views) > 1:
        tables.append(perturbation_table(summaries, openset))
    return openset, [t for t in tables if t.has_figures]
