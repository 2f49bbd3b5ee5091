"""``aedr zoo``: list, look at and retrain the embedded model zoo (mounted by :mod:`aedr_zoo.plugin`).

Errors and output follow the ``aedr`` command's convention (:mod:`aedr.cli`): a user error is a
:func:`aedr.cli.fail`, results go to ``aedr.cli.out`` and messages to ``aedr.cli.err``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from aedr.cli import err, fail, out
from aedr.text import markup, print_widest_fitting

from .models import SPECS

zoo_app = typer.Typer(help="The embedded model zoo: small latent diffusion models shipped with aedr.", no_args_is_help=True)


def _check_names(only: Optional[list[str]]) -> None:
    """Every ``--only`` name is a zoo model's, before any work."""
    unknown = [name for name in only or () if name not in SPECS]
    if unknown:
        fail(f"--only: no zoo model {', '.join(map(repr, unknown))}; zoo models: {', '.join(SPECS)}")


def _selected(only: Optional[list[str]]):
    from .zoo import zoo_models

    _check_names(only)
    models = zoo_models()
    if only:
        models = [m for m in models if m.name in only]
    return models


@zoo_app.command()
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Per model: family, latent shape, parameters, PSNR on the evaluation crops, training time."""
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
                "gates": _gate_summary(m.get("gates")),
                "relation": m.get("relation"),
                "available": True,
            }
        )
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title="aedr model zoo (images 32x32; PSNR on zoo-real-eval; quality gates 1-3 on 256 samples, 4 on PSNR; docs/zoo.md)")
    columns = ("model", "family", "autoencoder", "latent (CxHxW)", "params AE", "params UNet", "PSNR dB", "train min",
               "latent mean off (<=0.15)", "latent std err (<=0.15)", "saturation x (<=2)", "MMD2 / threshold",
               "PSNR over best 4-ch (>=5)", "fixed-point gap samples / real", "gates")
    for col in columns:
        table.add_column(col)
    for r in rows:
        if not r["available"]:
            table.add_row(markup(r["name"]), r["family"], "weights missing", *[""] * (len(columns) - 3))
            continue
        g = r["gates"]
        gate_cells = (
            [f"{g['mean_offset']:.3f}", f"{g['std_ratio_error']:.3f}", f"{g['saturation_ratio']:.2f}",
             f"{g['mmd2']:.4f} / {g['mmd2_threshold']:.4f}", "" if g["psnr_margin"] is None else f"{g['psnr_margin']:+.2f} dB",
             f"{g['fixed_point_gap_samples']:.5f} / {g['fixed_point_gap_real']:.5f}",
             "passed" if g["passed"] else "FAILED: " + ", ".join(g["failed"])]
            if g else ["", "", "", "", "", "", "not measured"]
        )
        table.add_row(
            markup(r["name"]), r["family"], r["autoencoder"], "x".join(map(str, r["latent_shape"])),
            f"{r['params_autoencoder'] / 1e3:.0f}k", f"{r['params_unet'] / 1e3:.0f}k", f"{r['psnr_eval']:.2f}",
            f"{r['train_seconds'] / 60:.1f}", *gate_cells,
        )
    # a narrower terminal gets the headline figures (at 80 columns without the parameter counts); the
    # siblings' relations under whichever table; the gates' measurements: aedr zoo gates, --json
    print_widest_fitting(out, table, _headline_table(rows, params=True), _headline_table(rows, params=False))
    for r in rows:
        if r.get("relation"):
            out.print(f"{markup(r['name'])}: {markup(RELATIONS[r['relation']['kind']].format(parent=r['relation']['parent']))}")


def _headline_table(rows: list[dict], params: bool):
    from rich.table import Table

    table = Table(title="aedr model zoo (32x32 images; PSNR on zoo-real-eval)",
                  caption="every figure: aedr zoo info --json; the quality gates in full: aedr zoo gates", caption_justify="left")
    columns = ("model", "family", "latent", *(("params AE", "params UNet") if params else ()), "PSNR dB", "train min", "gates")
    for col in columns:
        table.add_column(col, no_wrap=col != "gates", min_width=6 if col == "gates" else None)  # "passed" never squeezed away
    for r in rows:
        g = r["gates"] if r["available"] else None
        gates = "weights missing" if not r["available"] else ("not measured" if not g else ("passed" if g["passed"] else "FAILED: " + ", ".join(g["failed"])))
        sizes = [f"{r['params_autoencoder'] / 1e3:.0f}k", f"{r['params_unet'] / 1e3:.0f}k"] if params else []
        figures = ["x".join(map(str, r["latent_shape"])), *sizes, f"{r['psnr_eval']:.2f}", f"{r['train_seconds'] / 60:.1f}"] \
            if r["available"] else [""] * (len(columns) - 3)
        table.add_row(markup(r["name"]), r["family"], *figures, gates)
    return table


RELATIONS = {"shared-autoencoder": "{parent}'s autoencoder", "decoder-finetune": "{parent}, decoder fine-tuned"}


def _gate_summary(gates: Optional[dict]) -> Optional[dict]:
    """The quality gates of one model's ``zoo.json`` (see ``aedr_zoo.quality``), flattened."""
    if not gates:
        return None
    from .quality import failed_gates

    failed = failed_gates(gates)
    fidelity = gates.get("fidelity")
    return {
        "mean_offset": gates["latents"]["max_abs_mean_offset"],
        "std_ratio_error": gates["latents"]["max_std_ratio_error"],
        "saturation_ratio": gates["saturation"]["ratio"],
        "mmd2": gates["distance"]["mmd2"],
        "mmd2_threshold": gates["distance"]["threshold"],
        "fixed_point_gap_samples": gates["fixed_point_gap"]["samples"],
        "fixed_point_gap_real": gates["fixed_point_gap"]["real_reconstructions"],
        "psnr_margin": None if fidelity is None else round(fidelity["psnr"] - fidelity["best_4_channel_psnr"], 2),
        "passed": not failed,
        "failed": failed,
    }


