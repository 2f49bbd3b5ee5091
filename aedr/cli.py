"""The ``aedr`` command line. Plugins add their own sub-commands through ``register_commands``.

Every score shown is "lower = belonging"; an image belongs to a model iff its score < threshold.

How a command reports and prints, built-in or a plugin's (``aedr zoo`` and ``aedr generate`` are
plugins' commands written this way):

- An error the user can fix (a bad argument, a missing file, an unknown name) is raised as
  :class:`CliError`, most simply with ``fail("one plain sentence")``. The ``aedr`` command prints it
  as one ``error: ...`` line on standard error and exits with status 2. The message is plain text,
  never rich markup: it is escaped (:func:`aedr.text.markup`), so paths and names show verbatim.
  The library errors :func:`user_errors` names (an unknown model name, an unreadable image, missing
  weights, an unwritable output) are reported the same way when a command lets one through. Any
  other exception is a bug and keeps its traceback. A command does not print its own error line,
  call ``sys.exit`` or raise ``typer.Exit`` for a user error.
- Results go to :data:`out` (standard output), messages and progress to :data:`err` (standard
  error): the process's two rich consoles, :func:`aedr.text.console`. User-provided text printed on
  them goes through :func:`aedr.text.markup`.

- Tables fit the console's width (a pipe: ``COLUMNS``, else 80): a listing gives a wide and a narrow
  layout to :func:`aedr.text.print_widest_fitting`, a table of file or model names folds them with
  :func:`aedr.text.names_folded_to_fit`, and long work shows :func:`aedr.text.progress_display`
  (through :func:`progress_bar`), which is one line per stage off a terminal.

A plugin's command imports them: ``from aedr.cli import err, fail, out``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Optional

import click
import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.table import Table
from rich.text import Text

from . import compat
from .calibration import CALIBRATION_TOO_SMALL, DEFAULT_ALPHA, calibration_too_small, parse_alpha
from .devices import DeviceError, check_device
from .files import OutputError, check_output_file, json_text, prepare_output_folder, save_results, write_frame
from .images import DEFAULT_PIXEL_BUDGET
from .registry import RegistryError
from .text import console, markup, names_folded_to_fit, natural_width, print_widest_fitting, progress_display, safe_str

out = console()
"""Standard output: results (tables, JSON, written files)."""
err = console(stderr=True)
"""Standard error: errors, notes, skipped inputs and progress bars."""


class CliError(Exception):
    """An error the user can fix: printed as one ``error: ...`` line, without a traceback; exit status 2."""


def fail(message: str) -> typing.NoReturn:
    """Stop the command with a user error (:class:`CliError`); ``message`` is one plain sentence."""
    raise CliError(message)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions reported as user errors: :class:`CliError` and the library's errors that are
    the user's to fix (imported on first use, to keep ``aedr --help`` quick)."""
    from .images import ImageLoadError
    from .models import WeightsUnavailableError

    return (CliError, RegistryError, ImageLoadError, WeightsUnavailableError, OutputError)


EXIT_USER_ERROR = 2


def report_error(exc: BaseException) -> None:
    """Print a user error as the ``aedr`` command does: one ``error: ...`` line on standard error."""
    err.print(f"[bold red]error:[/] {markup(exc)}", soft_wrap=True)


