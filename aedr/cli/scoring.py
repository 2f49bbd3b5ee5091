"""``aedr score`` (in memory or streamed through an executor) and ``aedr reconstruct``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table
from rich.text import Text

from ..files import check_output_file, json_text, prepare_output_folder
from ..text import fold_name, markup, names_folded_to_fit, safe_str
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
    key_value,
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
    report_saved,
    SeedOpt,
)


@app.command("score")
def score_cmd(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders."),
    model: str = typer.Option(..., "--model", "-m", help="Target model (see `aedr models`)."),
    method: str = MethodOpt,
    option: List[str] = OptionOpt,
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write scores to FILE.csv or FILE.parquet."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders (hidden ones and links to folders are not entered)."),
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: Optional[str] = BatchOpt,
    seed: Optional[int] = SeedOpt,
    as_json: bool = JsonOpt,
    max_side: Optional[int] = MaxSideOpt,
    pixel_budget: int = PixelBudgetOpt,
    perturb: List[str] = typer.Option(
        [], "--perturb", help="Score perturbed copies instead: SPEC such as jpeg:90, jpeg:90,70 (two), jpeg:75+resize:0.5 (repeatable)."
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Stream the scores with this executor (local, ray) into --out FILE.parquet, a folder of shards: any number of images, resumable.",
    ),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help='Join the Ray cluster at ADDRESS ("auto", "ray://head:10001"); implies --executor ray.'),
    executor_option: List[str] = typer.Option(
        [], "--executor-option", help="The executor's option KEY=VALUE (repeatable): for ray, actors=4, num_gpus=0.25, decode_cpus=1 ...",
    ),
    shard_size: Optional[int] = typer.Option(None, "--shard-size", min=1, help="Images per parquet shard with --executor (default 256)."),
) -> None:
    """Score images under a model: one float per image, lower = more likely made by the model.

    With --perturb, each image's perturbed copies are scored (one row per image and perturbation),
    each seeded by --seed and the image's content. With --executor (local or ray), the files are
    streamed through the executor into parquet shards, a shard at a time, and a rerun skips the
    files already scored."""
    from ..scoring import score_images

    target = plugins().model(model)
    chains = perturbations_from_flags(perturb)
    m = method_from_flags(method, option, device, dtype, batch_size, seed)
    if executor is not None or ray_address is not None:
        stream_scores(executor or "ray", ray_address, executor_option, target, m, inputs, out_file, recursive, shard_size,
                      {"max_side": max_side, "pixel_budget": pixel_budget or None}, as_json, chains)
        return
    if executor_option or shard_size is not None:
        fail("--executor-option and --shard-size go with --executor")
    if out_file is not None:
        check_output_file(out_file)
    loaded = load_inputs(inputs, recursive, pixel_budget=pixel_budget, max_side=max_side)
    with progress_bar(f"{m.label} under {target.name}", len(loaded.images) * max(1, len(chains))) as advance:
        table = score_images(target, m, loaded.images, progress=advance, perturbations=chains)
    table.skipped = loaded.skipped + table.skipped
    problem = None if out_file is None else report_saved(lambda: table.to_file(out_file), f"{len(table.rows)} scores")
    print_scores(table, f"{m.label} scores{' of perturbed copies' if chains else ''} under {target.name}", bool(chains), as_json)
    note = downscale_note(loaded.images, max_side)
    if note:
        err.print(f"note: {note}")
    finish(problem, table.skipped)


def print_scores(table, title: str, perturbed: bool, as_json: bool) -> None:
    """A score table (:class:`aedr.scoring.ScoreTable`) on standard output: its rows and skips as
    JSON records, or a table whose image names fold to the terminal's width."""
    if as_json:
        out.print_json(json_text(table.with_skips().to_dict("records")))
        return
    out.print(Text(f"{title} (lower = belonging)", style="bold"), soft_wrap=False)
    out.print(names_folded_to_fit(out, lambda names: score_table(table.rows, perturbed, names)), soft_wrap=False)


def score_table(rows, perturbed: bool, names: int | None) -> Table:
    """One row per image (and perturbation); ``names``: the width image names fold to (None: whole)."""

    t = Table()
    t.add_column("image", no_wrap=True)
    if perturbed:
        t.add_column("perturbation", no_wrap=True)
    t.add_column("score", justify="right", no_wrap=True)
    for r in rows.itertuples():
        name = markup(fold_name(r.image, names) if names else r.image) + (f" [dim](from {r.downscaled_from})[/]" if r.downscaled_from else "")
        t.add_row(name, *([markup(r.perturbation)] if perturbed else []), f"{r.score:.6g}")
    return t