@zoo_app.command()
def gates(
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this model (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print every gate's full record (per-channel statistics too)."),
) -> None:
    """Recompute the quality gates from the weights (what `aedr zoo info` shows from zoo.json)."""
    import torch

    from .quality import model_gates

    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the stored gates used one
    records = {}
    for model in _selected(only):
        g = model_gates(model)
        g.update(_recomputed_fidelity(model))
        records[model.name] = g
        if not as_json:
            s = _gate_summary(g)
            stored = _gate_summary(model.meta.get("gates"))
            same = "" if stored is None else ("; matches zoo.json" if stored == s else "; DIFFERS from zoo.json")
            margin = "" if s["psnr_margin"] is None else f", PSNR {s['psnr_margin']:+.2f} dB over the best 4-channel model"
            out.print(markup(
                f"{model.name}: latent mean offset {s['mean_offset']:.3f}, std ratio error {s['std_ratio_error']:.3f}, "
                f"saturation {s['saturation_ratio']:.2f}x, MMD2 {s['mmd2']:.4f} / {s['mmd2_threshold']:.4f}{margin}, fixed-point gap "
                f"{s['fixed_point_gap_samples']:.5f} / {s['fixed_point_gap_real']:.5f}: "
                f"{'passed' if s['passed'] else 'FAILED ' + ', '.join(s['failed'])}{same}"
            ))
    if as_json:
        out.print_json(json.dumps(records))


def _recomputed_fidelity(model) -> dict:
    """Gate 4 of ``model`` from its PSNR measured now, against the 4-channel models' recorded PSNRs
    (``{}`` for a model outside the high-fidelity family)."""
    from aedr.models import HIGH_FIDELITY_FAMILIES

    from . import data
    from .evaluate import reconstruction_psnr
    from .quality import fidelity_gates

    if model.family not in HIGH_FIDELITY_FAMILIES:
        return {}
    metas = {m.name: m.meta for m in _selected(None) if m.availability().local}
    psnr = reconstruction_psnr(model.autoencoder(), data.split_data("eval").images)
    gate = fidelity_gates({**metas, model.name: {**model.meta, "psnr_eval": round(psnr, 2)}}).get(model.name)
    return {"fidelity": gate} if gate else {}


@zoo_app.command()
def distances(
    folder: Optional[Path] = typer.Option(None, "--weights", help="Weights folder (default: the weights in use)."),
) -> None:
    """Measure how alike every two zoo models' samples are (gate 3's MMD²) and record it in each
    model's sample_distances.json: the bench's hard pairs are the closest third."""
    from aedr.progress import progress_bar

    from .models import ZOO
    from .store import model_dir, weights_in_use
    from .train import record_sample_distances

    weights = folder or weights_in_use()
    present = [s.name for s in ZOO if (model_dir(s.name, weights) / "zoo.json").is_file()]
    with progress_bar(f"samples of {len(present)} zoo models", len(present)) as advance:
        found = record_sample_distances(weights, advance)
    pairs = sorted({tuple(sorted((a, b))): d for a, row in found.items() for b, d in row.items()}.items(), key=lambda kv: kv[1])
    for (a, b), d in pairs:
        out.print(f"{markup(a)} / {markup(b)}: MMD² {d:.5f}")


@zoo_app.command()
def gallery(
    folder: Path = typer.Option(..., "--out", help="Folder for the contact sheets (one PNG per model)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this model (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="First generation seed."),
) -> None:
    """Write one contact sheet per model: real crops, their reconstructions, generated samples."""
    from aedr.progress import progress_bar

    from .gallery import write_gallery

    models = _selected(only)
    with progress_bar(f"contact sheets of {len(models)} zoo models", len(models)) as advance:
        paths = write_gallery(models, folder, seed=seed, progress=advance)
    for path in paths:
        out.print(markup(path))


@zoo_app.command()
def train(
    folder: Optional[Path] = typer.Option(None, "--out", help="Weights folder (default: the package's own, replacing the shipped weights)."),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Only this model (repeatable)."),
    jobs: int = typer.Option(2, "--jobs", help="Models trained at once, one process each."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads per process."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Cap every training run (smoke test; not a usable zoo)."),
    reuse_autoencoders: bool = typer.Option(
        False, "--reuse-autoencoders",
        help="Train only the denoisers, on the autoencoders of the weights in use ($AEDR_ZOO_WEIGHTS or the shipped "
        "ones; checksummed, same recipe). The autoencoder stage is deterministic, so this equals a full run.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print every model's loss and PSNR every 100 steps."),
) -> None:
    """Retrain the zoo from scratch (seeded; see docs/zoo.md for the measured time on a 2-core CPU).

    One progress bar over every model's optimisation steps; a line as each model's stage starts and ends."""
    from aedr.progress import progress_bar

    from .store import WEIGHTS_DIR, weights_in_use
    from .train import Watcher, capped, steps_to_train, train_zoo

    _check_names(only)
    if reuse_autoencoders and max_steps:
        fail("--max-steps caps the autoencoder too; it cannot go with --reuse-autoencoders")
    target = folder or WEIGHTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    names = only or list(SPECS)
    total = sum(steps_to_train(capped(SPECS[n], max_steps), reuse_autoencoders) for n in names)
    with progress_bar(f"training {len(names)} zoo model{'s' if len(names) > 1 else ''}", total) as advance:
        def say(line: str) -> None:
            err.print(markup(line))

        watcher = Watcher(stage=say, detail=say if verbose else (lambda line: None), advance=advance)
        results = train_zoo(target, only, jobs=jobs, threads=threads, max_steps=max_steps,
                            reuse_autoencoders=weights_in_use() if reuse_autoencoders else None, watcher=watcher)
    failed = []
    for r in results:
        ae = "reused" if r.autoencoder_reused else f"{r.ae_seconds / 60:.1f} min"
        out.print(markup(f"{r.name}: PSNR {r.psnr:.2f} dB, autoencoder {ae}, denoiser {r.unet_seconds / 60:.1f} min, "
                         f"quality gates {'passed' if r.gates_passed else 'FAILED'}"))
        if not r.gates_passed:
            failed.append(r.name)
    if failed:
        err.print(markup(f"quality gates failed: {', '.join(failed)} (see `aedr zoo info` and docs/zoo.md)"))
