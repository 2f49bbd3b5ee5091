"""The self-contained HTML report of a run: tables, heatmaps, ROC curves, score histograms, time chart,
and with perturbations the robustness curves.

One file, inline CSS, figures as base64 PNG: it can be mailed, attached or opened offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..tables import DIRECTION, Table, leaderboard_table
from . import plots
from .html import figure, kv, page, table_nav, to_html

if TYPE_CHECKING:
    from ..result import BenchResult


def _run_facts(result: "BenchResult") -> str:
    cfg, st, prov = result.config, result.stats, result.provenance
    git = prov.get("git", {})
    rev = git.get("revision") or "unknown"
    rev = f"{rev[:12]}{' (local changes)' if git.get('dirty') else ''}" if rev != "unknown" else git.get("note", rev)
    mach = prov.get("machine", {})
    models = ", ".join(f"{m.name} <small>({html.escape(m.family)})</small>" for m in result.plan.models)
    methods = ", ".join(f"<code>{html.escape(m.label)}</code>" + (" <small>(not run)</small>" if m.error else "") for m in result.plan.methods)
    real = result.plan.sources.get("real")
    facts = [
        ("config", html.escape(cfg.name)),
        ("models", models),
        ("methods", methods),
        ("images per model", f"{cfg.n_cal} calibration + {cfg.n_eval} evaluation"),
        ("real images", html.escape(real.origin) if real else "none"),
        ("alpha", html.escape(str(cfg.alpha))),
        *([("perturbations", _perturbation_facts(result))] if result.robustness is not None else []),
        ("seed / device", f"{cfg.seed} / {html.escape(cfg.device)}"),
        ("run", f"{html.escape(st.started)} → {html.escape(st.finished)}, {st.wall_seconds:.0f} s"),
        ("work", f"{st.generated} images generated ({st.generation_seconds:.1f} s), {st.scored} scores computed "
                 f"({st.scoring_seconds:.1f} s), {st.already_saved} reused from earlier runs, {st.skipped} skipped"),
        ("intervals", html.escape(_intervals(result))),
        ("shared first passes", f"{st.cache_hits} cache hits, {st.cache_misses} misses" if cfg.share_reconstructions else "off"),
        ("git revision", html.escape(rev)),
        ("machine", html.escape(f"{mach.get('cpu', '?')}, {mach.get('cpu_count', '?')} CPUs, torch threads {mach.get('torch_threads', '?')}, "
                                f"load average {st.load_average_start} → {st.load_average_end}")),
    ]
    return kv(facts)


def _perturbation_facts(result: "BenchResult") -> str:
    rob = result.robustness
    assert rob is not None
    ids = ", ".join(f"<code>{html.escape(i)}</code>" for i in rob.ids)
    st = result.stats
    return (f"{len(rob.ids)}: {ids}; applied to the evaluation images of every source; thresholds: {html.escape(rob.threshold_rule())}; "
            f"{st.perturbed} perturbed images ({st.perturbation_seconds:.1f} s), each seeded by the run seed and its clean image's hash")


def _intervals(result: "BenchResult") -> str:
    boot = result.uncertainty
    if boot is None:
        return "none (bootstrap = 0)"
    return f"{100 * boot.confidence:g} % percentile intervals from {boot.n_resamples} joint bootstrap resamples (seed {boot.seed}); {boot.resampling}"


def _image_sets_table(result: "BenchResult") -> Table:
    rows = []
    for s in result.plan.sources.values():
        d = s.describe()
        fmts = ", ".join(f"{k} {v}" for k, v in d["formats"].items())
        sizes = ", ".join(f"{k} ({v})" for k, v in d["sizes"].items())
        rows.append([s.name, s.kind, d["n_cal"], d["n_eval"], fmts, sizes, len(d["skipped"]), s.origin])
    return Table(
        "image_sets", "Image sets", ["source", "kind", "calibration", "evaluation", "formats", "sizes", "unreadable", "origin"],
        ["text", "text", "int", "int", "text", "text", "int", "text"], rows,
        "Formats are listed because a detector can tell PNG from JPEG: compare like with like.",
    )


def _thresholds_table(result: "BenchResult") -> Table:
    rows = [
        [t.label, t.target + (f" ({t.perturbation})" if t.perturbation else ""), t.alpha, t.alpha_selection, t.threshold, t.n_cal, t.n_estimation or None, t.estimation_accuracy, t.error]
        for t in [*result.evaluation.thresholds, *(result.robustness.thresholds() if result.robustness is not None else [])]
    ]
    columns = ["method", "target", "alpha", "alpha chosen", "τ", "calibration images", "estimation images", "estimation acc %", "note"]
    formats = ["text", "text", "num", "text", "sig", "int", "int", "pct", "text"]
    # the estimation columns (alpha "auto") and the note (a failed fit) only where some row has one
    keep = [j for j in range(len(columns)) if j < 6 or any(r[j] not in (None, "") and r[j] == r[j] for r in rows)]
    return Table(
        "thresholds", "Thresholds τ_T", [columns[j] for j in keep], [formats[j] for j in keep], [[r[j] for j in keep] for r in rows],
        "τ_T: the 1 − alpha quantile of a Gaussian KDE (Scott) of T's calibration scores.",
    )


def _reason(text: str) -> str:
    """First line of an error, the rest folded away (set-up errors explain at length what to do)."""
    first, _, rest = text.strip().partition("\n")
    if not rest.strip():
        return html.escape(first)
    return f"{html.escape(first)} <details><summary>what to do</summary><pre>{html.escape(rest.strip())}</pre></details>"


def _problems(result: "BenchResult") -> str:
    items = [f"<li><b>{html.escape(m.name)}</b> not run: {_reason(m.error or '')}</li>" for m in result.plan.methods if m.error]
    items += [f"<li><b>{html.escape(f.label)}</b> failed under {html.escape(f.target)}: {_reason(f.error)}</li>" for f in result.failures]
    skipped = result.scores[result.scores["status"] == "skipped"]
    if "perturbation" not in skipped.columns:
        skipped = skipped.assign(perturbation="")
    for (label, target, pert, error), g in skipped.groupby(["label", "target", "perturbation", "error"]):
        where = f" ({html.escape(str(pert))})" if str(pert) else ""
        items.append(f"<li>{len(g)} image(s){where} skipped by <b>{html.escape(str(label))}</b> under {html.escape(str(target))}: {html.escape(str(error))}</li>")
    for s in result.plan.sources.values():
        for sk in s.skipped:
            items.append(f"<li>unreadable {html.escape(s.name)} image {html.escape(sk.id)}: {html.escape(sk.error)}</li>")
    missing = int((result.scores["status"] == "missing").sum())
    if missing:
        items.append(f"<li>{missing} planned score(s) missing (failed methods)</li>")
    if not items:
        return ""
    return '<div class="warn"><b>Not everything ran:</b><ul>' + "".join(items) + "</ul></div>"


def _openset_section(result: "BenchResult", cache: "plots.FigureCache", ordered: list[tuple[str, str, str]]) -> list[str]:
    """Each method's attribution matrix and the OSCR curves, on the clean images."""
    openset = result.openset
    view = openset.clean
    out = ['<h2 id="openset-figures">Open-set attribution</h2><p class="note">' + html.escape(
        "Every model of the run is a candidate; an image's verdict is what `aedr attribute` answers with one card per model: among the "
        "candidates whose score is below their τ_T, the one with the highest tail probability; none when no candidate accepts. Rows: "
        "the true source; bold: the right verdict (real images: none). The tables are in the Tables section.") + '</p><div class="figs">']
    for name, ohash, label in ordered:
        r = view.record(name, ohash)
        if r is None:
            continue
        args = [r.matrix, r.several, r.candidates, r.sources, r.n_images, label]
        out.append(figure(cache.get_or_draw("openset-matrix", args, lambda: plots.attribution_heatmap(*args)), alt=f"attribution matrix {label}"))
    out.append("</div><div class=\"figs\">")
    for v in openset.views[:1]:  # every perturbation's curves are in metrics.json (openset[].oscr_curve)
        curves = [(label, r.oscr_curve.get("false_acceptance", []), r.oscr_curve.get("correct_classification", []), r.figures.get("oscr", float("nan")))
                  for name, ohash, label in ordered if (r := v.record(name, ohash)) is not None and r.oscr_curve]
        title = "clean images" if not v.perturbation else f"{v.perturbation}, {'clean' if v.policy == 'clean' else 'recalibrated'} τ"
        uri = cache.get_or_draw("oscr", [curves, title], lambda: plots.oscr_figure(curves, title))
        out.append(figure(uri, "OSCR: each model left out in turn, the correct classification of the others' images against the false acceptance of "
                               "the left-out model's and the real images, as the knownness threshold falls; mean over the folds.", alt=f"OSCR {title}"))
    out.append("</div>")
    return out


