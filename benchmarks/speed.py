"""Seconds per image for AEDR and the baselines on one autoencoder and one set of images.

    python benchmarks/speed.py                      # zoo-kl-a if its weights are present, else a stand-in
    python benchmarks/speed.py --model zoo-kl16 --images 16 --ronan-iterations 300

Prints one table: seconds per image for AEDR, AEROBLADE (LPIPS; its weight-free variant, labelled, when
the LPIPS weights are absent), LatentTracer (100 iterations) and RONAN (its default budget unless
``--ronan-iterations``), each scored as one batch after the model is loaded; the ratio LatentTracer :
AEDR; and LatentTracer run the way the original runs it -- a new Python process per image that
reloads the model -- against the batched run, at equal iterations, with the scores compared.

Stand-in model: when no ``--model`` is given and the zoo's weights are not installed, an untrained
diffusers ``AutoencoderKL`` with the zoo KL architecture (blocks 32/64/64, 4 latent channels, 32x32)
is used; timings depend on the architecture, not on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import aedr

ZOO_KL_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
)


class FolderKL(aedr.ModelPlugin):
    """A diffusers autoencoder loaded from a local folder (the stand-in, saved once, reloaded per process)."""

    family = "kl"
    description = "untrained AutoencoderKL with the zoo KL architecture (timing stand-in)"

    def __init__(self, folder: Path):
        super().__init__()
        self.name, self.folder = "standin-zoo-kl", Path(folder)

    def load_autoencoder(self, device, dtype):
        return aedr.DiffusersAutoencoder.from_pretrained(
            str(self.folder), torch_dtype=dtype, device=device, size_policy=aedr.SizePolicy(multiple=4, min_side=4)
        )


def make_standin(folder: Path) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**ZOO_KL_CONFIG).save_pretrained(folder)


def resolve_model(spec: str) -> aedr.ModelPlugin:
    """``name:<registered model>`` or ``folder:<path>`` (what the per-image processes receive)."""
    kind, _, value = spec.partition(":")
    return FolderKL(Path(value)) if kind == "folder" else aedr.get_model(value)


def photo_crops(n: int, size: int, seed: int = 0) -> list[aedr.LoadedImage]:
    """Deterministic crops of the colour photographs bundled with scikit-image."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = int(rng.integers(0, p.shape[0] - size)), int(rng.integers(0, p.shape[1] - size))
        out.append(aedr.LoadedImage.from_array(np.ascontiguousarray(p[y : y + size, x : x + size]), f"crop-{i}"))
    return out


@dataclass
class Row:
    method: str
    how: str
    images: int
    seconds_per_image: float
    scores: np.ndarray


def timed_scores(method: aedr.Method, model: aedr.ModelPlugin, images) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    scores = method.score(model, images)
    return (time.perf_counter() - t) / len(images), scores


def original_latenttracer(ae: aedr.Autoencoder, x0: torch.Tensor, iterations: int) -> float:
    """LatentTracer as the original runs it on its one image: the decoder's weights left trainable (so
    every backward pass also computes their gradients), batch of one, ``loss.backward()``; Adam on the
    scaled latent, the rate halved after every step i with i % 50 == 0 (see ../shared/METHODS.md)."""
    module = getattr(ae, "module", None)
    if module is not None:
        module.requires_grad_(True)  # as loaded by a pipeline: nothing switched off
    x = ((x0 + 1) / 2).to(ae.device)
    with torch.no_grad():
        z = ae.encode(x0).mean.clone()
        if ae.latent_kind == "vq":
            z = ae.quantize(z)
        s = ae.to_scaled(z)
    s.requires_grad_(True)
    opt = torch.optim.Adam([s], lr=0.05)
    best = float("inf")
    for i in range(iterations):
        g = (ae.decode(ae.from_scaled(s), quantize=False).float() / 2 + 0.5).clamp(0, 1)
        loss = torch.nn.functional.mse_loss(g, x)
        best = min(best, loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 50 == 0:
            for group in opt.param_groups:
                group["lr"] *= 0.5
    return best


def child(args: argparse.Namespace) -> None:
    """One image in a fresh process: import, load the model, invert, print -- the original's structure."""
    from aedr.preprocess import group_by_size, to_model_tensor

    torch.set_num_threads(args.threads)
    model = resolve_model(args.model_spec)
    ae = model.autoencoder(args.device)
    image = aedr.load_image(args.child_image)
    (size,) = group_by_size([image], ae.size_policy)
    score = original_latenttracer(ae, to_model_tensor([image], size), args.lt_iterations)
    print(json.dumps({"score": score}))


def original_per_process(images, spec: str, iterations: int, *, threads: int, device: str, tmp: Path) -> tuple[float, np.ndarray]:
    """LatentTracer the way the original runs it: for each image, a new Python process that imports
    everything, loads the model ``spec`` on ``device`` and inverts that one image (:func:`child`).
    Returns the wall seconds per image and the scores."""
    from PIL import Image

    scores, t0 = [], time.perf_counter()
    for i, im in enumerate(images):
        path = tmp / f"image-{i}.png"
        Image.fromarray(im.rgb).save(path)
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child-image", str(path), "--model-spec", spec,
             "--lt-iterations", str(iterations), "--threads", str(threads), "--device", device],
            check=True, capture_output=True, text=True,
        )
        scores.append(json.loads(out.stdout.strip().splitlines()[-1])["score"])
    return (time.perf_counter() - t0) / len(images), np.array(scores)


