"""TAEF2 at 256 px, judged on content its calibration never saw: the robustness grid, AEDR and TRACE.

The calibration images and the evaluation images come from different photographs, and the real
images share the evaluation images' content, so that neither the threshold nor the AUC can lean on
what the photographs show:

1. 256x256 tiles from the zoo's corpus photographs (flat ones left out). Calibration content: the
   train and cal photographs (grid step 128), 100 tiles taking turns over the photographs.
   Evaluation content: the two eval photographs (chelsea, flower; grid step 32). In each photograph
   the tiles at even places become TAEF2-made images and those at odd places stay real, so each
   TAEF2-made image has real neighbours overlapping it; both sets take turns over the two photographs.
2. ``aedr reconstruct --model taef2`` saves D(E(x)) of the calibration and evaluation-own tiles to
   8 bits: the TAEF2-made images, named so that the bench takes the 100 calibration tiles first.
3. ``aedr bench --config robustness --models taef2 --methods aedr trace --n-eval N --n-real N``:
   thresholds from the 100 clean calibration images, N TAEF2-made and N real evaluation images from
   the evaluation content, each clean and under the grid's 16 perturbations (one folder each, no
   sub-folders: the bootstrap resamples images).
4. A table of the TPR at each threshold: the share of the held-out TAEF2-made images attributed to
   TAEF2, clean and under each perturbation, with Wilson intervals (the card promises 1 - alpha).

    python benchmarks/taef2_held_out.py [--weights DIR] [--n 24] [--out aedr-runs/taef2-held-out] [-- BENCH ARGS]

Runs resume: tiles, reconstructions and scores already there are kept.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from aedr.datasets import take_turns
from aedr_zoo import data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from robustness_taef2 import taef2_arguments, tiles  # noqa: E402

TILE, N_CAL = 256, 100


def photo_tiles(splits: tuple[str, ...], stride: int, every: int = 1, offset: int = 0) -> list[tuple[str, Image.Image]]:
    """(photograph, tile) for every ``every``-th usable tile (from ``offset``) of each photograph of
    ``splits``, the photographs taking turns."""
    found = []
    for source in data.SOURCES:
        if source.split in splits:
            photo = data.load_photo(source.package, source.files[0])
            found += [(source.name, Image.fromarray(t)) for t in tiles(photo, 10_000, TILE, stride)[offset::every]]
    return take_turns(found, lambda item: item[0])


def write(folder: Path, items: list[tuple[str, Image.Image]], prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (photo, tile) in enumerate(items):
        path = folder / f"{prefix}-{i:04d}-{photo}.png"
        if not path.is_file():
            tile.save(path)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (95 % by default)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def tpr_table(run: Path) -> list[str]:
    """Per method and perturbation: the share of TAEF2's held-out evaluation images scoring below the
    threshold fitted on the clean calibration images (the TPR the card promises to be 1 - alpha)."""
    import json

    import pandas as pd

    metrics = json.loads((run / "metrics.json").read_text())
    taus = {(t["label"], t["target"]): t for t in metrics["thresholds"] if t["perturbation"] == ""}
    scores = pd.read_parquet(run / "scores.parquet")
    own = scores[(scores.split == "eval") & (scores.source == scores.target) & (scores.status == "ok")]
    lines = ["| method | perturbation | TPR at tau (alpha) | 95 % interval (Wilson) | n |", "| --- | --- | ---: | ---: | ---: |"]
    for (label, target, pert), g in own.groupby(["label", "target", "perturbation"], sort=False):
        tau = taus[(label, target)]
        k, n = int((g.score < tau["threshold"]).sum()), len(g)
        low, high = wilson(k, n)
        lines.append(f"| {label} | {pert or 'clean'} | {100 * k / n:.1f} % ({tau['alpha']}) | [{100 * low:.1f}, {100 * high:.1f}] | {n} |")
    return lines


def main() -> None:
    add = lambda ap: ap.add_argument("--n", type=int, default=24, help="TAEF2-made and real evaluation images (each)")  # noqa: E731
    args, extra = taef2_arguments(__doc__.splitlines()[0], "aedr-runs/taef2-held-out", add)
    weights = args.weights
    cal = photo_tiles(("train", "cal"), TILE // 2)[:N_CAL]
    own = photo_tiles(("eval",), TILE // 8, every=2, offset=0)[: args.n]
    real = photo_tiles(("eval",), TILE // 8, every=2, offset=1)[: args.n]
    if len(cal) < N_CAL or len(own) < args.n or len(real) < args.n:
        sys.exit(f"error: {len(cal)} calibration, {len(own)} own and {len(real)} real tiles; need {N_CAL}, {args.n}, {args.n}")
    out = args.out
    tiles_dir, made, real_dir = out / "tiles", out / "taef2-made", out / "real"
    write(tiles_dir, cal, "0-cal")
    write(tiles_dir, own, "1-held-out")
    write(real_dir, real, "real")
    print(f"{len(cal)} calibration and {len(own)} held-out tiles to reconstruct, {len(real)} real tiles", flush=True)
    env = {**os.environ, "AEDR_MODEL_TAEF2": str(weights)}
    aedr = [sys.executable, "-c", "from aedr.cli import main; main()"]
    t0 = time.perf_counter()
    subprocess.run([*aedr, "reconstruct", str(tiles_dir), "--model", "taef2", "--out", str(made)], env=env, check=True)
    bench = [*aedr, "bench", "--config", "robustness", "--models", "taef2", "--methods", "aedr", "trace",
             "--real", str(real_dir), "--real-cal", "none", "--n-cal", str(N_CAL), "--n-eval", str(args.n),
             "--n-real", str(args.n), "--out", str(out / "bench"), *extra]
    print("$ AEDR_MODEL_TAEF2=" + str(weights) + " AEDR_IMAGES_TAEF2=" + str(made) + " aedr " + " ".join(bench[3:]), flush=True)
    subprocess.run(bench, env={**env, "AEDR_IMAGES_TAEF2": str(made)}, check=True)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)
    print("\n".join(tpr_table(out / "bench")))


if __name__ == "__main__":
    main()
