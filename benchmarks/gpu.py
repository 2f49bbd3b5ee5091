"""AEDR against its autoencoder's speed limit, on whatever device it is given: one command, one table.

    python benchmarks/gpu.py --device cuda                  # the whole table, about 5 min on one GPU
    python benchmarks/gpu.py --smoke                        # the CPU, tiny sizes, seconds (the tests run it)
    python benchmarks/gpu.py --device cuda --only sd-vae latenttracer --out sd.json

Parts (``--only``), run in this order (cheapest first, so that a run cut short keeps the most rows):

- ``sd-vae`` (then ``flux-vae``, fifth): the SD VAE architecture (4 latent channels) at 512 px and the
  FLUX.1 VAE architecture (16 channels) at 1024 px, built from their diffusers configs with random
  weights (speed does not depend on the weights). For each dtype (bf16, fp16, fp32) and batch size
  (1, 8, 32, and in bf16 also the one ``--batch-size auto`` picks; ``--auto-dtypes`` for more, each
  is one search): the *floor*, two encoder and two decoder passes per image, batched, nothing else;
  AEDR through the public API (``aedr.get_method("aedr").score``) at the same batch size; images per
  second of both, AEDR's ratio to the floor, AEDR's peak device memory.
- ``latenttracer``: LatentTracer (100 iterations) batched against the original's structure, a new
  Python process per image that imports everything and reloads the model (``benchmarks/speed.py``),
  on the same device, on the zoo's ``zoo-kl-a``.
- ``ray``: a small ``aedr bench`` plan (``zoo-kl-a``, AEDR) on the local executor and on the Ray
  executor with ``num_gpus`` (1 on a GPU, 0 on the CPU). ``--smoke`` leaves it out unless named.
- ``zoo``, ``taef2`` (last): the same rows for ``zoo-kl-a`` (32 px) and TAEF2 (1024 px; its weights
  through ``AEDR_MODEL_TAEF2``), in bf16 only, for reference.

Timing: after a warm-up batch, CUDA events around the timed work on CUDA (``time.perf_counter`` on
the CPU). AEDR's fixed batch sizes are used as given: the per-batch pixel cap that ``aedr`` applies
to fixed batch sizes (8 images of 512 x 512) is lifted for the measurement, as ``--batch-size auto``
lifts it. A batch that does not fit is a row saying "out of memory"; a dtype the device cannot run
is a row saying why. The JSON file (``--out``) is rewritten after every row, so a run stopped
part-way keeps what it measured; rows not started before ``--budget-s`` are recorded as skipped.
``--batch-size auto`` searches afresh: the search's cache goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import gc
import itertools
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import aedr
from aedr.batching import auto_batch_size, is_out_of_memory, probe_images
from aedr.files import write_text_atomic

PARTS = ("sd-vae", "latenttracer", "ray", "zoo", "flux-vae", "taef2")  # the order they run in: cheapest first
SMOKE_SKIPS = {"ray": "Ray's start-up (15 to 20 s on a 2-core CPU) is not smoke; run --smoke --only ray"}
DTYPES = ("bfloat16", "float16", "float32")
SHORT = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
AUTO = "auto"


# -- the architectures ------------------------------------------------------------------------


def vae_config(latent_channels: int, blocks: tuple[int, ...], layers: int, groups: int, **extra: Any) -> dict:
    """A diffusers ``AutoencoderKL`` config: KL encoder and decoder with ``blocks`` channels per level."""
    return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(blocks),
                up_block_types=("UpDecoderBlock2D",) * len(blocks), block_out_channels=blocks,
                layers_per_block=layers, latent_channels=latent_channels, norm_num_groups=groups, **extra)


@dataclass(frozen=True)
class Arch:
    """An autoencoder architecture measured with random weights, and the square image side it runs at."""

    name: str
    config: dict
    side: int
    description: str


# As published in diffusers format: the SD1.x/2.x VAE (e.g. stable-diffusion-v1-5's vae/config.json) and
# the FLUX.1 VAE (black-forest-labs/FLUX.1-dev's vae/config.json: no quant convs, latent shift).
FULL_ARCHS = {
    "sd-vae": Arch("sd-vae", vae_config(4, (128, 256, 512, 512), 2, 32, scaling_factor=0.18215), 512,
                   "SD VAE architecture, 4 latent channels, random weights"),
    "flux-vae": Arch("flux-vae", vae_config(16, (128, 256, 512, 512), 2, 32, scaling_factor=0.3611, shift_factor=0.1159,
                                            use_quant_conv=False, use_post_quant_conv=False), 1024,
                     "FLUX.1 VAE architecture, 16 latent channels, random weights"),
}
# Smoke: the same code on shapes small enough for a 2-core CPU.
SMOKE_ARCHS = {
    "sd-vae": Arch("sd-vae", vae_config(4, (8, 16), 1, 4, scaling_factor=0.18215), 32,
                   "smoke: SD VAE layout shrunk to 2 levels of 8/16 channels"),
    "flux-vae": Arch("flux-vae", vae_config(16, (8, 16), 1, 4, scaling_factor=0.3611, shift_factor=0.1159,
                                            use_quant_conv=False, use_post_quant_conv=False), 48,
                     "smoke: FLUX VAE layout shrunk to 2 levels of 8/16 channels"),
}


def build_module(arch: Arch) -> torch.nn.Module:
    """The architecture with seeded random weights, float32 on the CPU."""
    from diffusers import AutoencoderKL
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # casting the module to bf16 below is intended
    torch.manual_seed(0)
    return AutoencoderKL(**arch.config, sample_size=arch.side).eval()


class InMemoryVAE(aedr.ModelPlugin):
    """A model plugin around a module held in memory: each (device, dtype) gets its own copy."""

    family = "kl"

    def __init__(self, name: str, module: torch.nn.Module, description: str):
        super().__init__()
        self.name, self.module, self.description = name, module, description

    def load_autoencoder(self, device, dtype):
        module = copy.deepcopy(self.module).to(device=device, dtype=dtype or torch.float32)
        return aedr.DiffusersAutoencoder(module)


# -- settings, rows and the record --------------------------------------------------------------


@dataclass
class Settings:
    device: str
    smoke: bool
    dtypes: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    auto_dtypes: tuple[str, ...]  # the dtypes that also get a --batch-size auto row (each a search)
    images: int  # images timed per configuration (at least one batch)
    lt_iterations: int
    lt_images: int
    lt_processes: int
    ray_images: int
    budget_s: float
    threads: int
    tmp: Path

    @property
    def cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"


@dataclass
class Row:
    part: str
    model: str
    side: int | None = None
    dtype: str = ""
    batch: int | str | None = None
    batch_auto: bool = False  # the batch is the one --batch-size auto picked
    status: str = "ok"  # ok, out of memory, skipped: ..., error: ...
    floor_images_per_s: float | None = None
    aedr_images_per_s: float | None = None
    images_per_s: float | None = None  # the latenttracer and ray rows' own figure
    peak_mib: float | None = None  # AEDR's peak device memory (the floor's in floor_peak_mib)
    floor_peak_mib: float | None = None
    images_timed: int | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.floor_images_per_s and self.aedr_images_per_s:
            return self.aedr_images_per_s / self.floor_images_per_s
        return None


class Record:
    """The run's rows: each one printed as a progress line and saved to the JSON file as it comes."""

    def __init__(self, out: Path, meta: dict, budget_s: float):
        self.out, self.meta, self.budget_s = out, meta, budget_s
        self.rows: list[Row] = []
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def over_budget(self) -> bool:
        return self.elapsed() > self.budget_s

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", file=sys.stderr, flush=True)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.say(progress_line(row))
        self.save()

    def save(self) -> None:
        data = {**self.meta, "elapsed_s": round(self.elapsed(), 2),
                "rows": [{**dataclasses.asdict(r), "ratio_to_floor": r.ratio} for r in self.rows]}
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.out, json.dumps(data, indent=1, default=str))


