"""The robustness grid on TAEF2, the FLUX.2 tiny autoencoder, as a real autoencoder.

TAEF2 has no generator, so its "own" images are its decoder's outputs for held-out photographs:

1. 64x64 tiles are cut from the photographs bundled with scikit-image and scikit-learn (the zoo's
   corpus), on a non-overlapping grid, skipping flat tiles. The zoo's training and calibration
   photographs give the tiles TAEF2 reconstructs; its evaluation photographs (chelsea, flower) give
   the real images. One sub-folder per photograph: the bench resamples photographs, not tiles.
2. ``aedr reconstruct --model taef2`` saves D(E(x)) of each tile to 8 bits: the TAEF2-made images.
3. ``aedr bench --config robustness --models taef2`` with those folders: thresholds from 100 clean
   TAEF2-made images, 8 TAEF2-made and 8 real evaluation images, each clean and under the grid's 16
   perturbations. With one model there are no model pairs: the figures are TAEF2's images against
   the real ones.

    python benchmarks/robustness_taef2.py [--weights DIR] [--out aedr-runs/robustness-taef2] [-- BENCH ARGS]

``--weights``: the folder holding taef2_encoder.pth and taef2_decoder.pth (default: $AEDR_MODEL_TAEF2,
else ../shared/weights/taesd beside the checkout). Extra arguments after ``--`` go to ``aedr bench``
(e.g. ``-- --methods aedr aeroblade*``). Runs resume: tiles, reconstructions and scores already
there are kept.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from aedr_zoo import data

TILE = 64
OWN_PER_PHOTO = 16  # 8 photographs x 16 >= 100 calibration + 8 evaluation images
REAL_PER_PHOTO = 16


def tiles(photo: np.ndarray, n: int, tile: int = TILE, stride: int | None = None) -> list[np.ndarray]:
    """Up to ``n`` ``tile`` x ``tile`` tiles spread evenly over the photograph's grid of step
    ``stride`` (default ``tile``: no overlap), flat ones (std < the zoo's MIN_STD) left out."""
    h, w = photo.shape[:2]
    step = stride or tile
    grid = [(y, x) for y in range(0, h - tile + 1, step) for x in range(0, w - tile + 1, step)]
    usable = [photo[y : y + tile, x : x + tile] for y, x in grid]
    usable = [t for t in usable if t.std() >= data.MIN_STD]
    step = max(1, len(usable) // n)
    return [np.ascontiguousarray(t) for t in usable[::step][:n]]


def write_tiles(root: Path, splits: tuple[str, ...], per_photo: int) -> int:
    count = 0
    for source in data.SOURCES:
        if source.split not in splits:
            continue
        folder = root / source.name
        folder.mkdir(parents=True, exist_ok=True)
        photos = [data.load_photo(source.package, f) for f in source.files]
        for i, t in enumerate(tiles(photos[0], per_photo)):
            path = folder / f"{source.name}-{i:03d}.png"
            if not path.is_file():
                Image.fromarray(t).save(path)
            count += 1
    return count


def default_weights() -> str:
    env = os.environ.get("AEDR_MODEL_TAEF2")
    return env or str(Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "taesd")


def taef2_arguments(description: str, out: str, add: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """A TAEF2 benchmark's command line: ``--weights`` (checked: exits naming the missing files),
    ``--out`` (default ``out``), the options ``add`` declares, then ``--`` and arguments for ``aedr
    bench``; returns the parsed options (``weights`` a Path) and those bench arguments."""
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--weights", default=default_weights(), help="folder with taef2_encoder.pth and taef2_decoder.pth")
    ap.add_argument("--out", type=Path, default=Path(out))
    if add is not None:
        add(ap)
    args = ap.parse_args(argv)
    args.weights = Path(args.weights)
    if not all((args.weights / f).is_file() for f in ("taef2_encoder.pth", "taef2_decoder.pth")):
        sys.exit(f"error: taef2_encoder.pth and taef2_decoder.pth not found in {args.weights} (--weights DIR)")
    return args, extra


def main() -> None:
    args, extra = taef2_arguments(__doc__.splitlines()[0], "aedr-runs/robustness-taef2")
    weights = args.weights
    env = {**os.environ, "AEDR_MODEL_TAEF2": str(weights)}
    out = args.out
    own_tiles, real_tiles, made = out / "tiles" / "own", out / "tiles" / "real", out / "taef2-made"
    n_own = write_tiles(own_tiles, ("train", "cal"), OWN_PER_PHOTO)
    n_real = write_tiles(real_tiles, ("eval",), REAL_PER_PHOTO)
    print(f"{n_own} tiles to reconstruct in {own_tiles}, {n_real} real tiles in {real_tiles}", flush=True)
    aedr = [sys.executable, "-c", "from aedr.cli import main; main()"]
    t0 = time.perf_counter()
    subprocess.run([*aedr, "reconstruct", str(own_tiles), "--recursive", "--model", "taef2", "--out", str(made)], env=env, check=True)
    bench = [*aedr, "bench", "--config", "robustness", "--models", "taef2", "--real", str(real_tiles), "--real-cal", "none",
             "--out", str(out / "bench"), *extra]
    print("$ AEDR_MODEL_TAEF2=" + str(weights) + " AEDR_IMAGES_TAEF2=" + str(made) + " aedr " + " ".join(bench[3:]), flush=True)
    subprocess.run(bench, env={**env, "AEDR_IMAGES_TAEF2": str(made)}, check=True)
    print(f"total {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
