"""AEDR on the embedded zoo: ROC AUC of each model's own generated images against real evaluation
crops, and against the images of every other zoo model, under that model's autoencoder.

    python benchmarks/zoo_auc.py [--n 64] [--method aedr] [--out zoo_auc.md]

Lower scores mean "belonging"; AUC is that of the score ranking own-generated images below the other
set (1.0 = perfect separation, 0.5 = chance). Runs on the CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import aedr
from aedr_zoo import data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="images per set")
    ap.add_argument("--method", default="aedr")
    ap.add_argument("--seed", type=int, default=5000, help="first generation seed")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    plugins = aedr.get_plugins()
    names = sorted(n for n in plugins.models.names() if n.startswith("zoo-"))
    method = plugins.method(args.method)
    real_all = data.split_data("eval").loaded()
    real = real_all[:: max(1, len(real_all) // args.n)][: args.n]
    generated = {
        n: [aedr.LoadedImage.from_pil(im, f"{n}-{i}") for i, im in enumerate(plugins.model(n).generate(args.n, seed=args.seed))]
        for n in names
    }
    header = "| target | vs real | " + " | ".join(f"vs {n}" for n in names) + " | s/image |"
    lines = [header, "|" + " --- |" * (len(names) + 3)]
    for target in names:
        model = plugins.model(target)
        t0 = time.time()
        own = method.score(model, generated[target])
        cells = []
        for other in ["real", *names]:
            if other == target:
                cells.append("-")
                continue
            imgs = real if other == "real" else generated[other]
            s = method.score(model, imgs)
            labels = np.r_[np.ones(len(own)), np.zeros(len(s))]
            cells.append(f"{roc_auc_score(labels, -np.r_[own, s]):.3f}")
        per_image = (time.time() - t0) / (len(own) + len(real) + len(names[1:]) * args.n)
        lines.append(f"| {target} | " + " | ".join(cells) + f" | {per_image:.4f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(f"\n{method.label}, n = {args.n} per set; AUC of own generated images scoring lower\n\n{table}")
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