def batch_label(row: Row) -> str:
    if row.batch is None:
        return "-"
    return f"auto {row.batch}" if row.batch_auto else str(row.batch)


def progress_line(row: Row) -> str:
    what = " ".join(x for x in (row.part, row.model, SHORT.get(row.dtype, row.dtype), f"batch {batch_label(row)}") if x)
    if row.status != "ok":
        return f"{what}: {row.status}"
    figures = [f"{k} {v:.2f} img/s" for k, v in (("floor", row.floor_images_per_s), ("aedr", row.aedr_images_per_s),
                                                   ("", row.images_per_s)) if v is not None]
    ratio = f" ({row.ratio:.2f}x floor)" if row.ratio is not None else ""
    return f"{what}: {', '.join(figures)}{ratio}" + (f"; {row.note}" if row.note else "")


# -- timing ---------------------------------------------------------------------------------------


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``fn()`` takes on ``device`` (CUDA events on CUDA, wall clock elsewhere) and its result."""
    if device.type != "cuda":
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out
    torch.cuda.synchronize(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    out = fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def repeats(batch: int, images: int) -> int:
    """Timed batches for a configuration: ``images`` images, at least one batch."""
    return max(1, math.ceil(images / batch))


def floor_passes(ae: aedr.Autoencoder, x: torch.Tensor) -> torch.Tensor:
    """The bare floor of AEDR's work on a batch: encode, decode, encode, decode (posterior means)."""
    with torch.no_grad():
        for _ in range(2):
            x = ae.decode(ae.encode(x).mean)
    return x


