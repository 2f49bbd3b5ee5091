"""The report's figures, drawn with matplotlib's object API (no pyplot, no global backend change)
and embedded as base64 PNG data URIs so that the report is a single self-contained file."""

from __future__ import annotations

import base64
import hashlib
import io
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from ...files import write_text_atomic
from ..metrics import roc_auc, roc_curve
from .format import fmt

FIGURE_STYLE_VERSION = 4  # bump when a figure's drawing code changes, to invalidate cached figures
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def data_uri(fig: Figure, dpi: int = 96) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


class FigureCache:
    """Drawn figures on disk, keyed by a hash of everything they are drawn from: rerunning a finished
    benchmark rewrites its report without drawing again."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.hits = 0

    def get_or_draw(self, name: str, inputs: Sequence[object], draw: Callable[[], str]) -> str:
        if self.folder is None:
            return draw()
        h = hashlib.sha256(f"{FIGURE_STYLE_VERSION}:{name}".encode())
        for item in inputs:
            if isinstance(item, pd.DataFrame):
                h.update(pd.util.hash_pandas_object(item, index=False).to_numpy().tobytes())
                h.update(repr(list(item.columns)).encode())
            else:
                h.update(repr(item).encode())
        path = self.folder / f"{h.hexdigest()[:32]}.txt"
        if path.is_file():
            self.hits += 1
            return path.read_text()
        uri = draw()
        write_text_atomic(path, uri)
        return uri


def _short(name: str, n: int = 14) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def heatmap(pairs: pd.DataFrame, label: str, targets: Sequence[str], sources: Sequence[str]) -> str:
    """Accuracy of one method, target (rows) x source (columns); the diagonal is T's own TPR."""
    grid = np.full((len(targets), len(sources)), np.nan)
    for i, t in enumerate(targets):
        for j, s in enumerate(sources):
            v = pairs[(pairs["target"] == t) & (pairs["source"] == s)]["accuracy"]
            if len(v) and pd.notna(v.iloc[0]):
                grid[i, j] = float(v.iloc[0])
    fig = new_figure(1.6 + 0.62 * len(sources), 1.3 + 0.48 * len(targets))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="RdYlGn", vmin=0.5, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(sources)), [_short(s) for s in sources], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(targets)), [_short(t) for t in targets], fontsize=8)
    ax.set_xlabel("source of the images", fontsize=8)
    ax.set_ylabel("target model T", fontsize=8)
    half = np.full_like(grid, np.nan)
    if "accuracy_low" in pairs.columns:
        for i, t in enumerate(targets):
            for j, s in enumerate(sources):
                r = pairs[(pairs["target"] == t) & (pairs["source"] == s)]
                if len(r):
                    half[i, j] = (float(r["accuracy_high"].iloc[0]) - float(r["accuracy_low"].iloc[0])) / 2
    for i in range(len(targets)):
        for j in range(len(sources)):
            v = grid[i, j]
            text = "–" if math.isnan(v) else f"{100 * v:.0f}" + ("" if math.isnan(half[i, j]) else f"\n±{100 * half[i, j]:.0f}")
            style = "italic" if targets[i] == sources[j] else "normal"
            color = "white" if not math.isnan(v) and (v > 0.9 or v < 0.58) else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if "\n" in text else 7.5, style=style, color=color, linespacing=0.9)
    ax.set_title(label, fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("accuracy (diagonal: TPR)", fontsize=7)
    return data_uri(fig)


def forest(pairs: pd.DataFrame, label: str) -> str:
    """One method's accuracy per pair (rows: target ← source, the real pairs last) with its interval."""
    rows = pairs[(pairs["pair_kind"] != "self") & pairs["accuracy"].notna()].copy()
    rows["_real"] = rows["pair_kind"] == "real"
    order = {name: i for i, name in enumerate(dict.fromkeys([*rows["target"], *rows["source"]]))}  # the run's model order
    rows = rows.sort_values(["_real", "target", "source"], key=lambda c: c.map(order) if c.name != "_real" else c, kind="stable")
    n = len(rows)
    fig = new_figure(4.2, 0.9 + 0.17 * max(n, 1))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    acc = 100 * rows["accuracy"].to_numpy(float)
    if "accuracy_low" in rows.columns:
        low = 100 * rows["accuracy_low"].to_numpy(float)
        high = 100 * rows["accuracy_high"].to_numpy(float)
        ok = np.isfinite(low) & np.isfinite(high)
        ax.hlines(y[ok], low[ok], high[ok], color="#5b6475", lw=1.2)
    colors = np.where(rows["_real"].to_numpy(), PALETTE[1], PALETTE[0])
    ax.scatter(acc, y, s=12, c=list(colors), zorder=3)
    ax.axvline(50, ls="--", lw=0.8, color="#999")
    ax.set_yticks(y, [f"{_short(t, 14)} ← {_short(s, 14)}" for t, s in zip(rows["target"], rows["source"])], fontsize=6.5)
    ax.set_xlim(0, 104)  # a dot at 100 % whole, inside the frame
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("accuracy % (dashed: chance)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(label, fontsize=9)
    return data_uri(fig)


def roc_figure(scores: pd.DataFrame, target: str, methods: Sequence[tuple[str, str, str]]) -> str:
    """ROC under one target: T's evaluation images vs every other source's, one curve per method."""
    fig = new_figure(3.4, 3.3)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="#999")
    ev = scores[(scores["target"] == target) & (scores["split"] == "eval") & (scores["status"] == "ok")]
    for k, (name, ohash, label) in enumerate(methods):
        m = ev[(ev["method"] == name) & (ev["options_hash"] == ohash)]
        b = m[m["source"] == target]["score"].to_numpy(dtype=float)
        o = m[m["source"] != target]["score"].to_numpy(dtype=float)
        if not len(b) or not len(o):
            continue
        fpr, tpr, _ = roc_curve(b, o)
        fpr, tpr = np.append(fpr, 1.0), np.append(tpr, 1.0)
        ax.step(fpr, tpr, where="post", lw=1.4, color=PALETTE[k % len(PALETTE)], label=f"{label} ({roc_auc(b, o):.3f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false-positive rate", fontsize=8)
    ax.set_ylabel("true-positive rate", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"target {target}", fontsize=9)
    if ax.get_legend_handles_labels()[0]:  # below the axes, the figure growing to hold whole names
        fig.legend(fontsize=6.5, loc="outside lower center", title="method (AUC)", title_fontsize=6.5, ncols=1)
    return data_uri(fig)


def _bins(values: list[np.ndarray], n: int = 24) -> tuple[np.ndarray, bool]:
    allv = np.concatenate([v for v in values if len(v)]) if any(len(v) for v in values) else np.array([0.0, 1.0])
    lo, hi = float(np.min(allv)), float(np.max(allv))
    if lo > 0 and hi / lo > 20:
        return np.geomspace(lo, hi, n + 1), True
    if hi == lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, n + 1), False


