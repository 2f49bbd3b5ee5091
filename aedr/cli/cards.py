"""``aedr calibrate`` and ``aedr attribute``: making calibration cards and applying them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..calibration import CALIBRATION_TOO_SMALL, DEFAULT_ALPHA, calibration_too_small, parse_alpha
from ..files import check_output_file, json_text, OutputError, prepare_output_folder, write_frame
from ..text import fold_name, markup, names_folded_to_fit, natural_width, safe_str
from .shared import (
    app,
    BatchOpt,
    check_device_option,
    DeviceOpt,
    downscale_note,
    DtypeOpt,
    err,
    fail,
    finish,
    JsonOpt,
    load_inputs,
    MaxSideOpt,
    method_from_flags,
    MethodOpt,
    OptionOpt,
    out,
    perturbations_from_flags,
    PixelBudgetOpt,
    plugins,
    print_skips,
    progress_bar,
    save_output,
    SeedOpt,
)


@app.command("calibrate")
def calibrate_cmd(
    model: str = typer.Option(..., "--model", "-m", help="Model whose own images calibrate the threshold."),
    out_file: Path = typer.Option(..., "--out", help="Where to write the calibration card (JSON)."),
    method: str = MethodOpt,
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of the model's own images (default: the model's calibration source)."),
    generate: Optional[int] = typer.Option(None, "--generate", help="Generate N images with the model instead."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="With --generate: also save them as NNN.png here."),
    alpha: str = typer.Option(str(DEFAULT_ALPHA), "--alpha", help="False-rejection rate, or 'auto' (needs --non-belonging)."),
    non_belonging: Optional[Path] = typer.Option(None, "--non-belonging", help="With --alpha auto: folder of images NOT from the model."),
    option: List[str] = OptionOpt,
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: Optional[str] = BatchOpt,
    seed: Optional[int] = SeedOpt,
    max_side: Optional[int] = MaxSideOpt,
    pixel_budget: int = PixelBudgetOpt,
) -> None:
    """Fit a model's threshold on its own images and save a calibration card."""
    from ..card import calibrate

    alpha_value = calibration_flags(images, generate, save_images, alpha, non_belonging)
    target = plugins().model(model)
    m = method_from_flags(method, option, device, dtype, batch_size, seed)
    check_output_file(out_file, suffixes=None)
    if save_images is not None:
        prepare_output_folder(save_images, option="--save-images", create=False)
    images, generate = calibration_source(target, images, generate, save_images)
    if images is not None:
        belonging, skipped, source = folder_images(images, pixel_budget=pixel_budget, max_side=max_side)
    else:
        belonging, skipped, source = generated_images(target, generate, seed or 0, m.options.device, save_images)
    nb = load_inputs([non_belonging], pixel_budget=pixel_budget, max_side=max_side).images if non_belonging is not None else []
    with progress_bar(f"calibrating {m.label} on {target.name}", len(belonging) + len(nb)) as advance:
        try:
            card = calibrate(target, m, belonging, alpha=alpha_value, non_belonging=nb, source=source, progress=advance)
        except ValueError as exc:
            fail(str(exc))
    print_card(card, m.label)
    problem = save_output(out_file, card.save, "the calibration card", out)
    finish(problem, skipped)


def calibration_flags(images: Path | None, generate: int | None, save_images: Path | None, alpha: str, non_belonging: Path | None):
    """The calibration flags checked together, before any model is loaded or image generated; the
    alpha they give (a number or "auto")."""
    if images is not None and generate is not None:
        fail("give exactly one of --images DIR or --generate N (neither: the model's own calibration source)")
    if images is not None and save_images is not None:
        fail("--save-images saves generated images: it goes with --generate N, not --images DIR")
    if generate is not None and generate < 2:
        fail(f"--generate must be at least 2 (a threshold needs two calibration scores), got {generate}")
    try:
        alpha_value = parse_alpha(alpha)
    except ValueError as exc:
        fail(f"--{exc}")
    if alpha_value == "auto" and non_belonging is None:
        fail("--alpha auto needs --non-belonging DIR (images not made by the model)")
    if alpha_value != "auto" and non_belonging is not None:
        fail(f"--non-belonging is used only with --alpha auto (got --alpha {alpha})")
    return alpha_value


