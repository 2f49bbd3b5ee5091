"""The ``aedr`` command line's shared parts: the consoles, user errors, the root app, the flags
every command family uses and the progress display. The commands live beside it, one module per
family; :func:`aedr.cli.build_app` mounts them and the plugins' commands."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from typer.core import TyperGroup
from rich.table import Table

from ..devices import DeviceError, check_device
from ..files import OutputError
from ..images import DEFAULT_PIXEL_BUDGET
from ..registry import RegistryError
from ..progress import progress_bar  # noqa: F401  (the commands' progress display, shared)
from ..text import console, markup, safe_str


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
    from ..images import ImageLoadError
    from ..models import WeightsUnavailableError

    return (CliError, RegistryError, ImageLoadError, WeightsUnavailableError, OutputError)


EXIT_USER_ERROR = 2


def report_error(exc: BaseException) -> None:
    """Print a user error as the ``aedr`` command does: one ``error: ...`` line on standard error."""
    err.print(f"[bold red]error:[/] {markup(exc)}")


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
    from ..plugins import get_plugins

    return get_plugins()


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


def key_value(item: str, option: str) -> tuple[str, str]:
    """``KEY=VALUE`` text given to ``option``: the key (stripped, ``-`` read as ``_``) and the value
    text as given, to be parsed to the option's declared type. No ``=`` is a user error."""
    if "=" not in item:
        fail(f"{option} expects KEY=VALUE, got {item!r}")
    key, raw = item.split("=", 1)
    return key.strip().replace("-", "_"), raw


def method_from_flags(name: str, option: list[str], device: str | None, dtype: str | None, batch_size: str | None, seed: int | None):
    """The method ``name`` built with its ``-o KEY=VALUE`` options (each text parsed to the option's
    declared type) and the run options given; an option it does not have or accept is a user error."""
    from ..methods.base import MethodOptionsError
    from ..methods.base import build_method as build

    check_device_option(device)
    cls = plugins().methods.get(name)
    known = cls.Options.names()
    options: dict[str, Any] = {}
    for item in option:
        key, raw = key_value(item, "--option")
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
    from ..images import list_image_files
    from ..scoring import load_images

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


def save_output(path: Path, write: typing.Callable[[Path], typing.Any], what: str, to: Console | None = None) -> OutputError | None:
    """:func:`report_saved` of ``write`` (given a temporary path) saved to ``path`` by
    :func:`aedr.files.save_results`: atomically, or else in a fallback file."""
    from ..files import save_results

    return report_saved(lambda: save_results(path, write, what=what), what, to)


def finish(problem: OutputError | None, skipped=()) -> None:
    """The end of a command that has shown its results: the skipped inputs, then the failure to save
    them that :func:`report_saved` held back (so that nothing computed went unseen)."""
    print_skips(skipped)
    if problem is not None:
        raise problem


def perturbations_from_flags(specs: list[str], option: str = "--perturb"):
    """The perturbations ``specs`` describe (``jpeg:90,70``, ``jpeg:75+resize:0.5``; several per flag
    separated by spaces), parsed against the registered kinds; a bad spec is a user error naming it."""
    from ..perturbations import PerturbationError

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