def stream_scores(executor: str, ray_address: str | None, executor_option: list[str], target, m, inputs: list[Path],
                  out_file: Path, recursive: bool, shard_size: int | None, load_options: dict, as_json: bool, chains: list) -> None:
    """``aedr score --executor``: the files streamed through the executor into parquet shards."""
    from ..executors import ExecutorError, build_executor
    from ..stream import FileScoring, StreamFailed, stream_files

    if out_file is None or out_file.suffix.lower() != ".parquet":
        fail("--executor writes a folder of parquet shards: give --out NAME.parquet")
    if ray_address is not None and executor != "ray":
        fail(f"--ray-address needs the ray executor, not {executor!r}")
    options = dict(key_value(item, "--executor-option") for item in executor_option)  # parsed to the option's declared type, as -o is
    if ray_address is not None:
        options["address"] = ray_address
    try:
        runner = build_executor(plugins(), executor, options, options_from=f"executor {executor!r} (--executor-option)", text=True)
    except ExecutorError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"executor {executor!r}: {exc}")
    with progress_bar(f"{m.label} under {target.name} ({runner.name})", None) as advance:
        task = FileScoring(inputs, target, m, out_file, recursive=recursive, shard_size=shard_size or 256,
                           load_options=load_options, progress=advance, warn=lambda message: err.print(f"[yellow]warning:[/] {markup(message)}"),
                           perturbations=chains)
        try:
            report = stream_files(task, runner)
        except (FileNotFoundError, ExecutorError, StreamFailed) as exc:
            fail(str(exc))
    print_stream_report(report, out_file, as_json)


def print_stream_report(report, out_file: Path, as_json: bool) -> None:
    """What a stream did (:class:`aedr.stream.StreamReport`): as JSON on standard output, or a line on
    standard error saying where the shards are and how to read them."""
    if as_json:
        out.print_json(json_text({"out": str(out_file), **dataclasses.asdict(report)}))
        return
    err.print(
        f"{report.scored} scored, {report.skipped} skipped, {report.already} already scored in {markup(str(out_file))}; "
        f"{report.shards} shard(s) written in {report.seconds:.1f} s (one row per file: aedr.stream.ScoreShards"
        f"({markup(repr(str(out_file)))}).read(), or pandas.read_parquet)"
    )