class AedrGroup(TyperGroup):
    """The root command: a user error raised by any command below it (see the module docstring)
    becomes one ``error: ...`` line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            report_error(exc)
            ctx.exit(EXIT_USER_ERROR)


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


# -- shared helpers ------------------------------------------------------------------------------
def plugins():
    from .plugins import get_plugins

    return get_plugins()


# A batch at least this large is named while it runs (on a terminal in the bar, else in a line).
LONG_BATCH_PIXELS = 1024 * 1024


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[typing.Callable[[int], None]]:
    """A progress bar on stderr (``total`` None: not known ahead); yields ``advance(n)``. Not on a
    terminal (a pipe, CI), a line as the work starts and one as it ends instead. While a large batch
    (one huge image, say) is scored, the bar names it (a line when not on a terminal), so that a long
    wait on one image is visibly work on it."""
    import time

    from .methods.base import watch_batches

    plain = markup(description)
    live = err.is_terminal
    if not live:
        err.print(f"{plain}{'' if total is None else f' ({total})'} ...", soft_wrap=False)
    t0 = time.perf_counter()
    with progress_display(err, transient=True, disable=not live) as bar:
        task = bar.add_task(plain, total=total)

        def on_batch(images, size: tuple[int, int]) -> None:
            if size[0] * size[1] * len(images) < LONG_BATCH_PIXELS:
                bar.update(task, description=plain)
                return
            what = images[0].id if len(images) == 1 else f"{len(images)} images"
            note = f"{what} at {size[0]}x{size[1]} ({size[0] * size[1] * len(images) / 1e6:.1f} MP)"
            bar.update(task, description=f"{plain} · {markup(note)}")
            if not live:
                err.print(f"scoring {markup(note)} ...")

        with watch_batches(on_batch):
            yield lambda n: bar.advance(task, n)
        if not live:
            err.print(f"{plain}: done in {time.perf_counter() - t0:.1f} s", soft_wrap=False)


def check_device_option(device: str | None) -> None:
    """``--device`` names a device this machine has; the same check ``aedr bench`` makes of its config."""
    if device is not None:
        try:
            check_device(device)
        except DeviceError as exc:
            fail(f"--{exc}")


def batch_size_flag(text: str | None, option: str = "--batch-size") -> int | str | None:
    """``--batch-size`` text: a whole number >= 1, or ``auto``."""
    if text is None or text.strip().lower() == "auto":
        return None if text is None else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        fail(f"{option} expects a whole number >= 1 or 'auto', got {text!r}")
    return value


def method_from_flags(name: str, option: list[str], device: str | None, dtype: str | None, batch_size: str | None, seed: int | None):
    """The method ``name`` built with its ``-o KEY=VALUE`` options (each text parsed to the option's
    declared type) and the run options given; an option it does not have or accept is a user error."""
    from .methods.base import MethodOptionsError
    from .methods.base import build_method as build

    check_device_option(device)
    cls = plugins().methods.get(name)
    known = cls.Options.names()
    options: dict[str, Any] = {}
    for item in option:
        if "=" not in item:
            fail(f"--option expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        try:  # a name the method lacks is left as it is, for build() to name it (with close matches)
            options[key] = cls.Options.parse(key, raw) if key in known else raw
        except TypeError as exc:
            fail(f"--option {item}: {exc}")
    batch = batch_size_flag(batch_size)
    runtime = {k: v for k, v in (("device", device), ("dtype", dtype), ("batch_size", batch), ("seed", seed)) if v is not None}
    try:
        return build(cls, options, **runtime)
    except (MethodOptionsError, TypeError, ValueError) as exc:  # bad options, or the method's own set-up (a weight file it lacks)
        fail(str(exc))


def load_inputs(inputs: list[Path], recursive: bool = False, *, pixel_budget: int | None = None, max_side: int | None = None):
    """Load the named files and folders. A name that does not exist is an error before any work
    (a typo must not look like an empty result); unusable files are recorded as skips.
    ``pixel_budget`` (0 or None: none) and ``max_side`` go to :func:`aedr.images.load_image`."""
    from .images import list_image_files
    from .scoring import load_images

    missing = [p for p in inputs if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(safe_str(p) for p in missing)} (nothing was done)")
    try:
        paths = list_image_files(inputs, recursive=recursive)
    except FileNotFoundError as exc:
        fail(str(exc))
    if not paths:
        fail("no input images")
    return load_images(paths, pixel_budget=pixel_budget or None, max_side=max_side)


def downscale_note(images, max_side: int | None) -> str:
    """How many images ``--max-side`` downscaled ("" when none), for messages and cards."""
    n = sum(1 for im in images if im.meta.get("downscaled_from"))
    return f"{n} image(s) with a side over {max_side} px downscaled (--max-side {max_side})" if n else ""


def report_saved(save: typing.Callable[[], Path], what: str, to: Console | None = None) -> OutputError | None:
    """Run ``save()`` (a :func:`aedr.files.save_results` write) and say where ``what`` went (on ``to``,
    by default :data:`err`). A failure
    is returned, to be raised once the results have been shown: they are kept in the fallback file
    the error names."""
    try:
        saved = save()
    except OutputError as exc:
        return exc
    (to or err).print(f"wrote {what} to {markup(saved)}")
    return None


def verdict_status(v) -> str:
    """"ok", or which of a verdict's numbers are not finite (JSON output writes those as null)."""
    bad = [k for k in ("score", "threshold", "tail_probability") if not math.isfinite(getattr(v, k))]
    return "ok" if not bad else "not finite: " + ", ".join(bad)