def render_report(result: "BenchResult", figure_cache: Path | None = None) -> str:
    """The report's HTML. ``figure_cache``: a folder where drawn figures are kept for the next rerun."""
    r = ReportParts(result, plots.FigureCache(figure_cache))
    body: list[str] = [f'<div class="direction">{html.escape(DIRECTION)}</div>', _problems(result)]
    body += ['<h2 id="run">Run</h2>', _run_facts(result)]
    body += ['<h2 id="leaderboard">Leaderboard</h2>', to_html(leaderboard_table(result.summaries, metrics=result.board_metrics), anchor=False)]
    body += ['<h2 id="tables">Tables</h2>', *[to_html(t) for t in result.tables]]
    body += r.heatmaps() + r.forests() + r.rocs() + r.histograms()
    extra_nav = []
    if result.robustness is not None:
        body += r.robustness()
        extra_nav.append(("robustness", "Robustness"))
    if result.openset is not None and result.openset.clean.records:
        body += _openset_section(result, r.cache, r.ordered)
        extra_nav.append(("openset-figures", "Open-set figures"))
    body += r.time() + r.details()
    nav = [("run", "Run"), ("leaderboard", "Leaderboard"), *table_nav(result.tables), ("heatmaps", "Heatmaps"), ("forest", "Intervals"), ("roc", "ROC"),
           ("histograms", "Histograms"), *extra_nav, ("time", "Time"), ("details", "Details")]
    subtitle = html.escape(f"{result.config.name} config · {len(r.targets)} models · {len(result.plan.runnable)} methods · finished {result.stats.finished}")
    return page("aedr bench report", subtitle, nav, "\n".join(body))