def measure_floor(ae: aedr.Autoencoder, batch: int, side: int, images: int, *, warm_up: bool) -> tuple[float, int, float | None]:
    """Images per second of :func:`floor_passes` at ``batch``, images timed, peak MiB."""
    x = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(0)).clamp(-1, 1).to(ae.device, ae.dtype)
    if warm_up:
        floor_passes(ae, x)
    reps = repeats(batch, images)
    reset_peak(ae.device)
    seconds, _ = timed(ae.device, lambda: [floor_passes(ae, x) for _ in range(reps)])
    return batch * reps / seconds, batch * reps, peak_mib(ae.device)


def take(pool: list[aedr.LoadedImage], n: int) -> list[aedr.LoadedImage]:
    """``n`` images from ``pool``, cycling, each a new object: nothing computed on an earlier one (its
    content hash) carries over."""
    return [aedr.LoadedImage(rgb=im.rgb, gray=im.gray, id=f"{im.id}-{i}") for i, im in zip(range(n), itertools.cycle(pool))]


def aedr_method(settings: Settings, dtype: str, batch: int | str, side: int) -> aedr.Method:
    method = aedr.get_method("aedr", device=settings.device, dtype=dtype, batch_size=batch)
    if isinstance(batch, int):
        method.max_batch_pixels = batch * side * side  # the batch as asked (see the module's docs)
    return method


def measure_aedr(method: aedr.Method, model: aedr.ModelPlugin, pool: list[aedr.LoadedImage], batch: int,
                 images: int, device: torch.device) -> tuple[float, float | None, int]:
    """Images per second of AEDR's ``score`` over whole batches of ``batch`` images (warmed up before),
    peak MiB, and how many scores were not finite (random weights in half precision can overflow; the
    timing stands)."""
    n = batch * repeats(batch, images)
    chosen = take(pool, n)
    reset_peak(device)
    seconds, scores = timed(device, lambda: method.score(model, chosen))
    return n / seconds, peak_mib(device), sum(not math.isfinite(s) for s in scores)


# -- the floor vs AEDR grid ----------------------------------------------------------------------


def failure_status(exc: BaseException) -> str:
    if is_out_of_memory(exc):
        return "out of memory"
    return f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def measure_config(settings: Settings, part: str, model: aedr.ModelPlugin, side: int, dtype: str,
                   batch: int | str, pool: list[aedr.LoadedImage]) -> Row:
    """One row: the floor and AEDR for ``model`` at ``side`` px in ``dtype`` at ``batch`` (or ``auto``)."""
    device = torch.device(settings.device)
    row = Row(part, model.name, side, dtype, batch)
    try:
        method = aedr_method(settings, dtype, batch, side)
        if batch == AUTO:
            print(f"  searching the batch size auto picks for {model.name} in {SHORT[dtype]} ...", file=sys.stderr, flush=True)
            search_s, n = timed(device, lambda: auto_batch_size(method, model, (side, side)))
            row.batch, row.batch_auto, row.note = n, True, f"auto searched in {search_s:.1f} s"
            row.extra["auto_search_s"] = search_s
        ae = model.autoencoder(settings.device, getattr(torch, dtype))
        # One warm-up batch serves both: AEDR runs the floor's shapes (an odd batch with one image more, which
        # the floor then warms up on its own).
        method.score(model, take(pool, row.batch))
        row.floor_images_per_s, row.images_timed, row.floor_peak_mib = measure_floor(
            ae, row.batch, side, settings.images, warm_up=row.batch % 2 == 1)
        free_memory(device)
        row.aedr_images_per_s, row.peak_mib, not_finite = measure_aedr(method, model, pool, row.batch, settings.images, device)
        if not_finite:
            row.note = "; ".join(filter(None, [row.note, f"{not_finite} AEDR scores not finite"]))
    except Exception as exc:  # one configuration failing (out of memory, an unsupported dtype) is a row
        row.status = failure_status(exc)
    free_memory(device)
    return row