def histograms(scores: pd.DataFrame, name: str, ohash: str, label: str, targets: Sequence[str], thresholds: dict[str, float]) -> str:
    """Per target: score histograms of belonging, other models' and real evaluation images, with tau."""
    ncols = min(3, len(targets))  # narrow enough to stay legible on an 800 px page
    nrows = math.ceil(len(targets) / ncols)
    fig = new_figure(3.1 * ncols, 2.4 * nrows + 0.7)
    m = scores[(scores["method"] == name) & (scores["options_hash"] == ohash) & (scores["split"] == "eval") & (scores["status"] == "ok")]
    for k, t in enumerate(targets):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        g = m[m["target"] == t]
        groups = [
            ("belonging", g[g["source"] == t]["score"].to_numpy(float), "#2ca02c"),
            ("other models", g[(g["source"] != t) & (g["source_kind"] == "model")]["score"].to_numpy(float), "#d62728"),
            ("real", g[g["source_kind"] == "real"]["score"].to_numpy(float), "#1f77b4"),
        ]
        bins, log = _bins([v for _, v, _ in groups])
        for lab, v, color in groups:
            if len(v):  # each class scaled to its own peak: a tight class (LatentTracer's belonging scores) never flattens the others
                counts, _ = np.histogram(v, bins=bins)
                heights = counts / max(1, counts.max())
                ax.stairs(heights, bins, fill=True, alpha=0.45, color=color, label=f"{lab} ({len(v)})")
                ax.stairs(heights, bins, color=color, lw=0.8)
        tau = thresholds.get(t)
        if tau is not None and math.isfinite(tau):
            ax.axvline(tau, color="black", lw=1, ls="--", label="τ")
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on narrow panels
        else:  # few ticks, a common power of ten apart: 2.5e-4 beside 5e-4 never runs together
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.xaxis.get_offset_text().set_fontsize(6)
        ax.set_title(f"target {t}", fontsize=8)
        ax.tick_params(labelsize=6.5)
        ax.set_yticks([])
    handles = {lab.split(" (")[0]: h for ax in fig.axes for h, lab in zip(*ax.get_legend_handles_labels())}
    if handles:  # one legend for every panel, below them, covering no bar
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside lower center", ncols=len(handles))
    fig.suptitle(f"{label}: scores under each target (lower = belonging)", fontsize=9)
    return data_uri(fig)