class ReportParts:
    """The report's sections, each a list of HTML pieces, drawn from one run's result."""

    def __init__(self, result: "BenchResult", cache: "plots.FigureCache"):
        self.result, self.cache = result, cache
        self.ev = result.evaluation
        self.clean = result.clean_scores  # the figures of the clean protocol
        self.pairs = self.ev.pairs_frame()
        self.targets = [m.name for m in result.plan.models]
        self.sources = list(result.plan.sources)
        self.ordered = [(s.method, s.options_hash, s.label) for s in result.summaries]

    def method_pairs(self, name: str, ohash: str):
        return self.pairs[(self.pairs["method"] == name) & (self.pairs["options_hash"] == ohash)]

    def heatmaps(self) -> list[str]:
        out = ['<h2 id="heatmaps">Accuracy per target and source</h2><div class="figs">']
        for name, ohash, label in self.ordered:
            p, targets, sources = self.method_pairs(name, ohash), self.targets, self.sources
            uri = self.cache.get_or_draw("heatmap", [p, label, targets, sources], lambda: plots.heatmap(p, label, targets, sources))
            out.append(figure(uri, f"{label}: rows = target T, columns = source S; cell = accuracy % of the pair (T, S) and ± the half-width of its interval; diagonal (italic) = TPR on T's own images"))
        return out + ["</div>"]

    def forests(self) -> list[str]:
        if "accuracy_low" not in self.pairs.columns or not self.pairs["accuracy_low"].notna().any():
            return []
        out = ['<h2 id="forest">Accuracy per pair with its interval</h2><p class="note">Rows: target ← source (blue: '
               'another model, red: the real images); bars: bootstrap interval.</p><div class="figs">']
        for name, ohash, label in self.ordered:
            p = self.method_pairs(name, ohash)
            out.append(figure(self.cache.get_or_draw("forest", [p, label], lambda: plots.forest(p, label)), alt=f"forest plot {label}"))
        return out + ["</div>"]

    def rocs(self) -> list[str]:
        out = ['<h2 id="roc">ROC curves per target</h2><p class="note">Positives: the target\'s evaluation images; negatives: every other source\'s evaluation images (other models and real), pooled.</p><div class="figs">']
        for t in self.targets:
            sub, ordered = self.clean[self.clean["target"] == t], self.ordered
            out.append(figure(self.cache.get_or_draw("roc", [sub, t, ordered], lambda: plots.roc_figure(sub, t, ordered)), alt=f"ROC target {t}"))
        return out + ["</div>"]

    def histograms(self) -> list[str]:
        out = ['<h2 id="histograms">Score distributions</h2><p class="note">Evaluation images under each target; dashed line: τ_T. Lower = belonging. Each class (belonging, other models, real) is scaled to its own peak, so that a tight class does not flatten the others.</p><div class="figs">']
        for name, ohash, label in self.ordered:
            taus = {t.target: t.threshold for t in self.ev.thresholds if t.method == name and t.options_hash == ohash}
            sub, targets = self.clean[(self.clean["method"] == name) & (self.clean["options_hash"] == ohash)], self.targets
            uri = self.cache.get_or_draw("hist", [sub, name, ohash, label, targets, taus], lambda: plots.histograms(sub, name, ohash, label, targets, taus))
            out.append(figure(uri, alt=f"histograms {label}"))
        return out + ["</div>"]

    def robustness(self) -> list[str]:
        from ..robustness import curve_frame

        rob = self.result.robustness
        curves, perts, ordered = curve_frame(self.result.summaries, rob), rob.perturbations, self.ordered
        out = ['<h2 id="robustness">Robustness to perturbations</h2><p class="note">'
               + html.escape(f"Every source's evaluation images perturbed alike; thresholds: {rob.threshold_rule()}. Each curve starts at the "
                             "method's clean value (hollow marker); bars: bootstrap intervals; dashed: chance. The tables are in the Tables "
                             "section (Robustness).") + '</p><div class="figs">']
        for scope, caption in (("pair", "Mean over the ordered model pairs, against perturbation strength, one panel per kind."),
                               ("real", "Each target's images against the real images, both perturbed, against perturbation strength.")):
            if not curves.loc[curves["scope"] == scope, "estimate"].notna().any():
                continue  # no such figures (a run with one model has no model pairs)
            uri = self.cache.get_or_draw("robustness", [curves, perts, ordered, scope], lambda: plots.robustness_curves(curves, perts, ordered, scope))
            out.append(figure(uri, caption, alt=f"robustness curves ({scope})"))
        return out + ["</div>"]

    def time(self) -> list[str]:
        summaries, tf = self.result.summaries, self.ev.timings_frame()
        per_target = {s.label: [float(r.seconds_per_image) for r in tf[(tf["method"] == s.method) & (tf["options_hash"] == s.options_hash)].itertuples()]
                      for s in summaries}
        out = ['<h2 id="time">Time</h2><div class="figs">']
        if summaries:
            labels, secs = [s.label for s in summaries], [s.seconds_per_image for s in summaries]
            uri = self.cache.get_or_draw("time", [labels, secs, per_target], lambda: plots.time_chart(labels, secs, per_target))
            out.append(figure(uri, "Seconds per image (wall time on this machine; see the run facts for its load)."))
        return out + ["</div>"]

    def details(self) -> list[str]:
        result = self.result
        cfg_json = json.dumps(result.config.to_dict(), indent=1, default=str)
        versions = json.dumps(result.provenance.get("versions", {}), indent=1)
        return ['<h2 id="details">Details</h2>', to_html(_thresholds_table(result)), to_html(_image_sets_table(result)),
                f"<details><summary>configuration</summary><pre>{html.escape(cfg_json)}</pre></details>",
                f"<details><summary>package versions</summary><pre>{html.escape(versions)}</pre></details>"]
