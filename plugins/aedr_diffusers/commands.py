"""``aedr generate`` (images from a prompt file, written as ``NNN.png``) and ``aedr prompts`` (prompts
from real images with CLIP Interrogator), added to the CLI through ``register_commands``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aedr.models import WeightsUnavailableError

from .prompts import INTERROGATOR_CLIP, INTERROGATOR_MODE, read_prompt_file


def user_error(exc: BaseException) -> None:
    """Print an error the user can fix, without a traceback, and exit with status 2."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def default_device() -> str:
    """cuda when there is a GPU, else Apple's mps, else the CPU."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def generate_command(
    model: str = typer.Argument(..., help="Model name (see `aedr models`); it must have a generator."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file, one 'NNN: prompt' per line."),
    out: Path = typer.Option(..., "--out", help="Folder for the images, written as NNN.png."),
    seed: int = typer.Option(0, help="Prompt i of the file (0-based) is generated with seed + i."),
    device: Optional[str] = typer.Option(None, help="cuda, cuda:1, mps or cpu (default: the first available)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N prompts."),
    overwrite: bool = typer.Option(False, help="Regenerate images that already exist (default: resume)."),
) -> None:
    """Generate one image per prompt with the model's own pipeline and settings."""
    from rich.progress import Progress

    import aedr

    from .prompts import generate_to_folder

    plugin = aedr.get_model(model)
    if type(plugin).generate is aedr.ModelPlugin.generate:
        raise typer.BadParameter(f"model {plugin.name!r} has no generator", param_hint="MODEL")
    items = read_prompt_file(prompts)[: limit if limit is not None else None]
    device = device or default_device()

    def one(text: str, image_seed: int):
        return plugin.generate(1, seed=image_seed, prompts=[text], device=device)[0]

    with Progress() as bar:
        existing = 0 if overwrite else sum((out / p.filename).exists() for p in items)
        task = bar.add_task(f"{plugin.name}: generating", total=len(items), completed=existing)
        try:
            generate_to_folder(one, items, out, seed=seed, overwrite=overwrite, progress=lambda *_: bar.advance(task))
        except (WeightsUnavailableError, ImportError) as exc:
            bar.stop()
            user_error(exc)
    typer.echo(f"{len(items)} images in {out}")


def prompts_command(
    images: Path = typer.Argument(..., help="Folder of real images to describe."),
    out: Path = typer.Option(..., "--out", help="Prompt file to write ('NNN: prompt' lines)."),
    clip: str = typer.Option(INTERROGATOR_CLIP, help="CLIP model of CLIP Interrogator."),
    mode: str = typer.Option(INTERROGATOR_MODE, help="classic (the original's), fast or best."),
    device: Optional[str] = typer.Option(None, help="cuda or cpu (default: the first available)."),
    low_vram: bool = typer.Option(False, help="CLIP Interrogator's low-VRAM settings."),
) -> None:
    """Describe real images with CLIP Interrogator (needs the 'interrogate' extra)."""
    from .prompts import interrogate_folder, write_prompt_file

    if out.exists():
        raise typer.BadParameter(f"{out} already exists", param_hint="--out")
    try:
        found = interrogate_folder(images, clip_model=clip, mode=mode, device=device or default_device(), low_vram=low_vram)
    except (RuntimeError, ValueError) as exc:
        user_error(exc)
    write_prompt_file(out, found)
    typer.echo(f"{len(found)} prompts written to {out}")


def add_commands(cli: typer.Typer) -> None:
    cli.command("generate")(generate_command)
    cli.command("prompts")(prompts_command)
