"""``aedr zoo``: list, look at and retrain the embedded model zoo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

zoo_app = typer.Typer(help="The embedded model zoo: small latent diffusion models shipped with aedr.", no_args_is_help=True)


def _selected(only: Optional[list[str]]):
    from .models import get_spec
    from .plugin import zoo_models

    models = zoo_models()
    if only:
        for name in only:
            get_spec(name)  # clear error for unknown names
        models = [m for m in models if m.name in only]
    return models


@zoo_app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Per model: family, latent shape, parameters, PSNR on the evaluation crops, training time."""
    from rich.console import Console
    from rich.table import Table

    rows = []
    for model in _selected(None):
        if not model.availability().local:
            rows.append({"name": model.name, "family": model.family, "available": False})
            continue
        m = model.meta
        t = m["training"]
        rows.append(
            {
                "name": model.name,
                "family": model.family,
                "autoencoder": m["autoencoder_class"],
                "latent_shape": m["latent_shape"],
                "downsample": m["downsample"],
                "params_autoencoder": m["params"]["autoencoder"],
                "params_unet": m["params"]["unet"],
                "psnr_eval": m["psnr_eval"],
                "train_seconds": round(t["autoencoder_seconds"] + t["unet_seconds"], 1),
                "available": True,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="aedr model zoo (images 32x32; PSNR on zoo-real-eval)")
    for col in ("model", "family", "autoencoder", "latent (CxHxW)", "params AE", "params UNet", "PSNR dB", "train min"):
        table.add_column(col)
    for r in rows:
        if not r["available"]:
            table.add_row(r["name"], r["family"], "weights missing", "", "", "", "", "")
            continue
        table.add_row(
            r["name"], r["family"], r["autoencoder"], "x".join(map(str, r["latent_shape"])),
            f"{r['params_autoencoder'] / 1e3:.0f}k", f"{r['params_unet'] / 1e3:.0f}k", f"{r['psnr_eval']:.2f}",
            f"{r['train_seconds'] / 60:.1f}",
        )
    Console(width=max(Console().width, 120)).print(table)


@zoo_app.command()
def gallery(
    out: Path = typer.Option(..., "--out", help="Folder for the contact sheets (one PNG per model)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this model (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="First generation seed."),
) -> None:
    """Write one contact sheet per model: real crops, their reconstructions, generated samples."""
    from .gallery import write_gallery

    for path in write_gallery(_selected(only), out, seed=seed):
        typer.echo(str(path))


@zoo_app.command()
def train(
    out: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's own, replacing the shipped weights)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this model (repeatable)."),
    jobs: int = typer.Option(2, "--jobs", help="Models trained at once, one process each."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads per process."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Cap every training run (smoke test; not a usable zoo)."),
) -> None:
    """Retrain the zoo from scratch (seeded; see docs/zoo.md for the measured time on a 2-core CPU)."""
    from .store import WEIGHTS_DIR
    from .train import train_zoo

    target = out or WEIGHTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    results = train_zoo(target, only, jobs=jobs, threads=threads, max_steps=max_steps)
    for r in results:
        typer.echo(f"{r.name}: PSNR {r.psnr:.2f} dB, autoencoder {r.ae_seconds / 60:.1f} min, denoiser {r.unet_seconds / 60:.1f} min")