def calibration_source(target, images: Path | None, generate: int | None, save_images: Path | None) -> tuple[Path | None, int | None]:
    """(folder, number to generate): the flags', or else the model's own calibration source."""
    if images is None and generate is None:
        images, generate = target.calibration.folder, target.calibration.generate
        if images is None and not generate:
            fail(f"model {target.name!r} declares no calibration source; give --images DIR or --generate N")
    if images is not None and save_images is not None:  # the model's own calibration source is a folder
        fail(f"--save-images saves generated images, but model {target.name!r} calibrates on the folder {safe_str(images)}")
    if images is None and not target.can_generate:
        fail(f"model {target.name!r} has no generator; use --images DIR")
    return images, generate


def folder_images(images: Path, *, pixel_budget: int, max_side: int | None):
    """(images, skipped inputs, how the card names its source) of a calibration folder, which must
    give a threshold its two images at least."""
    loaded = load_inputs([images], pixel_budget=pixel_budget, max_side=max_side)
    belonging, source = loaded.images, f"folder {safe_str(images)}"
    if downscale_note(belonging, max_side):
        source += f"; {downscale_note(belonging, max_side)}"
    if len(belonging) < 2:
        print_skips(loaded.skipped)
        fail(f"--images {safe_str(images)}: {len(belonging)} usable image(s); a threshold needs at least 2")
    return belonging, loaded.skipped, source


def generated_images(target, n: int, seed: int, device: str, save_images: Path | None):
    """(images, skipped inputs: none, how the card names its source) of ``n`` images the model
    generates from ``seed`` on, also saved as NNN.png in ``save_images`` when given."""
    from ..generation import generate
    from ..images import LoadedImage

    with progress_bar(f"generating {n} images with {target.name}", n) as advance:
        pil = generate(target, n, seed=seed, device=device, progress=advance)
    belonging = [LoadedImage.from_pil(im, f"{target.name}/{i:03d}.png") for i, im in enumerate(pil)]
    if save_images is not None:
        save_images.mkdir(parents=True, exist_ok=True)
        for i, im in enumerate(pil):
            im.save(save_images / f"{i + 1:03d}.png")
    return belonging, [], f"generated {n} images, seeds {seed}..{seed + n - 1}"


def print_card(card, label: str) -> None:
    """What a new card says: its threshold and scores, its domain, and a warning when it was fitted
    on too few images for its alpha."""
    s = card.summary
    out.print(
        f"[bold]{markup(card.model)}[/] / {markup(label)}: threshold = {card.threshold!r} at alpha = {card.alpha} ({markup(card.alpha_selection)}); "
        f"{card.n_images} images, scores {s['min']:.4g} .. {s['max']:.4g} (median {s['median']:.4g})"
    )
    if card.domain is not None:  # aedr attribute marks images outside it
        out.print(f"calibration domain: {markup(card.domain.describe())}")
    if card.estimation_accuracy is not None:
        out.print(f"estimation-split accuracy: {card.estimation_accuracy:.4f}")
    if calibration_too_small(card.n_images, card.alpha):
        err.print(f"[yellow]warning:[/] {card.n_images} calibration images at alpha {card.alpha:g}: {CALIBRATION_TOO_SMALL}; "
                  f"use at least {math.ceil(5 / card.alpha)}")