def perturbations_from_flags(specs: list[str], option: str = "--perturb"):
    """The perturbations ``specs`` describe (``jpeg:90,70``, ``jpeg:75+resize:0.5``; several per flag
    separated by spaces), parsed against the registered kinds; a bad spec is a user error naming it."""
    from .perturbations import PerturbationError

    chains: dict[str, Any] = {}
    for spec in specs:
        try:
            for chain in plugins().perturbations_for(spec):
                chains.setdefault(chain.id, chain)
        except PerturbationError as exc:
            fail(f"{option} {spec}: {exc}")
    return list(chains.values())


def print_skips(skipped) -> None:
    if not skipped:
        return
    table = Table(title=f"{len(skipped)} input(s) skipped", title_style="bold yellow")
    table.add_column("input", overflow="fold")
    table.add_column("reason", style="yellow")
    for s in skipped:
        table.add_row(markup(s.id), markup(s.error))
    err.print(table)


MethodOpt = typer.Option("aedr", "--method", help="Method name (see `aedr methods`).")
OptionOpt = typer.Option([], "--option", "-o", help="Method option KEY=VALUE (repeatable), e.g. -o distance=l1.")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps ...")
DtypeOpt = typer.Option(None, "--dtype", help="float32, float16 or bfloat16 (default: the model's own).")
BatchOpt = typer.Option(
    None, "--batch-size", help="Images per forward batch, or 'auto': the largest that fits on the device (searched once, cached).",
)
SeedOpt = typer.Option(None, "--seed", help="Run seed from which each image's own seed is derived.")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
MaxSideOpt = typer.Option(
    None, "--max-side", min=8, help="Downscale images whose longer side exceeds N pixels to N (Lanczos); recorded in the results."
)
PixelBudgetOpt = typer.Option(
    DEFAULT_PIXEL_BUDGET, "--pixel-budget", min=0,
    help="Skip images with more pixels than this (after --max-side), with a reason; 0: no budget.",
)


# -- listings ------------------------------------------------------------------------------------
@app.command("plugins")
def plugins_cmd(as_json: bool = JsonOpt) -> None:
    """List loaded plugins, their versions, hooks, what they register and any errors."""
    infos = list(plugins().info.values())
    if as_json:
        out.print_json(json.dumps([dataclasses.asdict(i) | {"ok": i.ok} for i in infos]))
        return
    wide, narrow = Table(title="aedr plugins"), Table(title="aedr plugins")
    for col in ("plugin", "version", "hooks", "registers", "status"):
        wide.add_column(col)
    narrow.add_column("plugin", no_wrap=True)  # the hooks go under the name, the status under what it registers
    narrow.add_column("version", no_wrap=True)
    narrow.add_column("registers and status", overflow="fold")
    for i in infos:
        kinds = ("models", "methods", "datasets", "metrics", "perturbations", "executors")
        registers = markup("; ".join(f"{k}: {', '.join(getattr(i, k))}" for k in kinds if getattr(i, k)) or "-")
        status = "[green]ok[/]" if i.ok else "[red]" + markup("\n".join(i.errors)) + "[/]"
        name = f"{markup(i.name)} [dim](built-in)[/]" if i.builtin else markup(i.name)
        hooks = markup(", ".join(i.hooks) or "-")
        wide.add_row(name, markup(i.version or "-"), hooks, registers, status)
        narrow.add_row(f"{markup(i.name)}\n[dim]{'built-in; ' if i.builtin else ''}{markup(chr(10).join(i.hooks) or '-')}[/]",
                       markup(i.version or "-"), f"{registers}\n{status}")
    print_widest_fitting(out, wide, narrow)


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
    wide, narrow = Table(title="aedr models"), Table(title="aedr models", caption="plugins and more: aedr models --json", caption_justify="left")
    for col in ("model", "family", "generator", "weights", "plugin", "description"):
        wide.add_column(col)
    for col in ("model", "family", "weights", "description"):  # the availability detail goes under the description
        narrow.add_column(col, no_wrap=col != "description", overflow="fold")
    for r in rows:
        state = "[green]local[/]" if r["local_weights"] else "[yellow]not local[/]"
        detail = f"[dim]{markup(r['availability'])}[/]" if r["availability"] else ""
        name = markup(r["name"]) + ("" if r["generator"] else "\n[dim](no generator)[/]")
        wide.add_row(markup(r["name"]), markup(r["family"]), "yes" if r["generator"] else "no", f"{state} {detail}".strip(), markup(r["plugin"]),
                     markup(r["description"]))
        narrow.add_row(name, markup(r["family"]), state, markup(r["description"]) + (f"\n{detail}" if detail else ""))
    print_widest_fitting(out, wide, narrow)


