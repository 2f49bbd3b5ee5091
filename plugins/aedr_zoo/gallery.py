"""Contact sheets: real evaluation crops, their reconstructions, and generated samples, per model."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from . import data
from .evaluate import psnr_uint8, reconstruct_uint8
from .zoo import ZooModel

SCALE = 3
PAD = 2


def _grid(images: np.ndarray, cols: int) -> np.ndarray:
    """uint8 N x H x W x 3 -> one uint8 image with ``cols`` columns and a white gutter."""
    n, h, w, _ = images.shape
    rows = (n + cols - 1) // cols
    sheet = np.full((rows * (h + PAD) + PAD, cols * (w + PAD) + PAD, 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        sheet[PAD + r * (h + PAD) : PAD + r * (h + PAD) + h, PAD + c * (w + PAD) : PAD + c * (w + PAD) + w] = im
    return sheet


def contact_sheet(model: ZooModel, n_real: int = 16, n_generated: int = 32, seed: int = 0) -> Image.Image:
    """Rows: real eval crops, their reconstructions, then generated samples (seeds ``seed`` ...)."""
    eval_images = data.split_data("eval").images
    idx = np.linspace(0, len(eval_images) - 1, n_real).round().astype(int)
    real = eval_images[idx]
    rec = reconstruct_uint8(model.autoencoder(), real)
    psnr = float(psnr_uint8(real, rec).mean())
    gen = np.stack([np.asarray(im) for im in model.generate(n_generated, seed=seed)])
    cols = n_real
    blocks = [
        (f"real evaluation crops ({len(real)} of {len(eval_images)})", _grid(real, cols)),
        (f"reconstructions (mean PSNR {psnr:.2f} dB on these)", _grid(rec, cols)),
        (f"generated: DDIM {model.meta['sampling_steps']} steps, decoded by {model.name}'s decoder (seeds {seed}..{seed + n_generated - 1})",
         _grid(gen, cols)),
    ]
    label_h = 14
    width = max(b.shape[1] for _, b in blocks) * SCALE
    parts: list[Image.Image] = []
    title = Image.new("RGB", (width, 2 * label_h), "white")
    ImageDraw.Draw(title).text(
        (4, 4), f"{model.name} ({model.family}): {model.description}", fill="black"
    )
    parts.append(title)
    for label, block in blocks:
        lab = Image.new("RGB", (width, label_h), "white")
        ImageDraw.Draw(lab).text((4, 1), label, fill="black")
        parts.append(lab)
        img = Image.fromarray(block).resize((block.shape[1] * SCALE, block.shape[0] * SCALE), Image.Resampling.NEAREST)
        parts.append(img)
    sheet = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for p in parts:
        sheet.paste(p, (0, y))
        y += p.height
    return sheet


def write_gallery(models: list[ZooModel], out: Path, seed: int = 0, progress: Callable[[int], None] | None = None) -> list[Path]:
    """One PNG per model in ``out``; returns the paths written. ``progress(1)`` after each sheet."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with torch.no_grad():
        for model in models:
            path = out / f"{model.name}.png"
            contact_sheet(model, seed=seed).save(path)
            paths.append(path)
            if progress is not None:
                progress(1)
    return paths
