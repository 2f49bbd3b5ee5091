"""The ``aedr`` command line. Plugins add their own sub-commands through ``register_commands``.

Every score shown is "lower = belonging"; an image belongs to a model iff its score < threshold.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import compat
from .calibration import DEFAULT_ALPHA
from .registry import RegistryError

class CliError(Exception):
    """An error the user can fix; printed without a traceback, exit code 2."""


class AedrGroup(TyperGroup):
    """Turns user errors (bad names, bad input, bad options) into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        from .images import ImageLoadError
        from .models import WeightsUnavailableError

        try:
            return super().invoke(ctx)
        except (CliError, RegistryError, ImageLoadError, WeightsUnavailableError) as exc:
            err.print(f"[bold red]error:[/] {exc}")
            ctx.exit(2)


app = typer.Typer(
    name="aedr",
    cls=AedrGroup,
    help="Which latent diffusion model made this image? Scores are 'lower = belonging' everywhere.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
compat_app = typer.Typer(help="Read and write the original AEDR implementation's text files.", no_args_is_help=True)
app.add_typer(compat_app, name="compat")

out = Console(soft_wrap=True)
err = Console(stderr=True)

def fail(message: str) -> typing.NoReturn:
    raise CliError(message)


# -- shared helpers ------------------------------------------------------------------------------
def plugins():
    from .plugins import get_plugins

    return get_plugins()


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[typing.Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def parse_option_value(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        fail(f"expected true/false, got {raw!r}")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (list, tuple)):
        return [v for v in raw.split(",") if v]
    if default is None:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def build_method(name: str, option: list[str], device: str | None, dtype: str | None, batch_size: int | None, seed: int | None):
    cls = plugins().methods.get(name)
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(cls.Options)}
    kwargs: dict[str, Any] = {}
    for item in option:
        if "=" not in item:
            fail(f"--option expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in defaults:
            fail(f"method {cls.name!r} has no option {key!r}; options: {', '.join(sorted(defaults))}")
        try:
            kwargs[key] = parse_option_value(raw, defaults[key])
        except ValueError as exc:
            fail(f"--option {item}: {exc}")
    for key, value in (("device", device), ("dtype", dtype), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        fail(str(exc))


def load_inputs(inputs: list[Path], recursive: bool = False):
    from .images import list_image_files
    from .scoring import load_images

    try:
        paths = list_image_files(inputs, recursive=recursive)
    except FileNotFoundError as exc:
        fail(str(exc))
    if not paths:
        fail("no input images")
    return load_images(paths)


def print_skips(skipped) -> None:
    if not skipped:
        return
    table = Table(title=f"{len(skipped)} input(s) skipped", title_style="bold yellow")
    table.add_column("input", overflow="fold")
    table.add_column("reason", style="yellow")
    for s in skipped:
        table.add_row(s.id, s.error)
    err.print(table)


MethodOpt = typer.Option("aedr", "--method", help="Method name (see `aedr methods`).")
OptionOpt = typer.Option([], "--option", "-o", help="Method option KEY=VALUE (repeatable), e.g. -o distance=l1.")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps ...")
DtypeOpt = typer.Option(None, "--dtype", help="float32, float16 or bfloat16 (default: the model's own).")
BatchOpt = typer.Option(None, "--batch-size", help="Images per forward batch.")
SeedOpt = typer.Option(None, "--seed", help="Run seed from which each image's own seed is derived.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


# -- listings ------------------------------------------------------------------------------------
@app.command("plugins")
def plugins_cmd(as_json: bool = JsonOpt) -> None:
    """List loaded plugins, their versions, hooks, what they register and any errors."""
    infos = list(plugins().info.values())
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(i) | {"ok": i.ok} for i in infos]))
        return
    table = Table(title="aedr plugins")
    for col in ("plugin", "version", "hooks", "registers", "status"):
        table.add_column(col)
    for i in infos:
        registers = ", ".join(i.models + i.methods + i.datasets) or "-"
        status = "[green]ok[/]" if i.ok else "[red]" + "\n".join(i.errors) + "[/]"
        name = f"{i.name} [dim](built-in)[/]" if i.builtin else i.name
        table.add_row(name, i.version or "-", ", ".join(i.hooks) or "-", registers, status)
    out.print(table)


@app.command("models")
def models_cmd(as_json: bool = JsonOpt) -> None:
    """List registered models, their autoencoder family and whether their weights are here."""
    p = plugins()
    rows = []
    for entry in p.models:
        m = entry.obj
        try:
            avail = m.availability()
            local, detail = avail.local, avail.detail
        except Exception as exc:  # availability checks must never break the listing
            local, detail = False, f"{type(exc).__name__}: {exc}"
        rows.append(
            {"name": m.name, "family": m.family, "description": m.description, "generator": m.can_generate,
             "calibration": m.calibration.describe(), "local_weights": local, "availability": detail, "plugin": entry.plugin}
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="aedr models")
    for col in ("model", "family", "generator", "weights", "plugin", "description"):
        table.add_column(col)
    for r in rows:
        weights = ("[green]local[/]" if r["local_weights"] else "[yellow]not local[/]") + (f" [dim]{r['availability']}[/]" if r["availability"] else "")
        table.add_row(r["name"], r["family"], "yes" if r["generator"] else "no", weights, r["plugin"], r["description"])
    out.print(table)


@app.command("methods")
def methods_cmd(as_json: bool = JsonOpt) -> None:
    """List registered attribution methods with their options and cost."""
    rows = []
    for entry in plugins().methods:
        cls = entry.obj
        options = {f.name: f.default if f.default is not dataclasses.MISSING else None for f in dataclasses.fields(cls.Options)}
        rows.append(
            {"name": cls.name, "description": cls.description, "needs_grad": cls.needs_grad, "cost": cls.cost.describe(),
             "score_direction": cls.score_direction, "options": options, "plugin": entry.plugin}
        )
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table(title="aedr methods (lower score = belonging)")
    for col in ("method", "gradients", "cost per image", "options (defaults)", "plugin", "description"):
        table.add_column(col)
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        table.add_row(r["name"], "yes" if r["needs_grad"] else "no", r["cost"], opts, r["plugin"], r["description"])
    out.print(table)


# -- score / calibrate / attribute ---------------------------------------------------------------
@app.command("score")
def score_cmd(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders."),
    model: str = typer.Option(..., "--model", "-m", help="Target model (see `aedr models`)."),
    method: str = MethodOpt,
    option: List[str] = OptionOpt,
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write scores to FILE.csv or FILE.parquet."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: Optional[int] = BatchOpt,
    seed: Optional[int] = SeedOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Score images under a model: one float per image, lower = more likely made by the model."""
    from .scoring import score_images

    target = plugins().model(model)
    m = build_method(method, option, device, dtype, batch_size, seed)
    if out_file is not None and out_file.suffix.lower() not in (".csv", ".parquet"):
        fail(f"--out must end in .csv or .parquet, got {out_file}")
    loaded = load_inputs(inputs, recursive)
    with progress_bar(f"{m.label} under {target.name}", len(loaded.images)) as advance:
        table = score_images(target, m, loaded.images, progress=advance)
    table.skipped = loaded.skipped + table.skipped
    if out_file is not None:
        table.to_file(out_file)
        err.print(f"wrote {len(table.rows)} scores to {out_file}")
    if as_json:
        out.print_json(table.with_skips().to_json(orient="records"))
    else:
        t = Table(title=f"{m.label} scores under {target.name} (lower = belonging)")
        t.add_column("image", overflow="fold")
        t.add_column("score", justify="right")
        for r in table.rows.itertuples():
            t.add_row(str(r.image), f"{r.score:.6g}")
        out.print(t)
    print_skips(table.skipped)


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
    batch_size: Optional[int] = BatchOpt,
    seed: Optional[int] = SeedOpt,
) -> None:
    """Fit a model's threshold on its own images and save a calibration card."""
    from .card import calibrate
    from .images import LoadedImage

    if images is not None and generate is not None:
        fail("give exactly one of --images DIR or --generate N (neither: the model's own calibration source)")
    alpha_value: float | str
    if alpha == "auto":
        alpha_value = "auto"
        if non_belonging is None:
            fail("--alpha auto needs --non-belonging DIR (images not made by the model)")
    else:
        try:
            alpha_value = float(alpha)
        except ValueError:
            fail(f"--alpha must be a number in (0, 1) or 'auto', got {alpha!r}")
    target = plugins().model(model)
    m = build_method(method, option, device, dtype, batch_size, seed)
    if images is None and generate is None:
        images, generate = target.calibration.folder, target.calibration.generate
        if images is None and not generate:
            fail(f"model {target.name!r} declares no calibration source; give --images DIR or --generate N")
    skipped = []
    if images is not None:
        loaded = load_inputs([images])
        belonging, skipped, source = loaded.images, loaded.skipped, f"folder {images}"
    else:
        if not target.can_generate:
            fail(f"model {target.name!r} has no generator; use --images DIR")
        gen_seed = seed or 0
        with progress_bar(f"generating {generate} images with {target.name}", 1):
            pil = target.generate(generate, seed=gen_seed, device=device or "cpu")
        belonging = [LoadedImage.from_pil(im, f"{target.name}/{i:03d}.png") for i, im in enumerate(pil)]
        source = f"generated {generate} images, seeds {gen_seed}..{gen_seed + generate - 1}"
        if save_images is not None:
            save_images.mkdir(parents=True, exist_ok=True)
            for i, im in enumerate(pil):
                im.save(save_images / f"{i + 1:03d}.png")
    nb = load_inputs([non_belonging]).images if non_belonging is not None else []
    total = len(belonging) + len(nb)
    with progress_bar(f"calibrating {m.label} on {target.name}", total) as advance:
        try:
            card = calibrate(target, m, belonging, alpha=alpha_value, non_belonging=nb, source=source, progress=advance)
        except ValueError as exc:
            fail(str(exc))
    card.save(out_file)
    s = card.summary
    out.print(
        f"[bold]{card.model}[/] / {m.label}: threshold = {card.threshold!r} at alpha = {card.alpha} ({card.alpha_selection}); "
        f"{card.n_images} images, scores {s['min']:.4g} .. {s['max']:.4g} (median {s['median']:.4g})"
    )
    if card.estimation_accuracy is not None:
        out.print(f"estimation-split accuracy: {card.estimation_accuracy:.4f}")
    out.print(f"card written to {out_file}")
    print_skips(skipped)


@app.command("attribute")
def attribute_cmd(
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders."),
    card: List[Path] = typer.Option(..., "--card", "-c", help="Calibration card(s) (repeatable): the candidate models."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the per-image, per-card table (csv/parquet/json)."),
    device: Optional[str] = DeviceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Which of the candidate models (one card each) made each image? 'none' if no card accepts it."""
    import pandas as pd

    from .attribution import attribute
    from .card import CalibrationCard

    try:
        cards = [CalibrationCard.load(c) for c in card]
    except ValueError as exc:
        fail(str(exc))
    loaded = load_inputs(inputs)
    with progress_bar("attributing", len(loaded.images) * len(cards)) as advance:
        results, skipped = attribute(loaded.images, cards, plugins=plugins(), device=device, progress=advance)
    skipped = loaded.skipped + skipped
    records = [
        {"image": a.image, "model": v.model, "method": v.method, "score": v.score, "threshold": v.threshold,
         "belongs": v.belongs, "tail_probability": v.tail_probability, "verdict": a.verdict}
        for a in results for v in a.verdicts
    ]
    if out_file is not None:
        frame = pd.DataFrame.from_records(records)
        suffix = out_file.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(out_file, index=False)
        elif suffix == ".parquet":
            frame.to_parquet(out_file, index=False)
        elif suffix == ".json":
            out_file.write_text(json.dumps(records, indent=2))
        else:
            fail(f"--out must end in .csv, .parquet or .json, got {out_file}")
    if as_json:
        out.print_json(json.dumps([
            {"image": a.image, "attributed_to": a.attributed_to, "verdicts": [dataclasses.asdict(v) for v in a.verdicts],
             "errors": a.errors} for a in results
        ] + [{"image": s.id, "error": s.error} for s in skipped]))
        return
    table = Table(title="attribution (score < threshold = belongs; tail = P(S >= score) under the model's calibration KDE)")
    for col in ("image", "model", "score", "threshold", "belongs", "tail"):
        table.add_column(col, justify="right" if col in ("score", "threshold", "tail") else "left", overflow="fold")
    table.add_column("verdict", style="bold")
    for a in results:
        for k, v in enumerate(a.verdicts):
            table.add_row(
                a.image if k == 0 else "", v.model, f"{v.score:.6g}", f"{v.threshold:.6g}",
                "[green]yes[/]" if v.belongs else "no", f"{v.tail_probability:.3g}", a.verdict if k == 0 else "",
            )
        table.add_section()
    out.print(table)
    print_skips(skipped)


# -- compatibility with the original's files -----------------------------------------------------
@compat_app.command("loss-ratio")
def compat_loss_ratio(
    model: str = typer.Option(..., "--model", "-m"),
    images: Path = typer.Option(..., "--images", help="Folder of images (processed in file-name order)."),
    out_file: Path = typer.Option(..., "--out"),
    distance: str = typer.Option("l2", "--distance", help="l2, l1, ssim, psnr or lpips."),
    device: Optional[str] = DeviceOpt,
    dtype: Optional[str] = DtypeOpt,
    batch_size: Optional[int] = BatchOpt,
    seed: Optional[int] = SeedOpt,
) -> None:
    """Write the original's Result file: one line 'L1 L2' per image, 8 decimals."""
    from .scoring import usable_for

    target = plugins().model(model)
    m = build_method("aedr", [f"distance={distance}"], device, dtype, batch_size, seed)
    loaded = load_inputs([images])
    ok, bad = usable_for(target, m, loaded.images)
    with progress_bar(f"double reconstruction under {target.name}", len(ok)) as advance:
        l1, l2 = m.losses(target, ok, progress=advance)
    out_file.write_text(compat.format_loss_ratio(l1, l2))
    out.print(f"wrote {len(ok)} lines to {out_file}")
    print_skips(loaded.skipped + list(bad))


@compat_app.command("glcm")
def compat_glcm(
    images: Path = typer.Option(..., "--images", help="Folder of images (processed in file-name order)."),
    out_file: Path = typer.Option(..., "--out"),
) -> None:
    """Write the original's GLCM file: one homogeneity per line, 6 decimals."""
    from .glcm import homogeneity

    loaded = load_inputs([images])
    out_file.write_text(compat.format_glcm([homogeneity(im) for im in loaded.images]))
    out.print(f"wrote {len(loaded.images)} lines to {out_file}")
    print_skips(loaded.skipped)


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
    print(f"threshold = {t!r}")


@compat_app.command("accuracy")
def compat_accuracy(
    loss_ratio: Path = typer.Option(..., "--loss-ratio"),
    glcm: Path = typer.Option(..., "--glcm"),
    threshold: float = typer.Option(..., "--threshold"),
) -> None:
    """Print how many images of the two files fall under (belonging) and over the threshold."""
    try:
        b, nb = compat.accuracy_from_files(loss_ratio, glcm, threshold)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    print(f"belonging, non_belonging = {b} {nb}")


# -- entry point ---------------------------------------------------------------------------------
def build_app() -> typer.Typer:
    """The root app with every plugin's commands mounted (once)."""
    if not getattr(app, "_aedr_plugins_mounted", False):
        plugins().add_commands(app)
        app._aedr_plugins_mounted = True  # type: ignore[attr-defined]
    return app


def main(argv: Optional[list[str]] = None) -> None:
    build_app()(args=argv, prog_name="aedr")