@app.command("methods")
def methods_cmd(as_json: bool = JsonOpt) -> None:
    """List registered attribution methods with their options and cost."""
    rows = []
    for entry in plugins().methods:
        cls = entry.obj
        options = cls.Options.defaults()
        rows.append(
            {"name": cls.name, "description": cls.description, "needs_grad": cls.needs_grad, "cost": cls.cost.describe(),
             "score_direction": cls.score_direction, "options": options, "plugin": entry.plugin}
        )
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    title = "aedr methods (lower score = belonging)"
    wide, narrow = Table(title=title), Table(title=title, caption="plugins and more: aedr methods --json", caption_justify="left")
    for col in ("method", "gradients", "cost per image", "options (defaults)", "plugin", "description"):
        wide.add_column(col)
    narrow.add_column("method", no_wrap=True)
    narrow.add_column("cost per image", overflow="fold", max_width=18)
    narrow.add_column("description and options (defaults)", overflow="fold")  # the options wrap after their commas
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items())
        wide.add_row(markup(r["name"]), "yes" if r["needs_grad"] else "no", markup(r["cost"]), markup(opts), markup(r["plugin"]), markup(r["description"]))
        narrow.add_row(markup(r["name"]), markup(r["cost"]), f"{markup(r['description'])}\n[dim]{markup(opts)}[/]")
    print_widest_fitting(out, wide, narrow)


# -- score / calibrate / attribute ---------------------------------------------------------------
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
    from .scoring import score_images

    target = plugins().model(model)
    chains = perturbations_from_flags(perturb)
    m = method_from_flags(method, option, device, dtype, batch_size, seed)
    if executor is not None or ray_address is not None:
        if out_file is None or out_file.suffix.lower() != ".parquet":
            fail("--executor writes a folder of parquet shards: give --out NAME.parquet")
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
    problem = None
    if out_file is not None:
        problem = report_saved(lambda: table.to_file(out_file), f"{len(table.rows)} scores")
    if as_json:
        out.print_json(json_text(table.with_skips().to_dict("records")))
    else:
        what = " of perturbed copies" if chains else ""
        out.print(Text(f"{m.label} scores{what} under {target.name} (lower = belonging)", style="bold"), soft_wrap=False)
        out.print(names_folded_to_fit(out, lambda names: score_table(table.rows, bool(chains), names)), soft_wrap=False)
    note = downscale_note(loaded.images, max_side)
    if note:
        err.print(f"note: {note}")
    print_skips(table.skipped)
    if problem is not None:
        raise problem


