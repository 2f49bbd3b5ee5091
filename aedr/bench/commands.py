"""The ``aedr bench`` and ``aedr leaderboard`` commands (mounted by :mod:`aedr.default_plugins`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer
from typer.core import TyperCommand

from ..cli import batch_size_flag, err, fail, out
from ..text import markup
from .config import SHIPPED, ConfigError, load_config, split_names


MULTI_VALUE_OPTIONS = ("--models", "-m", "--methods", "--perturb")
# Options whose values are joined with a space, not a comma: a comma separates a perturbation's levels.
SPACE_JOINED = ("--perturb",)


def join_multi_values(args: list[str], options: tuple[str, ...] = MULTI_VALUE_OPTIONS) -> list[str]:
    """``--models a b --x`` -> ``--models a,b --x``: list options take several values after one flag
    (``--perturb jpeg:90,70 crop:0.9`` -> ``--perturb "jpeg:90,70 crop:0.9"``)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        out.append(token)
        i += 1
        if token in options:
            values = []
            while i < len(args) and not args[i].startswith("-"):
                values.append(args[i])
                i += 1
            if values:
                out.append((" " if token in SPACE_JOINED else ",").join(values))
    return out


class MultiValueCommand(TyperCommand):
    """A command whose list options accept space-separated values (``--models zoo-kl-a zoo-vq``)."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, join_multi_values(list(args)))


def parse_method_options(items: list[str], plugins) -> dict[str, dict[str, Any]]:
    """``-o ronan.iterations=50`` -> ``{"ronan": {"iterations": 50}}``, parsed to the option's declared type."""
    from ..methods.base import unknown_options

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            fail(f"--option expects METHOD.KEY=VALUE (e.g. ronan.iterations=50), got {item!r}")
        lhs, raw = item.split("=", 1)
        method, key = lhs.split(".", 1)
        key = key.strip().replace("-", "_")
        cls = plugins.methods.get(method.strip())
        unknown = unknown_options(cls, [key])
        if unknown is not None:
            fail(str(unknown))
        try:
            options.setdefault(cls.name, {})[key] = cls.Options.parse(key, raw)
        except TypeError as exc:
            fail(f"--option {item}: {exc}")
    return options


