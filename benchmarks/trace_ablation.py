"""TRACE's ablation on the zoo: what each part buys, with paired bootstrap intervals.

Every variant is an option of a registered method, so the table is reproducible from the command
line alone: AEDR at the posterior mean (``trace(first_loss=l2, fixed_point=false)`` is the same
score), TRACE without the autocovariance, without the fixed-point factor, without the homogeneity,
and TRACE itself. Each zoo model's generated images (a fresh run of generator seeds) and a real
set are scored under every zoo model, clean and under the robustness config's 16 perturbations,
as the bench applies them. Pair AUC: a target's images against another model's (the pairs on one
autoencoder left out); real AUC: against the real images. Intervals: images resampled within each
source, one draw for every variant, target and perturbation (so the differences are paired).

    python benchmarks/trace_ablation.py [--seed 1000] [--n 24] [--real zoo-real-eval] [--resamples 300]

Its design split was generator seeds 0..15 with zoo-real-cal; its confirmation seeds 1000..1023
with zoo-real-eval (docs/methods.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import aedr
from aedr.bench.config import load_config
from aedr.perturbations import parse_perturbations, perturb_image
from aedr.reconstruction import ReconstructionCache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired_methods import aucs  # noqa: E402

VARIANTS = {
    "AEDR (posterior mean)": ("aedr", {"latent": "mean"}),
    "+ autocovariance first loss": ("trace", {"fixed_point": False}),
    "+ fixed-point factor": ("trace", {"first_loss": "l2"}),
    "TRACE": ("trace", {}),
    "TRACE without homogeneity": ("trace", {"calibrate": False}),
}


def images(models, seed: int, n: int, real: str) -> dict[str, list[aedr.LoadedImage]]:
    out = {m.name: [aedr.LoadedImage.from_array(np.asarray(im), f"{m.name}/seed-{seed + i}")
                    for i, im in enumerate(m.generate(n, seed=seed))] for m in models}
    out["real"] = aedr.get_plugins().datasets.get(real).images()[:n]
    return out


def score_all(models, sources, chains) -> dict[str, np.ndarray]:
    """Scores [variant][target, perturbation, source, image]."""
    names = list(sources)
    n = max(map(len, sources.values()))
    out = {v: np.full((len(models), len(chains), len(names), n), np.nan) for v in VARIANTS}
    for ti, model in enumerate(models):
        t0 = time.perf_counter()
        for pi, chain in enumerate(chains):
            batch = [im if chain is None else perturb_image(chain, im, 0) for s in names for im in sources[s]]
            where = [(names.index(s), i) for s in names for i in range(len(sources[s]))]
            cache = ReconstructionCache()
            for v, (method, options) in VARIANTS.items():
                scores = aedr.build_method(aedr.get_plugins().methods.get(method), options).score(model, batch, cache=cache)
                for (si, i), value in zip(where, scores):
                    out[v][ti, pi, si, i] = value
        print(f"  {model.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1000, help="first generator seed of each model's images")
    ap.add_argument("--n", type=int, default=24, help="images per model and real set")
    ap.add_argument("--real", default="zoo-real-eval")
    ap.add_argument("--resamples", type=int, default=300)
    args = ap.parse_args()
    config = load_config("robustness")
    models = [aedr.get_model(name) for name in aedr.get_plugins().models.names() if name.startswith("zoo-")]
    chains = [None, *parse_perturbations(config.perturbations, aedr.get_plugins().perturbations)]
    sources = images(models, args.seed, args.n, args.real)
    print(f"{len(models)} zoo models, seeds {args.seed}..{args.seed + args.n - 1}, {args.real}; clean and {len(chains) - 1} perturbations",
          file=sys.stderr, flush=True)
    scores = score_all(models, sources, chains)
    targets, names = [m.name for m in models], list(sources)
    weights = {m.name: m.autoencoder_fingerprint() for m in models}
    shared = {(a, b) for a in targets for b in targets if a != b and weights[a] == weights[b]}
    rng = np.random.default_rng(0)
    n = args.n
    draws = [np.tile(np.arange(n), (len(names), 1))] + [rng.integers(0, n, (len(names), n)) for _ in range(args.resamples)]
    kinds = {k: [i for i, c in enumerate(chains) if c is not None and c.kind == k] for k in ("jpeg", "crop", "blur", "noise")}
    rest = [i for i, c in enumerate(chains) if c is not None]
    rows = {}
    for v, x in scores.items():
        figs = []
        for d in draws:
            pair, real = aucs(x, targets, names, shared, d)
            figs.append([pair[0], pair[rest].mean(), real[0], real[rest].mean(), *(pair[i].mean() for i in kinds.values())])
        rows[v] = np.array(figs)
    base = rows["AEDR (posterior mean)"]
    cols = ["clean pairs AUC", "robust pairs AUC", "clean real AUC", "robust real AUC", *kinds]
    print(f"n = {n} images per model and real set, {len(targets)} targets, {args.resamples} resamples")
    print("| variant | " + " | ".join(cols) + " | Δ robust pairs vs AEDR | Δ clean pairs vs AEDR |")
    print("| --- |" + " ---: |" * (len(cols) + 2))
    for v, r in rows.items():
        cells = [f"{r[0, k]:.3f} [{np.percentile(r[1:, k], 2.5):.3f}, {np.percentile(r[1:, k], 97.5):.3f}]" if k < 4 else f"{r[0, k]:.3f}"
                 for k in range(len(cols))]
        for k in (1, 0):
            d = r[1:, k] - base[1:, k]
            cells.append(f"{r[0, k] - base[0, k]:+.3f} [{np.percentile(d, 2.5):+.3f}, {np.percentile(d, 97.5):+.3f}]")
        print(f"| {v} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