def grid(record: Record, settings: Settings, part: str, model_for: Callable[[], aedr.ModelPlugin], side: int,
         dtypes: tuple[str, ...]) -> None:
    """The floor and AEDR rows of one model at each dtype and batch size (``auto`` last)."""
    pool = probe_images(min(settings.images, 64), (side, side))  # synthetic images, reused cyclically
    for dtype in dtypes:
        model = model_for()  # its own autoencoder copies, dropped with it after this dtype
        for batch in (*settings.batch_sizes, *([AUTO] if dtype in settings.auto_dtypes else [])):
            if record.over_budget():
                record.add(Row(part, model.name, side, dtype, batch, status=f"skipped: over the {settings.budget_s:.0f} s budget"))
                continue
            record.add(measure_config(settings, part, model, side, dtype, batch, pool))
        del model
        free_memory(torch.device(settings.device))


def run_arch(record: Record, settings: Settings, arch: Arch) -> None:
    record.say(f"{arch.name}: building {arch.description}, {arch.side} px")
    module = build_module(arch)
    grid(record, settings, arch.name, lambda: InMemoryVAE(arch.name, module, arch.description), arch.side, settings.dtypes)


def local_model(name: str) -> tuple[aedr.ModelPlugin | None, str]:
    """The registered model ``name`` if its weights are here, else None and the reason."""
    models = aedr.get_plugins().models
    if name not in models:
        return None, f"model {name!r} is not registered"
    model = models.get(name)
    available = model.availability()
    return (model, "") if available.local else (None, available.detail)


def run_reference(record: Record, settings: Settings, part: str, name: str, side: int) -> None:
    """A registered model's rows in bf16 at ``side`` px, or a skipped row saying why it cannot run."""
    model, reason = local_model(name)
    if model is None:
        record.add(Row(part, name, side, status=f"skipped: {reason}"))
        return
    grid(record, settings, part, lambda: model, side, ("bfloat16",))


# -- LatentTracer: batched against a process per image ------------------------------------------


def lt_model_spec(settings: Settings) -> str:
    """``zoo-kl-a`` when its weights are here, else speed.py's stand-in with the same architecture."""
    import speed

    if local_model("zoo-kl-a")[0] is not None:
        return "name:zoo-kl-a"
    speed.make_standin(settings.tmp / "standin")
    return f"folder:{settings.tmp / 'standin'}"


def run_latenttracer(record: Record, settings: Settings) -> None:
    import speed

    spec = lt_model_spec(settings)
    model = speed.resolve_model(spec)
    images = speed.photo_crops(settings.lt_images, 32)
    device = torch.device(settings.device)
    n, m, iters = len(images), settings.lt_processes, settings.lt_iterations
    method = aedr.get_method("latenttracer", iterations=iters, batch_size=n, device=settings.device)
    method.score(model, take(images, n))  # warm-up at the timed batch's shape
    reset_peak(device)
    seconds, batched = timed(device, lambda: method.score(model, take(images, n)))
    batched_row = Row("latenttracer", model.name, 32, "float32", n, images_per_s=n / seconds, peak_mib=peak_mib(device),
                      images_timed=n, note=f"{iters} iterations, batched")
    record.add(batched_row)
    per_image_s, scores = speed.original_per_process(images[:m], spec, iters, threads=settings.threads,
                                                     device=settings.device, tmp=settings.tmp)
    speedup = per_image_s / (seconds / n)
    differs = float(max(abs(a - b) / abs(b) for a, b in zip(scores, batched[:m])))
    record.add(Row("latenttracer", model.name, 32, "float32", 1, images_per_s=1 / per_image_s, images_timed=m,
                   note=f"new process per image; batched is {speedup:.0f}x faster",
                   extra={"batched_speedup": speedup, "largest_relative_score_difference": differs}))


# -- Ray against the local executor ---------------------------------------------------------------