def lpips_available() -> bool:
    from aedr.lpips import find_weights

    paths = find_weights()
    return paths.vgg16 is not None and paths.heads is not None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="registered model name (default: zoo-kl-a if installed, else the stand-in)")
    ap.add_argument("--images", type=int, default=16, help="images scored as one batch (default 16)")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels (default 32, the zoo's)")
    ap.add_argument("--lt-iterations", type=int, default=100)
    ap.add_argument("--ronan-iterations", type=int, default=None, help="default: RONAN's own default budget")
    ap.add_argument("--original-images", type=int, default=4, help="images run one process each (default 4)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, help="also write the table (markdown) to this file")
    ap.add_argument("--child-image", help=argparse.SUPPRESS)
    ap.add_argument("--model-spec", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cpu", help=argparse.SUPPRESS)  # the per-image processes' device
    args = ap.parse_args(argv)
    if args.child_image:
        return child(args)
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="aedr-speed-"))
    if args.model:
        spec = f"name:{args.model}"
    elif "zoo-kl-a" in aedr.get_plugins().models and aedr.get_model("zoo-kl-a").availability().local:
        spec = "name:zoo-kl-a"
    else:
        make_standin(tmp / "standin")
        spec = f"folder:{tmp / 'standin'}"
    model = resolve_model(spec)
    images = photo_crops(args.images, args.size)
    n = len(images)
    model.autoencoder("cpu")  # load once, outside the timings

    rows: list[Row] = []
    aedr_m = aedr.get_method("aedr", batch_size=n)
    aedr_m.score(model, images[:2])  # warm-up
    rows.append(Row("aedr", aedr_m.label, n, *timed_scores(aedr_m, model, images)))
    if lpips_available():
        ab = aedr.get_method("aeroblade", batch_size=n)
        how = ab.label
    else:
        ab = aedr.get_method("aeroblade-mse", batch_size=n)
        how = f"{ab.label} (LPIPS weights absent: weight-free variant)"
    rows.append(Row(ab.name, how, n, *timed_scores(ab, model, images)))
    lt = aedr.get_method("latenttracer", iterations=args.lt_iterations, batch_size=n)
    rows.append(Row("latenttracer", f"{lt.label}, batched ({n} per batch)", n, *timed_scores(lt, model, images)))
    ronan_opts = {} if args.ronan_iterations is None else {"iterations": args.ronan_iterations}
    ro = aedr.get_method("ronan", batch_size=n, **ronan_opts)
    rows.append(Row("ronan", f"{ro.label}, batched", n, *timed_scores(ro, model, images)))

    # The original's structure: one new process per image, each importing and loading everything.
    m = min(args.original_images, n)
    lt1 = aedr.get_method("latenttracer", iterations=args.lt_iterations, batch_size=1)
    rows.append(Row("latenttracer", f"{lt1.label}, one by one in one process", m, *timed_scores(lt1, model, images[:m])))
    per_process, child_scores = original_per_process(images[:m], spec, args.lt_iterations, threads=args.threads, device="cpu", tmp=tmp)
    rows.append(Row("latenttracer", f"original structure: new process per image, model reloaded, {args.lt_iterations} iterations", m, per_process, child_scores))

    batched_lt = rows[2]
    same = np.max(np.abs(child_scores - batched_lt.scores[:m]) / np.abs(batched_lt.scores[:m]))
    same_inproc = np.max(np.abs(rows[4].scores - batched_lt.scores[:m]) / np.abs(batched_lt.scores[:m]))
    aedr_s = rows[0].seconds_per_image

    model_desc = model.name if not isinstance(model, FolderKL) else f"{model.name} ({model.description})"
    lines = [
        f"model: {model_desc}; images: {n} crops of {args.size}x{args.size}; device: cpu, {args.threads} threads; torch {torch.__version__}",
        "",
        "| method | run | images | s / image | x AEDR |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.method} | {r.how} | {r.images} | {r.seconds_per_image:.4f} | {r.seconds_per_image / aedr_s:.1f} |")
    lines += [
        "",
        f"AEDR : LatentTracer ({args.lt_iterations} iterations) = 1 : {batched_lt.seconds_per_image / aedr_s:.0f}",
        f"batched LatentTracer vs a new process per image: {per_process / batched_lt.seconds_per_image:.1f}x faster "
        f"(scores equal within {same:.1e} relative; one by one in one process: {rows[4].seconds_per_image / batched_lt.seconds_per_image:.1f}x "
        f"slower than batched, scores within {same_inproc:.1e})",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
