"""``aedr compat``: the original AEDR implementation's text files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from .. import compat
from ..calibration import DEFAULT_ALPHA
from ..files import check_output_file
from .shared import (
    BatchOpt,
    compat_app,
    DeviceOpt,
    DtypeOpt,
    fail,
    finish,
    load_inputs,
    MaxSideOpt,
    method_from_flags,
    out,
    PixelBudgetOpt,
    plugins,
    progress_bar,
    save_output,
    SeedOpt,
)


@compat_app.command("loss-ratio")
def compat_loss_ratio(
    model: str = typer.Option(..., "--model", "-m"),
    images: Path = typer.Option(..., "--images", help="Folder of images (processed in file-name order)."),
    out_file: Path = typer.Option(..., "--out"),
    distance: str = typer.Option("l2", "--distance", help="l2, l1, ssim, psnr or lpips."),
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: Optional[str] = BatchOpt,
    seed: Optional[int] = SeedOpt,
    max_side: Optional[int] = MaxSideOpt,
    pixel_budget: int = PixelBudgetOpt,
) -> None:
    """Write the original's Result file: one line 'L1 L2' per image, 8 decimals."""
    from ..scoring import usable_for

    target = plugins().model(model)
    m = method_from_flags("aedr", [f"distance={distance}"], device, dtype, batch_size, seed)
    check_output_file(out_file, suffixes=None)
    loaded = load_inputs([images], pixel_budget=pixel_budget, max_side=max_side)
    ok, bad = usable_for(target, m, loaded.images)
    with progress_bar(f"double reconstruction under {target.name}", len(ok)) as advance:
        l1, l2 = m.losses(target, ok, progress=advance)
    problem = save_text(out_file, compat.format_loss_ratio(l1, l2), f"{len(ok)} lines")
    finish(problem, loaded.skipped + list(bad))


@compat_app.command("glcm")
def compat_glcm(
    images: Path = typer.Option(..., "--images", help="Folder of images (processed in file-name order)."),
    out_file: Path = typer.Option(..., "--out"),
) -> None:
    """Write the original's GLCM file: one homogeneity per line, 6 decimals."""
    from ..glcm import homogeneity

    check_output_file(out_file, suffixes=None)
    loaded = load_inputs([images])
    problem = save_text(out_file, compat.format_glcm([homogeneity(im) for im in loaded.images]), f"{len(loaded.images)} lines")
    finish(problem, loaded.skipped)


@compat_app.command("threshold")
def compat_threshold(
    loss_ratio: Path = typer.Option(..., "--loss-ratio"),
    glcm: Path = typer.Option(..., "--glcm"),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha"),
) -> None:
    """Print the KDE threshold of the belonging scores in the two files, as the original prints it."""
    try:
        t = compat.threshold_from_files(loss_ratio, glcm, alpha)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    out.print(f"threshold = {t!r}", markup=False, highlight=False)


@compat_app.command("accuracy")
def compat_accuracy(
    loss_ratio: Path = typer.Option(..., "--loss-ratio"),
    glcm: Path = typer.Option(..., "--glcm"),
    threshold: float = typer.Option(..., "--threshold"),
) -> None:
    """Print how many images of the two files fall under (belonging) and over the threshold."""
    if not math.isfinite(threshold):
        fail(f"--threshold must be a finite number, got {threshold}")
    try:
        b, nb = compat.accuracy_from_files(loss_ratio, glcm, threshold)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    out.print(f"belonging, non_belonging = {b} {nb}", markup=False, highlight=False)


def save_text(out_file: Path, text: str, what: str):
    """``text`` saved to ``out_file`` with :func:`save_output`, said on standard output."""
    return save_output(out_file, lambda tmp: tmp.write_text(text), what, out)