def run_ray(record: Record, settings: Settings) -> None:
    """A small bench plan scored by the local executor, then by Ray (same images, copied)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        record.add(Row("ray", "zoo-kl-a", status="skipped: Ray is not installed (pip install 'aedr[ray]')"))
        return
    import ray_overhead
    from aedr.bench import load_config

    plugins, root = aedr.load_plugins(), settings.tmp / "ray"
    gpus = 1 if settings.cuda else 0
    images, base = None, None
    for kind in ("local", "ray"):
        out = root / kind
        if images is not None:
            shutil.copytree(images, out / "images")
        cfg = load_config("default", models=["zoo-kl-a"], methods=["aedr"], n_cal=settings.ray_images,
                          n_eval=settings.ray_images, chunk_size=settings.ray_images, real="none", report=False,
                          bootstrap=0, out=str(out), executor=kind, device=settings.device)
        if kind == "ray":
            cfg.executor_options["ray"] = {"actors": 1, "num_gpus": gpus, "num_cpus": 1}
        t = time.perf_counter()
        result, to_first = ray_overhead.timed_run(cfg, plugins)
        wall, st = time.perf_counter() - t, result.stats
        images = images or out / "images"
        base = base or st.scoring_seconds
        how = f"ray executor, 1 actor, num_gpus={gpus}, num_cpus=1" if kind == "ray" else "local executor"
        status = "ok" if not result.failures else f"error: {result.failures[0]}"[:200]
        record.add(Row("ray", "zoo-kl-a", 32, "float32", settings.ray_images, status=status,
                       images_per_s=st.scored / st.scoring_seconds, images_timed=st.scored,
                       note=f"{how}: {st.scored} scores in {st.scoring_seconds:.1f} s ({st.scoring_seconds / base:.2f}x local), "
                            f"first after {to_first:.1f} s",
                       extra={"executor": kind, "num_gpus": gpus if kind == "ray" else None, "scoring_s": st.scoring_seconds,
                              "wall_s": wall, "first_score_s": to_first}))


# -- the table --------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def rate(value: float | None) -> str:
    """Images per second with three significant digits or more: 1234, 56.7, 0.123."""
    if value is None:
        return "-"
    return format(value, ".0f" if value >= 100 else ".1f" if value >= 10 else ".3g")


WIDTH = 100
"""The table's width: a row whose note would make it wider points to the note, printed below the table."""


