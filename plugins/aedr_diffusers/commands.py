"""``aedr generate`` (images from a prompt file, written as ``NNN.png``) and ``aedr prompts`` (prompts
from real images with CLIP Interrogator), added to the CLI through ``register_commands``.

Errors and output follow the ``aedr`` command's convention (:mod:`aedr.cli`): a user error is a
:func:`aedr.cli.fail`, results go to ``aedr.cli.out``, messages and progress to ``aedr.cli.err``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aedr.cli import err, fail, out
from aedr.devices import DeviceError, check_device, default_device
from aedr.text import markup, progress_display, safe_str

from .prompts import INTERROGATOR_CLIP, INTERROGATOR_MODE, read_prompt_file


def pick_device(device: Optional[str]) -> str:
    """``--device``, checked before any work, or the first available device."""
    if device is None:
        return default_device()
    try:
        return check_device(device)
    except DeviceError as exc:
        fail(f"--{exc}")


def generate_command(
    model: str = typer.Argument(..., help="Model name (see `aedr models`); it must have a generator."),
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file, one 'NNN: prompt' per line."),
    folder: Path = typer.Option(..., "--out", help="Folder for the images, written as NNN.png."),
    seed: int = typer.Option(0, help="Prompt i of the file (0-based) is generated with seed + i."),
    device: Optional[str] = typer.Option(None, help="cuda, cuda:1, mps or cpu (default: the first available)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N prompts."),
    overwrite: bool = typer.Option(False, help="Regenerate images that already exist (default: resume)."),
) -> None:
    """Generate one image per prompt with the model's own pipeline and settings."""

    import aedr

    from .prompts import generate_to_folder

    plugin = aedr.get_model(model)
    if type(plugin).generate is aedr.ModelPlugin.generate:
        fail(f"model {plugin.name!r} has no generator")
    try:
        items = read_prompt_file(prompts)[: limit if limit is not None else None]
    except OSError as exc:
        fail(f"--prompts {safe_str(prompts)}: {exc.strerror or exc}")
    except UnicodeDecodeError:
        fail(f"--prompts {safe_str(prompts)}: not UTF-8 text")
    except ValueError as exc:  # names the file and the line
        fail(str(exc))
    device = pick_device(device)

    def one(text: str, image_seed: int):
        return plugin.generate(1, seed=image_seed, prompts=[text], device=device)[0]

    with progress_display(err) as bar:
        existing = 0 if overwrite else sum((folder / p.filename).exists() for p in items)
        task = bar.add_task(markup(f"{plugin.name}: generating"), total=len(items), completed=existing)
        try:
            generate_to_folder(one, items, folder, seed=seed, overwrite=overwrite, progress=lambda *_: bar.advance(task))
        except ImportError as exc:  # an optional dependency of the model's pipeline
            fail(str(exc))
    out.print(f"{len(items)} images in {markup(folder)}")


def prompts_command(
    images: Path = typer.Argument(..., help="Folder of real images to describe."),
    prompt_file: Path = typer.Option(..., "--out", help="Prompt file to write ('NNN: prompt' lines)."),
    clip: str = typer.Option(INTERROGATOR_CLIP, help="CLIP model of CLIP Interrogator."),
    mode: str = typer.Option(INTERROGATOR_MODE, help="classic (the original's), fast or best."),
    device: Optional[str] = typer.Option(None, help="cuda or cpu (default: the first available)."),
    low_vram: bool = typer.Option(False, help="CLIP Interrogator's low-VRAM settings."),
) -> None:
    """Describe real images with CLIP Interrogator (needs the 'interrogate' extra)."""
    from .prompts import interrogate_folder, write_prompt_file

    if prompt_file.exists():
        fail(f"--out {safe_str(prompt_file)} already exists")
    device = pick_device(device)
    try:
        found = interrogate_folder(images, clip_model=clip, mode=mode, device=device, low_vram=low_vram)
    except (RuntimeError, ValueError) as exc:
        fail(str(exc))
    write_prompt_file(prompt_file, found)
    out.print(f"{len(found)} prompts written to {markup(prompt_file)}")


def add_commands(cli: typer.Typer) -> None:
    cli.command("generate")(generate_command)
    cli.command("prompts")(prompts_command)