def time_chart(labels: Sequence[str], seconds: Sequence[float], per_target: dict[str, Sequence[float]] | None = None) -> str:
    """Seconds per image per method (log scale when they span more than 20x)."""
    fig = new_figure(6.5, 0.9 + 0.42 * len(labels))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    vals = np.array([s if s is not None and math.isfinite(s) else np.nan for s in seconds], dtype=float)
    ax.barh(y, np.nan_to_num(vals, nan=0.0), color=[PALETTE[i % len(PALETTE)] for i in range(len(labels))], alpha=0.8)
    if per_target:
        for i, lab in enumerate(labels):
            pts = [p for p in per_target.get(lab, []) if p is not None and math.isfinite(p)]
            ax.plot(pts, [i] * len(pts), "k|", ms=9)
    finite = vals[np.isfinite(vals) & (vals > 0)]
    if finite.size and finite.max() / finite.min() > 20:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    # each bar's figure goes in its label, where the per-target ticks cannot cross it
    names = [_short(lab, 34) + (f"  ({fmt(v, 'sec')} s)" if math.isfinite(v) else "") for lab, v in zip(labels, vals)]
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per image (bars: mean; ticks: per target)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.margins(x=0.25)
    return data_uri(fig)


def _curve_groups(perturbations: Sequence[dict]) -> list[tuple[str, list[dict], bool]]:
    """The perturbations grouped by kind (in the run's order): (kind, its perturbations mildest first,
    whether its x axis is the numeric level). Chains, and kinds without an identity level, are drawn
    at positions 1, 2, ... in the run's order."""
    groups: dict[str, list[dict]] = {}
    for p in perturbations:
        groups.setdefault(str(p["kind"]), []).append(p)
    out = []
    for kind, items in groups.items():
        numeric = all(p.get("level") is not None for p in items)
        identity = items[0].get("identity") if numeric else None
        if numeric and identity is not None:
            items = sorted(items, key=lambda p: abs(float(p["level"]) - float(identity)))
        out.append((kind, items, numeric))
    return out


def robustness_curves(curves: pd.DataFrame, perturbations: Sequence[dict], methods: Sequence[tuple[str, str, str]], scope: str = "pair") -> str:
    """Accuracy (top row) and AUC (bottom row) of every method against perturbation strength, one
    column per perturbation kind, stronger to the right. ``scope`` "pair": the mean over model pairs;
    "real": against the real images. Each curve starts at the method's clean value (hollow marker, at
    the level that leaves an image unchanged; a dotted line where a kind has none); bars: the
    bootstrap intervals; dashed grey: chance."""
    groups = _curve_groups(perturbations)
    ncols = max(1, len(groups))
    fig = new_figure(2.5 * ncols + 2.4, 4.9)
    sel_scope = curves[curves["scope"] == scope]
    handles: dict[str, object] = {}
    for row, (metric, ylabel, scale) in enumerate((("accuracy", "accuracy %", 100.0), ("auc", "AUC", 1.0))):
        row_axes = []
        for col, (kind, items, numeric) in enumerate(groups):
            ax = fig.add_subplot(2, ncols, row * ncols + col + 1)
            row_axes.append(ax)
            identity = items[0].get("identity") if numeric else None
            xs = [float(p["level"]) for p in items] if numeric else list(range(1, len(items) + 1))
            clean_x = (float(identity) if identity is not None else None) if numeric else 0.0
            for k, (name, ohash, label) in enumerate(methods):
                color = PALETTE[k % len(PALETTE)]
                mine = sel_scope[(sel_scope["method"] == name) & (sel_scope["options_hash"] == ohash) & (sel_scope["metric"] == metric)]
                by_id = {str(r.perturbation): r for r in mine.itertuples(index=False)}
                clean = by_id.get("")
                cv = scale * float(clean.estimate) if clean is not None and pd.notna(clean.estimate) else math.nan
                ys = np.array([scale * float(by_id[p["id"]].estimate) if p["id"] in by_id and pd.notna(by_id[p["id"]].estimate) else math.nan for p in items])
                lows = np.array([scale * float(by_id[p["id"]].low) if p["id"] in by_id and pd.notna(by_id[p["id"]].low) else math.nan for p in items])
                highs = np.array([scale * float(by_id[p["id"]].high) if p["id"] in by_id and pd.notna(by_id[p["id"]].high) else math.nan for p in items])
                if clean_x is not None:
                    (line,) = ax.plot([clean_x, *xs], [cv, *ys], "-o", color=color, lw=1.3, ms=3.5, label=_short(label, 30))
                    ax.plot([clean_x], [cv], "o", ms=6, mfc="white", mec=color, mew=1.4, zorder=4)
                else:
                    (line,) = ax.plot(xs, ys, "-o", color=color, lw=1.3, ms=3.5, label=_short(label, 30))
                    if math.isfinite(cv):
                        ax.axhline(cv, ls=":", lw=1.0, color=color)
                ok = np.isfinite(lows) & np.isfinite(highs)
                if ok.any():
                    ax.vlines(np.asarray(xs, dtype=float)[ok], lows[ok], highs[ok], color=color, lw=0.8, alpha=0.55)
                handles.setdefault(label, line)
            ax.axhline(50.0 if metric == "accuracy" else 0.5, ls="--", lw=0.7, color="#999")
            if numeric:
                ticks = ([clean_x] if clean_x is not None else []) + xs
                ax.set_xticks(ticks, [f"{t:g}" + (" (clean)" if clean_x is not None and t == clean_x else "") for t in ticks], fontsize=6.5)
                if items[0].get("stronger_below"):
                    ax.invert_xaxis()
            else:
                ax.set_xticks([0, *xs] if clean_x is not None else xs, (["clean"] if clean_x is not None else []) + [_short(str(p["id"]), 16) for p in items],
                              fontsize=6, rotation=30, ha="right")
            ax.tick_params(axis="y", labelsize=7)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if row == 0:
                parameter = items[0].get("parameter") if numeric else None
                ax.set_title(f"{kind}" + (f" ({parameter})" if parameter else ""), fontsize=9)
            else:
                ax.set_xlabel("stronger →", fontsize=7.5)
        low = min(ax.get_ylim()[0] for ax in row_axes)  # one scale per row: panels compare at a glance
        for ax in row_axes:
            ax.set_ylim(low, 1.02 * scale)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7, title="method", title_fontsize=7)
    fig.suptitle("mean over model pairs" if scope == "pair" else "target's images against real images", fontsize=9)
    return data_uri(fig)