@app.command("reconstruct")
def reconstruct_cmd(
    inputs: List[str] = typer.Argument(..., help="Image files, folders and/or registered dataset names (see `aedr plugins`)."),
    model: str = typer.Option(..., "--model", "-m", help="The model whose autoencoder reconstructs (see `aedr models`)."),
    out_dir: Path = typer.Option(..., "--out", help="Folder for the reconstructions (PNG, one per image)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders (hidden ones and links to folders are not entered)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N images (in input order)."),
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward batch."),
    max_side: Optional[int] = MaxSideOpt,
    pixel_budget: int = PixelBudgetOpt,
) -> None:
    """Save D(E(x)) for each image: a model's own images when it has no generator (the TAESD family).

    The posterior mean is decoded (deterministic) and saved to 8 bits as PNG, named after the input
    (a folder's sub-folders kept); images already in --out are kept, so an interrupted run resumes. Calibrate on the folder with
    `aedr calibrate --model M --images DIR`, or bench with AEDR_IMAGES_<MODEL>=DIR."""
    from ..files import write_text_atomic
    from ..methods.base import DTYPES
    from ..reconstruction import ReconstructionSettings

    check_device_option(device)
    target = plugins().model(model)
    if dtype is not None and dtype not in DTYPES:
        fail(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    folder = prepare_output_folder(out_dir)
    settings = ReconstructionSettings(target.name, target.autoencoder_fingerprint(), dtype or "default", max_side, pixel_budget or None)
    differ = settings.differences(folder)
    if differ:  # resuming would mix them and relabel the old ones
        fail(f"--out {safe_str(folder)} holds reconstructions made otherwise: {'; '.join(differ)}; give another --out "
             "(or empty this one)")
    items = reconstruction_inputs(inputs, folder, recursive)
    items = items[:limit] if limit else items
    names = output_names([n for n, _ in items])
    todo = [(n, src) for n, (_, src) in zip(names, items) if not (folder / n).is_file()]
    done, skipped = write_reconstructions(target, todo, folder, device=device or "cpu", dtype=dtype, batch_size=batch_size,
                                          load_options={"pixel_budget": pixel_budget or None, "max_side": max_side})
    write_text_atomic(folder / settings.RECORD, settings.to_json(inputs, len(items)))
    err.print(f"{done} reconstruction(s) written to {markup(str(folder))}, {len(items) - len(todo)} already there")
    print_skips(skipped)


def reconstruction_inputs(inputs: list[str], folder: Path, recursive: bool) -> list[tuple[Path, Path | Any]]:
    """(output name, a file to load or an image in memory) for each input image, in input order: a
    folder's files keep their path inside it (sub-folders too), a file its name, a dataset image the
    last part of its id. The output ``folder``, when it lies in an input folder, is not read as input."""
    from ..images import list_image_files

    items: list[tuple[Path, Path | Any]] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            inside = folder.resolve()
            files = [f for f in list_image_files([p], recursive=recursive) if not f.resolve().is_relative_to(inside)]
            items += [(f.relative_to(p).with_suffix(".png"), f) for f in files]
        elif p.exists():
            items.append((Path(p.name).with_suffix(".png"), p))
        elif name in plugins().datasets.names():
            items += [(Path(str(im.id).split("/")[-1]).with_suffix(".png"), im) for im in plugins().dataset(name).images()]
        else:
            fail(f"{name}: no such file or folder, and not a registered dataset (nothing was done)")
    return items


def write_reconstructions(target, todo: list[tuple[Path, Path | Any]], folder: Path, *, device: str, dtype: str | None, batch_size: int,
                          load_options: dict) -> tuple[int, list]:
    """D(E(x)) of each (output name, input) in ``todo`` saved as PNG under ``folder``, a batch at a
    time (files are read only when their batch comes); how many were written, and the inputs skipped."""
    import torch
    from PIL import Image

    from ..files import write_atomic
    from ..reconstruction import reconstruct_images

    torch_dtype = getattr(torch, dtype) if dtype else None
    policy = target.autoencoder(device, torch_dtype).size_policy
    skipped: list = []
    done = 0
    with progress_bar(f"reconstructing with {target.name}", len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            good = loaded_batch(batch, policy, load_options, skipped)
            arrays = reconstruct_images(target, [im for _, im in good], device=device, dtype=torch_dtype, batch_size=batch_size)
            for (n, _), rgb in zip(good, arrays):
                (folder / n).parent.mkdir(parents=True, exist_ok=True)
                write_atomic(folder / n, lambda tmp, rgb=rgb: Image.fromarray(rgb, "RGB").save(tmp, format="PNG"))
                done += 1
            advance(len(batch))
    return done, skipped


def loaded_batch(batch: list[tuple[Path, Path | Any]], policy, load_options: dict, skipped: list) -> list[tuple[Path, Any]]:
    """The batch's images that the autoencoder (its size ``policy``) can take, files loaded now; the
    others are added to ``skipped`` with the reason."""
    from ..images import ImageLoadError, load_image
    from ..preprocess import target_size
    from ..scoring import Skip

    good = []
    for n, src in batch:
        try:
            im = load_image(src, **load_options) if isinstance(src, Path) else src
            target_size(im, policy)
            good.append((n, im))
        except ImageLoadError as exc:
            skipped.append(Skip(safe_str(src) if isinstance(src, Path) else src.id, str(exc)))
    return good


def output_names(names: list[Path]) -> list[Path]:
    """The output names, each part made file-system safe (:func:`aedr.files.safe_name`); a
    name already taken (given twice, or a number added to an earlier one made it) gets the next free
    number (stable: it depends only on the inputs before it)."""
    from ..files import safe_name

    out: list[Path] = []
    taken: set[Path] = set()
    for name in names:
        clean = Path(*[safe_name(part) for part in name.parts])
        unique, k = clean, 1
        while unique in taken:
            k += 1
            unique = clean.with_name(f"{clean.stem}-{k}{clean.suffix}")
        taken.add(unique)
        out.append(unique)
    return out
