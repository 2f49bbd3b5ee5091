"""The result files of a run: scores.parquet, metrics.csv, metrics.json, leaderboard.md, report.html.

Each is written to a temporary name and moved into place, so a reader never sees half a file.
metrics.json describes the metrics it holds, so that a leaderboard can be merged from it on a
machine without the plugins that registered them; its schema (format ``aedr-bench/3``) is
:mod:`aedr.bench.schema`. With perturbations, metrics.csv and the ``pairs``
of metrics.json hold the clean pairs (``perturbation`` "") and then every perturbation's pairs, and
metrics.json has a ``robustness`` section (see :func:`aedr.bench.robustness.robustness_document`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..files import write_text_atomic
from .metrics import MetricInfo
from .schema import BenchDocument
from .store import write_parquet_atomic
from .tables import DIRECTION

if TYPE_CHECKING:
    from .result import BenchResult

SCORES = "scores.parquet"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
LEADERBOARD = "leaderboard.md"
REPORT = "report.html"


def all_pairs(result: "BenchResult") -> pd.DataFrame:
    """The clean pairs, then every perturbation's (metrics.csv)."""
    clean = result.evaluation.pairs_frame()
    if result.robustness is None:
        return clean
    perturbed = result.robustness.pairs_frame(result.evaluation.metrics)
    return pd.concat([clean, perturbed], ignore_index=True) if len(perturbed) else clean


def metrics_document(result: "BenchResult") -> dict[str, Any]:
    """metrics.json (``aedr.bench.schema.BenchDocument``, JSON-ready)."""
    from .robustness import robustness_document

    plan, ev = result.plan, result.evaluation
    rob = result.robustness
    return BenchDocument(
        score_direction=DIRECTION,
        config_name=result.config.name,
        config=result.config.to_dict(),
        protocol=protocol_document(result),
        started=result.stats.started,
        finished=result.stats.finished,
        run=asdict(result.stats),
        provenance=result.provenance,
        models=[{"name": m.name, "family": m.family, "description": m.description, "autoencoder_fingerprint": m.autoencoder_fingerprint(),
                 "fingerprint": m.fingerprint()} for m in plan.models],
        methods=[m.describe() for m in plan.methods],
        image_sets=[s.describe() for s in plan.sources.values()],
        failures=[asdict(f) for f in result.failures],
        metrics=[MetricInfo.of(m) for m in ev.metrics],
        uncertainty=uncertainty_document(result),
        summaries=list(result.summaries),
        thresholds=[asdict(t) for t in ev.thresholds],
        pairs=[p.record() for p in ev.pairs] + ([p.record() for r in rob.results for p in r.evaluation.pairs] if rob else []),
        robustness=None if rob is None else robustness_document(result.summaries, rob),
        timings=ev.timings_frame().to_dict("records"),
        tables={t.key: {"title": t.title, "columns": t.columns, "rows": t.rows, "note": t.note} for t in result.tables},
        openset_metrics=[] if result.openset is None else result.openset.infos(),
        openset=[] if result.openset is None else result.openset.records(),
    ).to_json()


def protocol_document(result: "BenchResult") -> dict[str, Any]:
    """The protocol of the run, in words."""
    rob = result.robustness
    return {
        "images": "per model: generator seeds seed+i, i < n_cal + n_eval; the first n_cal are calibration, the rest evaluation",
        "calibration": "per target T: tau_T from T's calibration split, KDE (Scott), "
        + ("alpha chosen per target on the estimation split" if result.config.auto_alpha else f"alpha = {result.config.alpha}"),
        "alpha_estimation_images": "the calibration splits of every other source (other models, and the real "
        "estimation images when given), scored under T" if result.config.auto_alpha else None,
        "evaluation": "every source's evaluation split (real: the real evaluation images) scored under T",
        "accuracy": "(TP + TN) / (N_T + N_S); belonging iff score < tau_T",
        "perturbations": None if rob is None else (
            "every source's evaluation images perturbed alike (seeded by the run seed and the clean image's hash); "
            + ("thresholds refitted on the target's equally perturbed calibration images" if rob.calibrate_perturbed
               else "thresholds from the clean calibration images")
        ),
    }


def uncertainty_document(result: "BenchResult") -> dict[str, Any] | None:
    """How the intervals were computed (None: the run asked for none)."""
    boot = result.uncertainty
    if boot is None:
        return None
    return {
        "method": "joint stratified bootstrap: every image set resampled once per replicate (the same draw for every "
        "method and target), thresholds refitted on each resampled calibration set; percentile intervals; paired "
        "differences from the leader on the same replicates, two-sided bootstrap p-values, Holm-corrected; rank "
        "'k=' when not distinguishable (p >= 0.05) from the method heading its group",
        "n_resamples": boot.n_resamples,
        "seed": boot.seed,
        "confidence": boot.confidence,
        "resampling": boot.resampling,
        "metrics_with_intervals": sorted(set(boot.pairs["metric"])),
        "clusters": result.plan.clusters(),  # image hash -> cluster: what `aedr leaderboard` needs to redo the bootstrap
    }


def write_outputs(result: "BenchResult") -> dict[str, Path]:
    from .render.markdown import run_markdown
    from .render.report import render_report

    out = Path(result.config.out)
    out.mkdir(parents=True, exist_ok=True)
    names = (SCORES, METRICS_CSV, METRICS_JSON, LEADERBOARD) + ((REPORT,) if result.config.report else ())
    files = {name: out / name for name in names}
    write_parquet_atomic(result.scores.reset_index(drop=True), files[SCORES])
    write_text_atomic(files[METRICS_CSV], all_pairs(result).to_csv(index=False))
    document = metrics_document(result)
    write_text_atomic(files[METRICS_JSON], json.dumps(document, indent=1, allow_nan=False))
    write_text_atomic(files[LEADERBOARD], run_markdown(result))
    if result.config.report:
        write_text_atomic(files[REPORT], render_report(result, figure_cache=out / "figures"))
    else:
        (out / REPORT).unlink(missing_ok=True)  # never leave an earlier run's report beside new results
    return files