def score_table(rows, perturbed: bool, names: int | None) -> Table:
    """One row per image (and perturbation); ``names``: the width image names fold to (None: whole)."""
    from .text import fold_name

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
    from .executors import ExecutorError, build_executor
    from .stream import FileScoring, StreamFailed

    if ray_address is not None and executor != "ray":
        fail(f"--ray-address needs the ray executor, not {executor!r}")
    options: dict[str, str] = {}
    for item in executor_option:
        if "=" not in item:
            fail(f"--executor-option expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        options[key.strip().replace("-", "_")] = raw  # parsed to the option's declared type, as -o is
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
            report = runner.score_files(task)
        except (NotImplementedError, FileNotFoundError, ExecutorError, StreamFailed) as exc:
            fail(str(exc))
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
    from PIL import Image

    from .files import write_atomic, write_text_atomic
    from .images import ImageLoadError, list_image_files, load_image
    from .methods.base import DTYPES
    from .preprocess import target_size
    from .reconstruction import reconstruct_images
    from .scoring import Skip

    check_device_option(device)
    target = plugins().model(model)
    if dtype is not None and dtype not in DTYPES:
        fail(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    folder = prepare_output_folder(out_dir)
    made_by = {"model": target.name, "weights": target.autoencoder_fingerprint(), "dtype": dtype or "default",
               "max_side": max_side, "pixel_budget": pixel_budget or None}
    check_reconstruction_folder(folder, made_by)
    # (output name, a file to load or an image in memory), in input order: a folder's files keep their
    # path inside it (sub-folders too), a file its name, a dataset image the last part of its id
    items: list[tuple[Path, Path | Any]] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            inside = folder.resolve()  # the output folder, when it lies in the input, is not read as input
            files = [f for f in list_image_files([p], recursive=recursive) if not f.resolve().is_relative_to(inside)]
            items += [(f.relative_to(p).with_suffix(".png"), f) for f in files]
        elif p.exists():
            items.append((Path(p.name).with_suffix(".png"), p))
        elif name in plugins().datasets.names():
            items += [(Path(str(im.id).split("/")[-1]).with_suffix(".png"), im) for im in plugins().dataset(name).images()]
        else:
            fail(f"{name}: no such file or folder, and not a registered dataset (nothing was done)")
    items = items[:limit] if limit else items
    names = output_names([n for n, _ in items])
    todo = [(n, src) for n, (_, src) in zip(names, items) if not (folder / n).is_file()]
    import torch

    torch_dtype = getattr(torch, dtype) if dtype else None
    policy = target.autoencoder(device or "cpu", torch_dtype).size_policy
    skipped: list[Skip] = []
    done = 0
    with progress_bar(f"reconstructing with {target.name}", len(todo)) as advance:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            good = []
            for n, src in batch:  # files are read only now, a batch at a time
                try:
                    im = load_image(src, pixel_budget=pixel_budget or None, max_side=max_side) if isinstance(src, Path) else src
                    target_size(im, policy)
                    good.append((n, im))
                except ImageLoadError as exc:
                    skipped.append(Skip(safe_str(src) if isinstance(src, Path) else src.id, str(exc)))
            arrays = reconstruct_images(target, [im for _, im in good], device=device or "cpu", dtype=torch_dtype, batch_size=batch_size)
            for (n, _), rgb in zip(good, arrays):
                (folder / n).parent.mkdir(parents=True, exist_ok=True)
                write_atomic(folder / n, lambda tmp, rgb=rgb: Image.fromarray(rgb, "RGB").save(tmp, format="PNG"))
                done += 1
            advance(len(batch))
    record = {**made_by, "inputs": list(inputs), "images": len(items), "latent": "posterior mean", "format": "PNG"}
    write_text_atomic(folder / "reconstruct.json", json_text(record))
    err.print(f"{done} reconstruction(s) written to {markup(str(folder))}, {len(items) - len(todo)} already there")
    print_skips(skipped)


def check_reconstruction_folder(folder: Path, made_by: dict) -> None:
    """Refuse an output folder whose reconstructions were made otherwise (another model or weights,
    dtype or load options): resuming into it would mix them and relabel the old ones."""
    record_file = folder / "reconstruct.json"
    if not record_file.is_file():
        return
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        record = {}
    record = record if isinstance(record, dict) else {}
    differ = [f"{k} {record.get(k, 'not recorded')!r} (now {v!r})" for k, v in made_by.items() if record.get(k) != v]
    if differ:
        fail(f"--out {safe_str(folder)} holds reconstructions made otherwise: {'; '.join(differ)}; give another --out "
             "(or empty this one)")


def output_names(names: list[Path]) -> list[Path]:
    """The output names, each part made file-system safe (:func:`aedr.files.safe_name`); a
    name already taken (given twice, or a number added to an earlier one made it) gets the next free
    number (stable: it depends only on the inputs before it)."""
    from .files import safe_name

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
    from .card import calibrate
    from .images import LoadedImage

    if images is not None and generate is not None:
        fail("give exactly one of --images DIR or --generate N (neither: the model's own calibration source)")
    # Every argument is checked here, before any model is loaded or image generated.
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
    target = plugins().model(model)
    m = method_from_flags(method, option, device, dtype, batch_size, seed)
    check_output_file(out_file, suffixes=None)
    if save_images is not None:
        prepare_output_folder(save_images, option="--save-images", create=False)
    if images is None and generate is None:
        images, generate = target.calibration.folder, target.calibration.generate
        if images is None and not generate:
            fail(f"model {target.name!r} declares no calibration source; give --images DIR or --generate N")
    if images is not None and save_images is not None:  # the model's own calibration source is a folder
        fail(f"--save-images saves generated images, but model {target.name!r} calibrates on the folder {safe_str(images)}")
    if images is None and not target.can_generate:
        fail(f"model {target.name!r} has no generator; use --images DIR")
    skipped = []
    if images is not None:
        loaded = load_inputs([images], pixel_budget=pixel_budget, max_side=max_side)
        belonging, skipped, source = loaded.images, loaded.skipped, f"folder {safe_str(images)}"
        if downscale_note(belonging, max_side):
            source += f"; {downscale_note(belonging, max_side)}"
        if len(belonging) < 2:
            print_skips(skipped)
            fail(f"--images {safe_str(images)}: {len(belonging)} usable image(s); a threshold needs at least 2")
    else:
        gen_seed = seed or 0
        with progress_bar(f"generating {generate} images with {target.name}", 1):
            pil = target.generate(generate, seed=gen_seed, device=m.options.device)
        belonging = [LoadedImage.from_pil(im, f"{target.name}/{i:03d}.png") for i, im in enumerate(pil)]
        source = f"generated {generate} images, seeds {gen_seed}..{gen_seed + generate - 1}"
        if save_images is not None:
            save_images.mkdir(parents=True, exist_ok=True)
            for i, im in enumerate(pil):
                im.save(save_images / f"{i + 1:03d}.png")
    nb = load_inputs([non_belonging], pixel_budget=pixel_budget, max_side=max_side).images if non_belonging is not None else []
    total = len(belonging) + len(nb)
    with progress_bar(f"calibrating {m.label} on {target.name}", total) as advance:
        try:
            card = calibrate(target, m, belonging, alpha=alpha_value, non_belonging=nb, source=source, progress=advance)
        except ValueError as exc:
            fail(str(exc))
    s = card.summary
    out.print(
        f"[bold]{markup(card.model)}[/] / {markup(m.label)}: threshold = {card.threshold!r} at alpha = {card.alpha} ({markup(card.alpha_selection)}); "
        f"{card.n_images} images, scores {s['min']:.4g} .. {s['max']:.4g} (median {s['median']:.4g})"
    )
    if card.domain is not None:  # aedr attribute marks images outside it
        out.print(f"calibration domain: {markup(card.domain.describe())}")
    if card.estimation_accuracy is not None:
        out.print(f"estimation-split accuracy: {card.estimation_accuracy:.4f}")
    if calibration_too_small(card.n_images, card.alpha):
        err.print(f"[yellow]warning:[/] {card.n_images} calibration images at alpha {card.alpha:g}: {CALIBRATION_TOO_SMALL}; "
                  f"use at least {math.ceil(5 / card.alpha)}")
    problem = report_saved(lambda: save_results(out_file, card.save, what="the calibration card"), "the calibration card", out)
    print_skips(skipped)
    if problem is not None:
        raise problem


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
    import pandas as pd

    from .attribution import STABILITY_BAND, STABILITY_PERTURBATIONS, attribute, prepare_cards
    from .card import CalibrationCard

    check_device_option(device)
    if not stability and (stability_perturb or stability_band is not None):
        fail("--stability-perturb and --stability-band go with --stability")
    band = STABILITY_BAND if stability_band is None else stability_band
    if not (band >= 0 and math.isfinite(band)):
        fail(f"--stability-band must be a fraction >= 0 of the calibration scores' interquartile range, got {band}")
    chains = perturbations_from_flags(stability_perturb or list(STABILITY_PERTURBATIONS), "--stability-perturb") if stability else []
    try:  # every card in full, before any image is read or scored
        cards = prepare_cards([CalibrationCard.load(c) for c in card], plugins=plugins(), device=device)
    except ValueError as exc:
        fail(str(exc))
    if out_file is not None:
        check_output_file(out_file, suffixes=(".csv", ".parquet", ".json"))
    loaded = load_inputs(inputs, pixel_budget=pixel_budget, max_side=max_side)
    with progress_bar("attributing", len(loaded.images) * len(cards) * (1 + len(chains))) as advance:
        results, skipped = attribute(loaded.images, cards, plugins=plugins(), device=device, progress=advance,
                                     stability=stability, stability_perturbations=chains or None, band=band, seed=seed)
    skipped = loaded.skipped + skipped
    downscaled = {im.id: im.meta.get("downscaled_from", "") for im in loaded.images}

    def stability_record(v) -> dict:
        st = v.stability
        if st is None:
            return {}
        return {"card_decision": v.decision, "uncertain": v.uncertain, "in_band": st.in_band, "band_low": st.band[0], "band_high": st.band[1],
                "perturbed_agree": st.agreeing, "uncertain_reasons": "; ".join(st.reasons),
                **{f"score[{p.perturbation}]": p.score for p in st.perturbed}}

    records = [
        {"image": a.image, "model": v.model, "method": v.method, "score": v.score, "threshold": v.threshold,
         "belongs": v.belongs, "tail_probability": v.tail_probability, "verdict": a.verdict, "status": verdict_status(v),
         "downscaled_from": downscaled.get(a.image, ""), "outside_domain": "; ".join(v.outside_domain),
         **({"decision": a.decision} if stability else {}), **stability_record(v)}
        for a in results for v in a.verdicts
    ]
    problem = None
    if out_file is not None:
        columns = list(dict.fromkeys(k for r in records for k in r)) if records else ["image"]
        frame = pd.DataFrame.from_records(records, columns=columns)
        what = f"{len(records)} verdicts"
        problem = report_saved(lambda: save_results(out_file, lambda tmp: write_frame(frame, tmp, out_file.suffix), what=what), what)
    if as_json:
        # strict JSON: a number that is not finite is written as null, and its verdict's status says so
        def verdict_json(v) -> dict:
            d = dataclasses.asdict(v) | {"status": verdict_status(v)}
            if v.stability is None:
                d.pop("stability")
            else:
                d |= {"decision": v.decision, "uncertain": v.uncertain}
                d["stability"] |= {"disagree": v.stability.disagree, "reasons": v.stability.reasons}
            return d

        out.print_json(json_text([
            {"image": a.image, "status": "ok", "attributed_to": a.attributed_to,
             **({"decision": a.decision, "uncertain_about": a.uncertain_about} if stability else {}),
             "verdicts": [verdict_json(v) for v in a.verdicts],
             "errors": a.errors, "downscaled_from": downscaled.get(a.image, "")} for a in results
        ] + [{"image": s.id, "status": "skipped", "error": s.error} for s in skipped]))
        if problem is not None:
            raise problem
        return
    print_attributions(results, cards, stability, f"{', '.join(c.id for c in chains)}, band ±{band:g} IQR" if stability else "")
    for a in results:  # why each uncertain card is uncertain, a line each (never folded)
        for v in a.verdicts:
            if v.uncertain:
                why = "; ".join(v.stability.reasons) + (f" ({'; '.join(v.stability.errors)})" if not v.stability.perturbed else "")
                err.print(f"note: {markup(a.image)}: {markup(v.model)} is uncertain: {markup(why)}", soft_wrap=True)
    print_skips(skipped)
    if problem is not None:
        raise problem


def print_attributions(results, cards, stability: bool, checks: str) -> None:
    """The verdicts as a table that fits the terminal: names fold after separators (a narrow terminal
    gives the thresholds a line of their own instead of a column); a verdict outside its card's
    calibration domain is marked "!" and explained under the table."""
    title = "attribution (score < threshold = belongs; tail = P(S >= score) under the model's calibration KDE)"
    title += f"; stability: {checks}" if stability else ""
    wide = attribution_table(results, stability, None, with_threshold=True)
    fits = natural_width(out, wide) <= out.width
    out.print(Text(title, style="bold"), soft_wrap=False)
    if fits:
        out.print(wide, soft_wrap=False)
    else:  # the thresholds get a line of their own, the names fold to the room left
        out.print(names_folded_to_fit(out, lambda names: attribution_table(results, stability, names, with_threshold=False)), soft_wrap=False)
        out.print("thresholds: " + markup(", ".join(f"{c.card.model} {c.card.threshold:.6g}" for c in cards)), soft_wrap=False)
    for a in results:
        for v in a.verdicts:
            if v.outside_domain:
                out.print(f"[yellow]![/] {markup(a.image)} under {markup(v.model)}: outside the card's calibration domain, the verdict is an "
                          f"extrapolation: {markup('; '.join(v.outside_domain))}", soft_wrap=False)


def attribution_table(results, stability: bool, names: int | None, *, with_threshold: bool) -> Table:
    """One row per image and card; ``names``: the width image and model names fold to (None: whole)."""
    from .text import fold_name

    def name(text: str) -> str:
        return markup(fold_name(text, names) if names else text)

    table = Table()
    table.add_column("image", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for col in ("score", *(["threshold"] if with_threshold else [])):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("belongs", no_wrap=True)
    table.add_column("tail", justify="right", no_wrap=True)
    if stability:
        table.add_column("agree", justify="right", no_wrap=True)  # perturbed copies with the clean verdict
        table.add_column("in band", no_wrap=True)
    table.add_column("decision" if stability else "verdict", style="bold")  # model names, wrapped after their commas
    for a in results:
        for k, v in enumerate(a.verdicts):
            mark = " [yellow]![/]" if v.outside_domain else ""
            cells = [name(a.image) if k == 0 else "", name(v.model), f"{v.score:.6g}{mark}", *([f"{v.threshold:.6g}"] if with_threshold else []),
                     "[green]yes[/]" if v.belongs else "no", f"{v.tail_probability:.3g}"]
            if stability and v.stability is not None:
                flag = "[yellow]" if v.stability.disagree else ""
                cells += [f"{flag}{v.stability.agreeing}{'[/]' if flag else ''}", "[yellow]yes[/]" if v.stability.in_band else "no"]
            cells.append(verdict_cell(a, stability) if k == 0 else "")
            table.add_row(*cells)
        table.add_section()
    return table


def verdict_cell(a, stability: bool) -> str:
    shown = a.verdict if not stability or a.decision != "attributed" else f"attributed: {a.verdict}"
    text = ("[yellow]" + markup(shown) + "[/]") if a.decision == "uncertain" else markup(shown)
    if any(v.outside_domain for v in a.verdicts if v.model in a.attributed_to):
        text += " [yellow]![/]"
    return text


# -- compatibility with the original's files -----------------------------------------------------
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
    from .scoring import usable_for

    target = plugins().model(model)
    m = method_from_flags("aedr", [f"distance={distance}"], device, dtype, batch_size, seed)
    check_output_file(out_file, suffixes=None)
    loaded = load_inputs([images], pixel_budget=pixel_budget, max_side=max_side)
    ok, bad = usable_for(target, m, loaded.images)
    with progress_bar(f"double reconstruction under {target.name}", len(ok)) as advance:
        l1, l2 = m.losses(target, ok, progress=advance)
    text = compat.format_loss_ratio(l1, l2)
    what = f"{len(ok)} lines"
    problem = report_saved(lambda: save_results(out_file, lambda tmp: tmp.write_text(text), what=what), what, out)
    print_skips(loaded.skipped + list(bad))
    if problem is not None:
        raise problem


@compat_app.command("glcm")
def compat_glcm(
    images: Path = typer.Option(..., "--images", help="Folder of images (processed in file-name order)."),
    out_file: Path = typer.Option(..., "--out"),
) -> None:
    """Write the original's GLCM file: one homogeneity per line, 6 decimals."""
    from .glcm import homogeneity

    check_output_file(out_file, suffixes=None)
    loaded = load_inputs([images])
    text = compat.format_glcm([homogeneity(im) for im in loaded.images])
    what = f"{len(loaded.images)} lines"
    problem = report_saved(lambda: save_results(out_file, lambda tmp: tmp.write_text(text), what=what), what, out)
    print_skips(loaded.skipped)
    if problem is not None:
        raise problem


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


# -- entry point ---------------------------------------------------------------------------------
def build_app() -> typer.Typer:
    """The root app with every plugin's commands mounted (once)."""
    if not getattr(app, "_aedr_plugins_mounted", False):
        plugins().add_commands(app)
        app._aedr_plugins_mounted = True  # type: ignore[attr-defined]
    return app


def main(argv: Optional[list[str]] = None) -> None:
    build_app()(args=argv, prog_name="aedr")
