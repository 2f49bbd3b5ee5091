"""Paired bootstrap of one method against another on a finished bench run: the difference of their
clean and robust pair AUCs and real AUCs, with 95 % intervals.

The bench's leaderboard gives paired differences from the leader on clean images; this gives them
for any two methods and for the robust AUC (the mean over the run's perturbations). Evaluation
images are resampled within each source, one draw shared by both methods, every target and every
perturbation (images are matched across perturbations by their clean hash); the pairs of models on
one autoencoder are left out, as the bench leaves them out. Real images are resampled one by one
(the bench's own intervals resample them by photograph).

    python benchmarks/paired_methods.py RUN_DIR [--a trace] [--b aedr] [--resamples 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def score_array(scores: pd.DataFrame, method: str) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """Evaluation scores as an array [target, perturbation, source, image] (NaN where missing)."""
    d = scores[(scores.method == method) & (scores.split == "eval") & (scores.status == "ok")]
    if d.empty:
        raise SystemExit(f"error: no evaluation scores of method {method!r} in this run")
    targets = sorted(d.target.unique())
    perts = sorted(d.perturbation.unique())
    sources = targets + sorted(s for s in d.source.unique() if s not in targets)
    hashes = {s: sorted(d[d.source == s].clean_hash.unique()) for s in sources}
    n = max(map(len, hashes.values()))
    out = np.full((len(targets), len(perts), len(sources), n), np.nan)
    for (t, p, s), g in d.groupby(["target", "perturbation", "source"]):
        idx = [hashes[s].index(h) for h in g.clean_hash]
        out[targets.index(t), perts.index(p), sources.index(s), idx] = g.score.to_numpy()
    return out, targets, perts, sources


def shared_pairs(scores: pd.DataFrame) -> set[tuple[str, str]]:
    """(target, source) pairs of models whose autoencoder weights are the same."""
    weights = scores.drop_duplicates("target").set_index("target").weights.to_dict()
    return {(t, s) for t in weights for s in weights if t != s and weights[t] == weights[s]}


def aucs(x: np.ndarray, targets, sources, shared, draw) -> tuple[np.ndarray, np.ndarray]:
    """Mean pair AUC and mean real AUC per perturbation for one resample ``draw[source]``."""
    pair, real = [], []
    for ti, t in enumerate(targets):
        own = x[ti, :, ti][:, draw[ti]]
        for si, s in enumerate(sources):
            if s == t or (t, s) in shared:
                continue
            other = x[ti, :, si][:, draw[si]]
            wins = (own[:, :, None] < other[:, None, :]) + 0.5 * (own[:, :, None] == other[:, None, :])
            (pair if s in targets else real).append(np.nanmean(wins, axis=(1, 2)))
    nan = np.full(x.shape[1], np.nan)
    return (np.mean(pair, 0) if pair else nan), (np.mean(real, 0) if real else nan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a bench output folder (with scores.parquet)")
    ap.add_argument("--a", default="trace")
    ap.add_argument("--b", default="aedr")
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    scores = pd.read_parquet(args.run / "scores.parquet")
    (xa, targets, perts, sources), (xb, *rest) = score_array(scores, args.a), score_array(scores, args.b)
    if rest != [targets, perts, sources]:
        raise SystemExit("error: the two methods were not scored on the same targets, perturbations and sources")
    shared = shared_pairs(scores)
    n = xa.shape[-1]
    clean = perts.index("") if "" in perts else None
    perturbed = [i for i, p in enumerate(perts) if p != ""]

    def figures(draw) -> np.ndarray:
        rows = []
        for x in (xa, xb):
            pair, real = aucs(x, targets, sources, shared, draw)
            pick = lambda v, idx: np.nan if not idx else float(np.mean(v[idx]))  # noqa: E731
            rows.append([pick(pair, [clean] if clean is not None else []), pick(pair, perturbed),
                         pick(real, [clean] if clean is not None else []), pick(real, perturbed)])
        return np.array(rows)

    rng = np.random.default_rng(0)
    point = figures(np.tile(np.arange(n), (len(sources), 1)))
    reps = np.array([figures(rng.integers(0, n, (len(sources), n))) for _ in range(args.resamples)])
    print(f"{args.run}: {args.a} against {args.b}; n = {n} evaluation images per source, {len(targets)} targets, "
          f"{len(perturbed)} perturbations, {args.resamples} resamples")
    print(f"| figure | {args.a} | {args.b} | difference [95 % interval] |")
    print("| --- | ---: | ---: | ---: |")
    for k, name in enumerate(("clean pairs AUC", "robust pairs AUC", "clean real AUC", "robust real AUC")):
        if np.isnan(point[0, k]):
            continue
        lo, hi = np.nanpercentile(reps[:, 0, k] - reps[:, 1, k], [2.5, 97.5])
        print(f"| {name} | {point[0, k]:.3f} | {point[1, k]:.3f} | {point[0, k] - point[1, k]:+.3f} [{lo:+.3f}, {hi:+.3f}] |")


if __name__ == "__main__":
    main()