def attribution_heatmap(matrix: Sequence[Sequence[float]], several: Sequence[float], candidates: Sequence[str], sources: Sequence[str],
                        n_images: Sequence[int], label: str) -> str:
    """One method's open-set attribution matrix: rows the true source, columns the verdict (each
    candidate, then none; a row sums to 100 %), and apart, the share accepted by several candidates."""
    grid = np.asarray(matrix, dtype=float).reshape(len(sources), len(candidates) + 1)
    cols = [*candidates, "none"]
    fig = new_figure(2.4 + 0.62 * (len(cols) + 1), 1.3 + 0.45 * len(sources))
    ax = fig.add_subplot()
    full = np.column_stack([grid, np.full(len(sources), np.nan), np.asarray(several, dtype=float)])
    im = ax.imshow(np.ma.masked_invalid(full), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(cols) + 2), [*(_short(c) for c in cols), "", "several"], rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(sources)), [f"{_short(s)} (n={n})" for s, n in zip(sources, n_images)], fontsize=8)
    ax.set_xlabel("verdict (several: accepted by more than one candidate)", fontsize=8)
    ax.set_ylabel("true source", fontsize=8)
    for i, source in enumerate(sources):
        for j in [*range(len(cols)), len(cols) + 1]:
            v = full[i, j]
            if math.isnan(v):
                continue
            right = (j < len(candidates) and cols[j] == source) or (j == len(candidates) and source not in candidates)
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7.5, weight="bold" if right else "normal",
                    color="white" if v > 0.6 else "black")
    ax.set_title(label, fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("share of the source's images", fontsize=7)
    return data_uri(fig)


def oscr_figure(curves: Sequence[tuple[str, Sequence[float], Sequence[float], float]], title: str = "") -> str:
    """OSCR curves, one per method: (label, false-acceptance grid, correct-classification rate, OSCR)."""
    fig = new_figure(4.6, 3.4)
    ax = fig.add_subplot()
    for k, (label, x, y, area) in enumerate(curves):
        ax.plot(x, y, "-", color=PALETTE[k % len(PALETTE)], lw=1.4, label=f"{_short(label, 28)} ({fmt(area, 'auc')})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false acceptance of unknown images", fontsize=8)
    ax.set_ylabel("correct classification of known images", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, loc="lower right", title="method (OSCR)", title_fontsize=6.5)
    ax.set_title(title, fontsize=9)
    return data_uri(fig)