def table(rows: list[Row]) -> str:
    lines = ["| part | model | px | dtype | batch | floor img/s | AEDR img/s | x floor | peak MiB | note |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    notes = []
    for r in rows:
        aedr_or_own = r.aedr_images_per_s if r.aedr_images_per_s is not None else r.images_per_s
        note = r.note if r.status == "ok" else r.status + (f"; {r.note}" if r.note else "")
        line = (f"| {r.part} | {r.model} | {r.side or '-'} | {SHORT.get(r.dtype, r.dtype) or '-'} | {batch_label(r)} | "
                f"{rate(r.floor_images_per_s)} | {rate(aedr_or_own)} | {fmt(r.ratio, '.2f')} | {fmt(r.peak_mib, '.0f')} | ")
        if len(line) + len(note) + 2 > WIDTH:
            notes.append(note)
            note = f"[{len(notes)}]"
        lines.append(f"{line}{note} |")
    return "\n".join([*lines, *(["", *(f"[{i}] {n}" for i, n in enumerate(notes, 1))] if notes else [])])


TARGETS = {("sd-vae", "bfloat16"): 50.0, ("flux-vae", "bfloat16"): 6.0}
"""Images per second that AEDR should reach at its best batch (issue #26), by (part, dtype)."""
FLOOR_TARGET, LT_TARGET = 0.9, 100.0


def summary(rows: list[Row]) -> list[str]:
    """Per model and dtype: AEDR's best batch, its rate and ratio to the floor there; then the LatentTracer speed-up,
    each against its target."""
    best: dict[tuple[str, str, str], Row] = {}
    for r in rows:
        if r.status == "ok" and r.ratio is not None:
            key = (r.part, r.model, r.dtype)
            if key not in best or r.aedr_images_per_s > best[key].aedr_images_per_s:
                best[key] = r
    lines = []
    for (part, model, dtype), r in best.items():
        target = TARGETS.get((part, dtype))
        wanted = f" (target {target:g})" if target else ""
        lines.append(f"{model} {SHORT[dtype]}: best AEDR {r.aedr_images_per_s:.1f} img/s{wanted} at batch {batch_label(r)}, "
                     f"{r.ratio:.2f}x the floor (target {FLOOR_TARGET:g}x)")
    for r in rows:
        if "batched_speedup" in r.extra:
            lines.append(f"LatentTracer batched: {r.extra['batched_speedup']:.0f}x the process-per-image structure "
                         f"(target {LT_TARGET:g}x)")
    return lines


def device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{dev.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs)"


def device_facts(device: str) -> dict:
    """What else a reader of the timings needs: the card's memory, and the settings that change fp32 speed."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return {}
    return {"device_memory_mib": torch.cuda.get_device_properties(dev).total_memory / 2**20,
            "cudnn_version": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}


def metadata(settings: Settings, args: argparse.Namespace) -> dict:
    return {
        "device": settings.device, "device_name": device_name(settings.device), **device_facts(settings.device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda, "aedr": getattr(aedr, "__version__", None), "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "smoke": settings.smoke, "torch_threads": settings.threads, "load_average_start": list(os.getloadavg()),
        "argv": sys.argv[1:], "parts": list(args.only),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "tmp"},
    }


# -- the command ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu; --smoke: cpu)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, seconds: checks that the script runs")
    ap.add_argument("--only", nargs="+", choices=PARTS, default=None, help="parts to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("gpu-bench.json"), help="the JSON file (default gpu-bench.json)")
    ap.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES), help="dtypes of sd-vae and flux-vae")
    ap.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="fixed batch sizes (default 1 8 32; smoke 1 2)")
    ap.add_argument("--auto-dtypes", nargs="*", choices=DTYPES, default=["bfloat16"],
                    help="dtypes that also get a --batch-size auto row, each one search (default bfloat16)")
    ap.add_argument("--images", type=int, default=None, help="images timed per configuration, at least a batch (default 8; smoke 4)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no row after this many seconds (default 420)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's; smoke 1)")
    args = ap.parse_args(argv)
    args.skip = {} if args.only or not args.smoke else dict(SMOKE_SKIPS)  # smoke leaves these out unless asked
    args.only = args.only or list(PARTS)
    return args


def settings_from(args: argparse.Namespace, tmp: Path) -> Settings:
    smoke = args.smoke
    device = args.device or ("cpu" if smoke or not torch.cuda.is_available() else "cuda")
    return Settings(
        device=device, smoke=smoke, dtypes=tuple(args.dtypes),
        batch_sizes=tuple(args.batch_sizes or ((1, 2) if smoke else (1, 8, 32))), auto_dtypes=tuple(args.auto_dtypes),
        images=args.images or (4 if smoke else 8),
        lt_iterations=2 if smoke else 100, lt_images=4 if smoke else 16, lt_processes=1 if smoke else 3,
        ray_images=4 if smoke else 16, budget_s=args.budget_s,
        threads=args.threads or (1 if smoke else torch.get_num_threads()), tmp=tmp,
    )


def run_part(record: Record, settings: Settings, part: str) -> None:
    archs = SMOKE_ARCHS if settings.smoke else FULL_ARCHS
    if part in archs:
        run_arch(record, settings, archs[part])
    elif part == "latenttracer":
        run_latenttracer(record, settings)
    elif part == "ray":
        run_ray(record, settings)
    elif part == "zoo":
        run_reference(record, settings, "zoo", "zoo-kl-a", 32)
    elif part == "taef2":
        run_reference(record, settings, "taef2", "taef2", 32 if settings.smoke else 1024)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="aedr-gpu-bench-"))
    os.environ["AEDR_CACHE_DIR"] = str(tmp / "cache")  # --batch-size auto searches afresh, the user's cache untouched
    settings = settings_from(args, tmp)
    torch.set_num_threads(settings.threads)
    record = Record(args.out, metadata(settings, args), settings.budget_s)
    record.say(f"device {record.meta['device_name']}, torch {torch.__version__}, parts: {' '.join(args.only)}")
    try:
        for part in args.only:
            reason = args.skip.get(part) or (f"over the {settings.budget_s:.0f} s budget" if record.over_budget() else "")
            if reason:
                record.add(Row(part, "-", status=f"skipped: {reason}"))
                continue
            try:
                run_part(record, settings, part)
            except Exception as exc:  # a part that cannot run at all is a row; the others still run
                record.add(Row(part, "-", status=failure_status(exc)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record.meta["load_average_end"] = list(os.getloadavg())
    record.meta["summary"] = summary(record.rows)
    record.save()
    print(f"device: {record.meta['device_name']}; torch {torch.__version__}; {record.meta['date']}; "
          f"{record.elapsed():.0f} s; JSON: {args.out}")
    print(table(record.rows))
    print("\n".join(["", *record.meta["summary"]]))


if __name__ == "__main__":
    main()