@app.command("attribute")
def attribute_cmd(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders."),
    card: List[Path] = typer.Option(..., "--card", "-c", help="Calibration card(s) (repeatable): the candidate models."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the per-image, per-card table (csv/parquet/json)."),
    device: Optional[str] = DeviceOpt,
    as_json: bool = JsonOpt,
    max_side: Optional[int] = MaxSideOpt,
    pixel_budget: int = PixelBudgetOpt,
    stability: bool = typer.Option(
        False, "--stability", help="Re-score each image under mild perturbations; a card whose verdicts disagree, or whose threshold is "
        "within the band of the score, answers 'uncertain'."
    ),
    stability_perturb: List[str] = typer.Option(
        [], "--stability-perturb", help="With --stability: the perturbations (repeatable SPEC; default: jpeg:95 resize:0.9 crop:0.95)."
    ),
    stability_band: Optional[float] = typer.Option(
        None, "--stability-band", help="With --stability: the band's half-width around each threshold, as a fraction of the interquartile "
        "range of the card's calibration scores (default 0.1; 0: no band)."
    ),
    seed: int = typer.Option(0, "--seed", help="With --stability: the seed of the perturbations (with each image's content)."),
) -> None:
    """Which of the candidate models (one card each) made each image? 'none' if no card accepts it.

    With --stability the answer is 'attributed' (to the models listed), 'none' or 'uncertain'."""
    from ..attribution import attribute, prepare_cards, shared_autoencoders
    from ..card import CalibrationCard

    check_device_option(device)
    chains, band = stability_options(stability, stability_perturb, stability_band)
    try:  # every card in full, before any image is read or scored
        cards = prepare_cards([CalibrationCard.load(c) for c in card], plugins=plugins(), device=device)
    except ValueError as exc:
        fail(str(exc))
    for models in shared_autoencoders(cards):
        err.print(f"[yellow]warning:[/] {markup(' and '.join(models))} share one autoencoder (identical weights): no autoencoder-based "
                  "method can tell their images apart, so a verdict for one holds for the other(s)")
    if out_file is not None:
        check_output_file(out_file, suffixes=(".csv", ".parquet", ".json"))
    loaded = load_inputs(inputs, pixel_budget=pixel_budget, max_side=max_side)
    with progress_bar("attributing", len(loaded.images) * len(cards) * (1 + len(chains))) as advance:
        results, skipped = attribute(loaded.images, cards, plugins=plugins(), device=device, progress=advance,
                                     stability=stability, stability_perturbations=chains or None, band=band, seed=seed)
    skipped = loaded.skipped + skipped
    downscaled = {im.id: im.meta.get("downscaled_from", "") for im in loaded.images}
    problem = None
    if out_file is not None:
        problem = save_rows(out_file, [row for a in results for row in a.to_rows(stability, downscaled.get(a.image, ""))], "verdicts")
    if as_json:  # strict JSON: a number that is not finite is written as null, and its verdict's status says so
        out.print_json(json_text([a.to_dict(stability, downscaled.get(a.image, "")) for a in results]
                                 + [{"image": s.id, "status": "skipped", "error": s.error} for s in skipped]))
        finish(problem)
        return
    print_attributions(results, cards, stability, f"{', '.join(c.id for c in chains)}, band ±{band:g} IQR" if stability else "")
    print_uncertain(results)
    finish(problem, skipped)


def stability_options(stability: bool, perturb: list[str], band: float | None) -> tuple[list, float]:
    """(the perturbations, the band) of the stability check: the flags' or the defaults; none
    without ``--stability``, where the other stability flags are errors."""
    from ..attribution import STABILITY_BAND, STABILITY_PERTURBATIONS

    if not stability and (perturb or band is not None):
        fail("--stability-perturb and --stability-band go with --stability")
    band = STABILITY_BAND if band is None else band
    if not (band >= 0 and math.isfinite(band)):
        fail(f"--stability-band must be a fraction >= 0 of the calibration scores' interquartile range, got {band}")
    chains = perturbations_from_flags(perturb or list(STABILITY_PERTURBATIONS), "--stability-perturb") if stability else []
    return chains, band


def save_rows(out_file: Path, rows: list[dict], noun: str) -> OutputError | None:
    """The rows as a table (csv, parquet or json by ``out_file``'s suffix; every key a column, in the
    order the keys first appear) saved with :func:`save_output`."""
    import pandas as pd

    columns = list(dict.fromkeys(k for r in rows for k in r)) if rows else ["image"]
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return save_output(out_file, lambda tmp: write_frame(frame, tmp, out_file.suffix), f"{len(rows)} {noun}")


def print_uncertain(results) -> None:
    """Why each uncertain card is uncertain, a line each (never folded)."""
    for a in results:
        for v in a.verdicts:
            if v.uncertain:
                why = "; ".join(v.stability.reasons) + (f" ({'; '.join(v.stability.errors)})" if not v.stability.perturbed else "")
                err.print(f"note: {markup(a.image)}: {markup(v.model)} is uncertain: {markup(why)}")


def print_attributions(results, cards, stability: bool, checks: str) -> None:
    """The verdicts as a table that fits the terminal: names fold after separators (a narrow terminal
    gives the thresholds a line of their own instead of a column); a verdict outside its card's
    calibration domain is marked "!" and explained under the table."""
    title = "attribution (score < threshold = belongs; tail = P(S >= score) under the model's calibration KDE)"
    title += f"; stability: {checks}" if stability else ""
    wide = attribution_table(results, stability, None, with_threshold=True)
    out.print(Text(title, style="bold"), soft_wrap=False)
    if natural_width(out, wide) <= out.width:
        out.print(wide, soft_wrap=False)
    else:  # the thresholds get a line of their own, the names fold to the room left; still too wide: the
        # stability columns go (each uncertain card's reasons follow the table as notes)
        for checks in ((True, False) if stability else (False,)):
            table = names_folded_to_fit(out, lambda names: attribution_table(results, stability, names, with_threshold=False, with_checks=checks),
                                        least=8, name_columns=2)  # the image's name and the model's
            if natural_width(out, table) <= out.width or not checks:
                break
        out.print(table, soft_wrap=False)
        out.print("thresholds: " + markup(", ".join(f"{c.card.model} {c.card.threshold:.6g}" for c in cards)), soft_wrap=False)
        if stability and not checks:
            out.print(f"agree, in band: not shown at {out.width} columns (--out writes them; the notes below give each uncertain card's reasons)",
                      soft_wrap=False)
    for a in results:
        for v in a.verdicts:
            if v.outside_domain:
                out.print(f"[yellow]![/] {markup(a.image)} under {markup(v.model)}: outside the card's calibration domain, the verdict is an "
                          f"extrapolation: {markup('; '.join(v.outside_domain))}", soft_wrap=False)


def attribution_table(results, stability: bool, names: int | None, *, with_threshold: bool, with_checks: bool = True) -> Table:
    """One row per image and card; ``names``: the width image and model names fold to (None: whole);
    ``with_checks``: with the stability check's columns (agreeing copies, score in the band)."""

    def name(text: str) -> str:
        return markup(fold_name(text, names) if names else text)

    table = Table()
    table.add_column("image", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for col in ("score", *(["threshold"] if with_threshold else [])):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("belongs", no_wrap=True)
    table.add_column("tail", justify="right", no_wrap=True)
    if stability and with_checks:
        table.add_column("agree", justify="right", no_wrap=True)  # perturbed copies with the clean verdict
        table.add_column("in band", no_wrap=True)
    # model names, wrapped after their commas; never narrower than its header or its longest word ("uncertain", a model name),
    # and no wider where the names fold (they get the room first)
    header = "decision" if stability else "verdict"
    words = [w for a in results for w in verdict_text(a, stability).replace(":", ",").split(",")]
    least = max([len(header), *(len(w.strip()) for w in words)])
    table.add_column(header, style="bold", min_width=least, max_width=least if names else None)
    for a in results:
        for k, v in enumerate(a.verdicts):
            mark = " [yellow]![/]" if v.outside_domain else ""
            cells = [name(a.image) if k == 0 else "", name(v.model), f"{v.score:.6g}{mark}", *([f"{v.threshold:.6g}"] if with_threshold else []),
                     "[green]yes[/]" if v.belongs else "no", f"{v.tail_probability:.3g}"]
            if stability and with_checks and v.stability is not None:
                flag = "[yellow]" if v.stability.disagree else ""
                cells += [f"{flag}{v.stability.agreeing}{'[/]' if flag else ''}", "[yellow]yes[/]" if v.stability.in_band else "no"]
            cells.append(verdict_cell(a, stability) if k == 0 else "")
            table.add_row(*cells)
        table.add_section()
    return table


def verdict_text(a, stability: bool) -> str:
    return a.verdict if not stability or a.decision != "attributed" else f"attributed: {a.verdict}"


def verdict_cell(a, stability: bool) -> str:
    shown = verdict_text(a, stability)
    text = ("[yellow]" + markup(shown) + "[/]") if a.decision == "uncertain" else markup(shown)
    if any(v.outside_domain for v in a.verdicts if v.model in a.attributed_to):
        text += " [yellow]![/]"
    return text