def bench_command(
    config: Optional[str] = typer.Option(None, "--config", "-c", help=f"A TOML file, or a shipped config: {', '.join(SHIPPED)} (default: default)."),
    models: Optional[List[str]] = typer.Option(None, "--models", "-m", help="Models (names or globs, comma-separated or repeated)."),
    methods: Optional[List[str]] = typer.Option(None, "--methods", help="Methods (names or globs, comma-separated or repeated)."),
    real: Optional[str] = typer.Option(None, "--real", help="Real evaluation images: a folder or a dataset name; 'none' to leave out."),
    real_cal: Optional[str] = typer.Option(None, "--real-cal", help="Real estimation images for --alpha auto: a folder or a dataset; 'none'."),
    n_cal: Optional[int] = typer.Option(None, "--n-cal", help="Calibration images per model (threshold)."),
    n_eval: Optional[int] = typer.Option(None, "--n-eval", help="Evaluation images per model."),
    n_real: Optional[int] = typer.Option(None, "--n-real", help="Real evaluation images (default: --n-eval)."),
    alpha: Optional[str] = typer.Option(None, "--alpha", help="KDE tail mass for the threshold, or 'auto' (chosen per target)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, mps ..."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed: generation seeds and every method's per-image seeds."),
    batch_size: Optional[str] = typer.Option(
        None, "--batch-size", help="Images per forward batch, for every method; 'auto': the largest that fits on the device.",
    ),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-O", help="Output folder (reruns resume there)."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Images per saved chunk."),
    option: List[str] = typer.Option([], "--option", "-o", help="Method option METHOD.KEY=VALUE (repeatable), e.g. -o ronan.iterations=50."),
    share: Optional[bool] = typer.Option(None, "--share/--no-share", help="Share first reconstructions between methods."),
    report: Optional[bool] = typer.Option(None, "--report/--no-report", help="Write report.html (default: yes)."),
    executor: Optional[str] = typer.Option(None, "--executor", help="The registered executor that scores the units (default: local)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help='Score on Ray, joining the cluster at ADDRESS ("auto", "ray://head:10001"); implies --executor ray.'),
    perturb: Optional[List[str]] = typer.Option(
        None, "--perturb", help="Perturbations of every source's evaluation images, e.g. --perturb jpeg:90,70,50 crop:0.9,0.5 ('none': no perturbation)."
    ),
    calibrate_perturbed: Optional[bool] = typer.Option(
        None, "--calibrate-perturbed/--calibrate-clean", help="Thresholds from equally perturbed calibration images (default: from the clean ones)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Resolve the config and print the plan; compute nothing."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Benchmark every method on every (target, source) pair and real images: tables, leaderboard, HTML report.

    With no arguments: the embedded zoo, every method, offline, on the CPU (default config).
    Scores are "lower = belonging" everywhere. An interrupted run resumes when rerun with the same flags.
    """
    from ..plugins import get_plugins

    plugins = get_plugins()
    settings = config_overrides(
        models, methods, batch_size, out_dir, share, perturb, real=real, real_cal=real_cal, n_cal=n_cal, n_eval=n_eval, n_real=n_real,
        alpha=alpha, device=device, seed=seed, chunk_size=chunk_size, report=report, executor=executor, calibrate_perturbed=calibrate_perturbed,
    )
    cfg = checked_config(config, settings, option, ray_address, plugins)
    if dry_run:
        _print_plan(cfg, plugins)
        return
    _run(cfg, plugins, progress=not no_progress)


def config_overrides(models, methods, batch_size: str | None, out_dir: Path | None, share: bool | None, perturb: list[str] | None,
                     **same: Any) -> dict[str, Any]:
    """The flags as :func:`load_config` overrides: lists of names split, ``--batch-size`` parsed, the
    perturbations one spec each, the flags named otherwise renamed, the others (``same``) as given."""
    return dict(
        models=split_names(models) or None,
        methods=split_names(methods) or None,
        batch_size=batch_size_flag(batch_size),
        out=str(out_dir) if out_dir is not None else None,
        share_reconstructions=share,
        perturbations=[spec for item in perturb for spec in item.split()] if perturb else None,
        **same,
    )


def checked_config(config: str | None, settings: dict[str, Any], option: list[str], ray_address: str | None, plugins):
    """The run's config: ``config`` with the overrides and the method options, joining the Ray
    cluster at ``ray_address`` when given; a bad config or perturbation is a user error before
    anything runs."""
    from .plan import select_perturbations

    try:
        settings = {**settings, "method_options": parse_method_options(option, plugins)}
        cfg = load_config(config, **settings)
        if ray_address is not None:  # the ray executor joins that cluster: the config is made so, not changed after
            if cfg.executor not in ("local", "ray"):
                fail(f"--ray-address needs the ray executor, not {cfg.executor!r}")
            cfg = load_config(config, **{**settings, "executor": "ray"}, executor_options={"ray": {"address": ray_address}})
        select_perturbations(cfg, plugins)  # a bad spec is reported before anything runs
    except ConfigError as exc:
        fail(str(exc))
    return cfg


def _run(cfg, plugins, progress: bool) -> None:
    """Run the bench and print its summary; an interruption says how to resume (exit status 130)."""
    from .runner import BenchInterrupted, run_bench

    t0 = time.perf_counter()
    try:
        result = run_bench(cfg, plugins=plugins, console=err, progress=progress)
    except ConfigError as exc:
        fail(str(exc))
    except BenchInterrupted as exc:
        err.print(
            f"[bold yellow]interrupted[/]: {exc.stats.scored} new score(s) in {exc.stats.chunks_written} chunk(s) saved in {markup(exc.out)}; "
            "run the same command again to resume."
        )
        sys.exit(130)
    _print_summary(result, time.perf_counter() - t0)


def _print_plan(cfg, plugins) -> None:
    from .plan import select_methods, select_models, select_perturbations
    from .runner import select_executor

    try:
        models = select_models(cfg, plugins)
        methods = select_methods(cfg, plugins)
        perturbations = select_perturbations(cfg, plugins)
        select_executor(cfg, plugins)
    except ConfigError as exc:
        fail(str(exc))
    n_sources = len(models) + (1 if cfg.real else 0)
    evaluation = cfg.n_eval * len(models) + (cfg.real_eval_count if cfg.real else 0)
    calibration = cfg.n_cal + (cfg.n_cal * (n_sources - 1) if cfg.auto_alpha else 0)
    per_target = calibration + evaluation
    per_target += len(perturbations) * (evaluation + (calibration if cfg.calibrate_perturbed else 0))
    out.print(f"[bold]config[/] {markup(cfg.name)}: out={markup(cfg.out)}, n_cal={cfg.n_cal}, n_eval={cfg.n_eval}, alpha={cfg.alpha}, seed={cfg.seed}, device={cfg.device}, executor={markup(cfg.executor)}")
    for m in models:
        avail = m.availability()
        state = "" if avail.local else f" [yellow]not available: {markup(avail.detail)}[/]"
        out.print(f"[bold]model[/] {markup(m.name)} ({markup(m.family)}{'' if m.can_generate else ', no generator'}){state}")
    if perturbations:
        where = "perturbed calibration images" if cfg.calibrate_perturbed else "the clean calibration images"
        out.print(f"[bold]perturbations[/] ({len(perturbations)}, thresholds from {where}): " + markup(", ".join(c.id for c in perturbations)))
    for spec in methods:
        state = f"[red]not runnable: {markup(spec.error.strip().splitlines()[0])}[/]" if spec.error else f"options hash {spec.options_hash}"
        out.print(f"[bold]method[/] {markup(spec.label)}: {state}")
    runnable = sum(1 for s in methods if s.error is None)
    out.print(f"up to {per_target} images per target x {len(models)} targets x {runnable} methods = {per_target * len(models) * runnable} scores (saved ones are skipped)")


def _print_summary(result, elapsed: float) -> None:
    import dataclasses

    from .render.console import print_table
    from .render.format import first_line
    from .tables import Estimate, leaderboard_table

    print_table(out, leaderboard_table(result.summaries, metrics=result.board_metrics))
    # one model: no model pairs (no Table 1), so the robustness table shown is the one against real images
    robust_key = "robust_real_auc" if len(result.plan.models) == 1 else "robust_auc"
    for t in result.tables:
        if t.key in ("table1", "table2", "shared"):
            print_table(out, t)
        elif t.key == robust_key:  # one column per perturbation: values only (the files have the intervals)
            rows = [[v.value if isinstance(v, Estimate) else v for v in row] for row in t.rows]
            print_table(out, dataclasses.replace(t, rows=rows, note=t.note + " Intervals: leaderboard.md, report.html."))
    for m in result.plan.methods:  # its full message was printed as the run started; a reminder here
        if m.error:
            out.print(f"[yellow]not run:[/] {markup(m.name)}: {markup(first_line(m.error))} (in full: the warning above, metrics.json)", soft_wrap=False)
    for f in result.failures:
        out.print(f"[yellow]failed:[/] {markup(f.label)} under {markup(f.target)}: {markup(f.error)}")
    st = result.stats
    out.print(
        f"{st.generated} images generated, {st.scored} scores computed, {st.already_saved} reused, {st.skipped} skipped; "
        f"{elapsed:.1f} s. Results in [bold]{markup(result.config.out)}[/]: " + markup(", ".join(p.name for p in result.files.values())),
        soft_wrap=False,
    )


def leaderboard_command(
    runs: List[Path] = typer.Argument(..., help="Output folders of `aedr bench` runs (or their metrics.json)."),
    out_dir: Path = typer.Option(Path("aedr-runs/leaderboard"), "--out", "-O", help="Where to write leaderboard.md, .html and .json."),
) -> None:
    """Merge several bench runs into one leaderboard (Markdown, HTML and JSON)."""
    from ..plugins import get_plugins
    from .leaderboard import LeaderboardError, write_leaderboard
    from .metrics import Metric
    from .render.console import print_table

    metrics = [entry.obj for entry in get_plugins().metrics if isinstance(entry.obj, Metric)]
    try:
        merged, files = write_leaderboard(list(runs), out_dir, metrics)
    except LeaderboardError as exc:
        fail(str(exc))
    print_table(out, merged.table())
    for note in merged.notes:
        out.print(f"[yellow]note:[/] {markup(note)}", soft_wrap=False)
    out.print(f"written to {markup(out_dir)}: " + markup(", ".join(p.name for p in files.values())))
