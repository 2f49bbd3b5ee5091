"""Training the zoo from scratch: autoencoder, then a latent denoiser on its latents.

Everything is seeded (weights from ``spec.seed``, data order from ``spec.data_seed``), so a rerun on
the same machine with the same thread count reproduces the weights. Training runs on the CPU in
minutes per model; it never runs in tests.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import data
from .latents import latent_targets
from .models import ZOO, AETraining, UNetTraining, ZooSpec, get_spec
from .store import WEIGHTS_DIR, model_dir, write_checksums

Log = Callable[[str], None]
Advance = Callable[[int], None]


def _print(msg: str) -> None:
    print(msg, flush=True)


def _ignore(n: int) -> None:
    pass


@dataclass
class Watcher:
    """Whoever watches a training run: ``stage`` gets a line as each stage starts and ends,
    ``detail`` one every 100 steps (loss, PSNR), ``advance`` the count of steps done."""

    stage: Log = _print
    detail: Log = _print
    advance: Advance = _ignore


def steps_to_train(spec: ZooSpec, reuse_autoencoder: bool) -> int:
    """The optimisation steps ``train_model`` takes for ``spec`` (already capped)."""
    if spec.relation == "decoder-finetune":
        return spec.decoder_tuning.steps if spec.decoder_tuning else 0
    return (0 if reuse_autoencoder or spec.relation else spec.ae_training.steps) + spec.unet_training.steps


def lr_at(step: int, total: int, warmup: int, base: float, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay from ``base`` to ``base * min_ratio``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


class BatchOrder:
    """Seeded epochs of shuffled indices: the data order of one training run."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > len(self._perm):
            self._perm = torch.randperm(self.n, generator=self.gen)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx


def build_autoencoder(spec: ZooSpec) -> torch.nn.Module:
    """A freshly initialised diffusers autoencoder (weights drawn from ``spec.seed``)."""
    import diffusers

    torch.manual_seed(spec.seed)
    return getattr(diffusers, spec.ae.cls)(**spec.ae.config)


def build_unet(spec: ZooSpec) -> torch.nn.Module:
    from diffusers import UNet2DModel

    torch.manual_seed(spec.seed + 10_000)
    return UNet2DModel(**spec.unet)


def ae_loss(spec: ZooSpec, ae: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Training loss, reconstruction, and (VQ) the codebook indices used."""
    cfg = spec.ae_training
    if spec.ae.is_kl:
        dist = ae.encode(x).latent_dist
        rec = ae.decode(dist.sample()).sample
        kl = dist.kl().mean() / x[0].numel()  # SD's per-image KL sum, on the per-pixel scale of the MSE
        return F.mse_loss(rec, x) + cfg.kl_weight * kl, rec, None
    if spec.ae.cls == "VQModel":
        h = ae.encode(x).latents
        quant, commit, (_, _, indices) = ae.quantize(h)
        dec = ae.decoder(ae.post_quant_conv(quant), quant if ae.config.norm_type == "spatial" else None)
        return F.mse_loss(dec, x) + commit, dec, indices.reshape(-1)
    rec = ae.decode(ae.encode(x).latents).sample
    return F.mse_loss(rec, x), rec, None


def _psnr_batch(rec: torch.Tensor, x: torch.Tensor) -> float:
    mse = ((rec.clamp(-1, 1) - x) ** 2).mean(dim=(1, 2, 3)) / 4.0
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


@torch.no_grad()
def _reseed_codes(ae: torch.nn.Module, x: torch.Tensor, dead: torch.Tensor, gen: torch.Generator) -> None:
    """Replace codebook entries in ``dead`` by encoder outputs of the current batch (plus a little noise)."""
    h = ae.encode(x).latents.permute(0, 2, 3, 1).reshape(-1, ae.quantize.vq_embed_dim)
    pick = torch.randint(0, h.shape[0], (int(dead.numel()),), generator=gen)
    noise = torch.randn(int(dead.numel()), h.shape[1], generator=gen) * 0.01
    ae.quantize.embedding.weight.data[dead] = h[pick] + noise


def train_autoencoder(spec: ZooSpec, x_train: torch.Tensor, cfg: AETraining | None = None, watcher: Watcher | None = None) -> torch.nn.Module:
    """Train the autoencoder of ``spec`` on ``x_train`` (float NCHW in [-1, 1])."""
    cfg = cfg or spec.ae_training
    watcher = watcher or Watcher()
    ae = build_autoencoder(spec).train()
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = BatchOrder(len(x_train), cfg.batch_size, spec.data_seed)
    torch.manual_seed(spec.seed + 1)  # posterior-sampling noise
    code_gen = torch.Generator().manual_seed(spec.seed + 2)
    is_vq = spec.ae.cls == "VQModel"
    if is_vq:
        n_codes = ae.quantize.n_e
        usage = torch.zeros(n_codes, dtype=torch.long)
        _reseed_codes(ae, x_train[order.next()], torch.arange(n_codes), code_gen)
    start, running = time.time(), []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr_ratio)
        x = x_train[order.next()]
        loss, rec, indices = ae_loss(spec, ae, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(_psnr_batch(rec.detach(), x))
        if is_vq:
            usage += torch.bincount(indices, minlength=n_codes)
            if (step + 1) % cfg.dead_code_every == 0 and step + 1 < cfg.steps * 0.8:
                dead = torch.nonzero(usage == 0).reshape(-1)
                if len(dead):
                    _reseed_codes(ae, x, dead, code_gen)
                usage.zero_()
        watcher.advance(1)
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            extra = f" dead codes {int((usage == 0).sum()) if is_vq and step + 1 == cfg.steps else '-'}" if is_vq else ""
            watcher.detail(f"  [{spec.name} ae] step {step + 1}/{cfg.steps} loss {loss.item():.5f} "
                f"train PSNR {np.mean(running[-100:]):.2f} dB ({time.time() - start:.0f} s){extra}")
    return ae.eval().requires_grad_(False)


def latent_normalisation(spec: ZooSpec, mean: torch.Tensor, std: torch.Tensor | None) -> tuple[list[float], list[float]]:
    """Per-channel ``(shift, scale)`` that bring the denoiser's targets to zero mean and unit variance
    in every latent channel: ``normalised = (z - shift) * scale``. KL statistics are those of one
    seeded posterior sample per crop (what the denoiser sees), VQ and tiny ones of the latents."""
    sample = mean if std is None else mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(spec.seed))
    sample = sample.double()
    shift = sample.mean(dim=(0, 2, 3))
    scale = 1.0 / sample.std(dim=(0, 2, 3))
    return [float(v) for v in shift], [float(v) for v in scale]


def denoiser_target(sched, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the denoiser regresses: the noise (``epsilon``) or the velocity (``v_prediction``)."""
    kind = sched.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return sched.get_velocity(z, noise, t)
    raise ValueError(f"unsupported prediction_type {kind!r}")


def train_unet(
    spec: ZooSpec, mean: torch.Tensor, std: torch.Tensor | None, shift: list[float], scale: list[float],
    cfg: UNetTraining | None = None, watcher: Watcher | None = None,
) -> torch.nn.Module:
    """Train the latent denoiser on normalised latents ``(z - shift) * scale`` (per channel), with the
    scheduler's prediction type; KL latents are drawn afresh from the posterior at every step.
    Returns the EMA weights."""
    from diffusers import DDPMScheduler

    from .latents import channel_tensor

    cfg = cfg or spec.unet_training
    watcher = watcher or Watcher()
    sched = DDPMScheduler(**{k: v for k, v in spec.scheduler.items() if k != "set_alpha_to_one"})
    channels = mean.shape[1]
    shift_t, scale_t = channel_tensor(shift, channels), channel_tensor(scale, channels)
    unet = build_unet(spec).train()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    order = BatchOrder(len(mean), cfg.batch_size, spec.data_seed + 1)
    torch.manual_seed(spec.seed + 3)
    start, running = time.time(), []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr_ratio)
        idx = order.next()
        z = mean[idx] if std is None else mean[idx] + std[idx] * torch.randn_like(mean[idx])
        z = (z - shift_t) * scale_t
        noise = torch.randn_like(z)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(z),))
        pred = unet(sched.add_noise(z, noise, t), t).sample
        loss = F.mse_loss(pred, denoiser_target(sched, z, noise, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.lerp_(p, 1 - decay)
        running.append(loss.item())
        watcher.advance(1)
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            watcher.detail(f"  [{spec.name} unet] step {step + 1}/{cfg.steps} loss {np.mean(running[-100:]):.4f} ({time.time() - start:.0f} s)")
    return ema


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def round_to_float16(module: torch.nn.Module) -> torch.nn.Module:
    """Round weights to float16 values (kept as float32): the weights ship as float16, so everything
    derived from them during training (latent statistics, the denoiser's targets) uses the shipped values."""
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            t.copy_(t.half().float())
    return module


def save_float16(module: torch.nn.Module, folder: Path) -> None:
    """``save_pretrained`` with float16 safetensors (diffusers loads them back as float32)."""
    copy.deepcopy(module).half().save_pretrained(folder, safe_serialization=True)
    drop_derived_config_keys(folder / "config.json")


# Config entries a diffusers class records about itself but does not accept back: AutoencoderTiny
# stores ``block_out_channels`` (a copy of ``decoder_block_out_channels``) and warns on every load.
DERIVED_CONFIG_KEYS = {"AutoencoderTiny": ("block_out_channels",)}


def drop_derived_config_keys(config_file: Path) -> None:
    config = json.loads(config_file.read_text())
    keys = [k for k in DERIVED_CONFIG_KEYS.get(config.get("_class_name", ""), ()) if k in config]
    if keys:
        for k in keys:
            del config[k]
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


@dataclass
class TrainResult:
    name: str
    ae_seconds: float
    unet_seconds: float
    cpu_seconds: float
    psnr: float
    autoencoder_reused: bool = False
    gates_passed: bool | None = None


def capped(spec: ZooSpec, max_steps: int | None) -> ZooSpec:
    """``spec`` with both training runs cut to at most ``max_steps`` (smoke runs only)."""
    if not max_steps:
        return spec
    ae = dataclasses.replace(spec.ae_training, steps=min(max_steps, spec.ae_training.steps), warmup=min(spec.ae_training.warmup, max_steps))
    un = dataclasses.replace(spec.unet_training, steps=min(max_steps, spec.unet_training.steps), warmup=min(spec.unet_training.warmup, max_steps))
    dec = spec.decoder_tuning and dataclasses.replace(spec.decoder_tuning, steps=min(max_steps, spec.decoder_tuning.steps),
                                                      warmup=min(spec.decoder_tuning.warmup, max_steps))
    return dataclasses.replace(spec, ae_training=ae, unet_training=un, decoder_tuning=dec)


@dataclass
class ReusedAutoencoder:
    """An autoencoder taken from an earlier run instead of being retrained: its module, its files
    (copied back byte for byte) and the training record of the run that made it."""

    module: torch.nn.Module
    files: dict[str, bytes]
    record: dict


def load_trained_autoencoder(spec: ZooSpec, weights: Path) -> ReusedAutoencoder:
    """The autoencoder of ``spec`` as an earlier ``aedr zoo train`` saved it in ``weights``, checked
    against that folder's checksums and against ``spec`` (same class, config and recipe)."""
    import diffusers

    from .store import verify_model

    folder = model_dir(spec.name, weights)
    verify_model(spec.name, weights)
    meta = json.loads((folder / "zoo.json").read_text())
    recipe = meta["training"]
    if (recipe["seed"], recipe["data_seed"], recipe["autoencoder"]) != (spec.seed, spec.data_seed, asdict(spec.ae_training)):
        raise ValueError(f"{folder}: its autoencoder was trained with another recipe than {spec.name}'s; retrain it")
    module = getattr(diffusers, spec.ae.cls).from_pretrained(str(folder / "autoencoder"))
    config = {k: v for k, v in module.config.items() if k in spec.ae.config}
    if config != {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.ae.config.items()}:
        raise ValueError(f"{folder}: its autoencoder's config differs from {spec.name}'s; retrain it")
    files = {p.name: p.read_bytes() for p in sorted((folder / "autoencoder").iterdir()) if p.is_file()}
    record = {k: recipe[k] for k in ("autoencoder_seconds", "autoencoder_cpu_seconds") if k in recipe}
    record.setdefault("autoencoder_cpu_seconds", None)
    return ReusedAutoencoder(module.float().eval().requires_grad_(False), files, record)


@dataclass
class AutoencoderStage:
    """The autoencoder a model is made with: ``files`` to copy byte for byte (a reused or a parent's
    autoencoder) or None (``module`` is saved); ``how`` it came about, for the log and ``zoo.json``."""

    module: torch.nn.Module
    files: dict[str, bytes] | None
    seconds: float
    cpu_seconds: float | None
    how: str


@dataclass
class DenoiserStage:
    """The denoiser: ``module`` to save, or a parent's ``files`` to copy; the latent normalisation."""

    module: torch.nn.Module | None
    files: dict[str, bytes] | None
    shift: list[float]
    scale: list[float]
    seconds: float
    params: int


def parent_folder(spec: ZooSpec, out: Path) -> Path:
    """Where a sibling's parent is: this run's weights folder when it holds the parent, else the
    weights in use ($AEDR_ZOO_WEIGHTS or the shipped ones)."""
    from .store import weights_in_use

    return out if (model_dir(spec.parent, out) / "zoo.json").is_file() else weights_in_use()


def finetune_decoder(spec: ZooSpec, ae: torch.nn.Module, x_train: torch.Tensor, watcher: Watcher) -> torch.nn.Module:
    """``ae`` with its decoder fine-tuned as ``spec.decoder_tuning`` says; the encoder and the
    quantisation convolution are not trained (their weights stay bit for bit the parent's)."""
    cfg = spec.decoder_tuning
    if cfg is None:
        raise ValueError(f"{spec.name}: a decoder fine-tune needs decoder_tuning")
    ae = copy.deepcopy(ae).train()
    for name, p in ae.named_parameters():
        p.requires_grad_(name.startswith(("decoder.", "post_quant_conv.")))
    opt = torch.optim.AdamW([p for p in ae.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.0)
    order = BatchOrder(len(x_train), cfg.batch_size, spec.data_seed)
    torch.manual_seed(spec.seed + 1)  # posterior samples, as the decoder saw them in training
    loss_of = F.l1_loss if cfg.loss == "l1" else F.mse_loss
    start, running = time.time(), []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr_ratio)
        x = x_train[order.next()]
        with torch.no_grad():
            z = ae.encode(x).latent_dist.sample()
        rec = ae.decode(z).sample
        loss = loss_of(rec, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(_psnr_batch(rec.detach(), x))
        watcher.advance(1)
        if (step + 1) % 100 == 0 or step + 1 == cfg.steps:
            watcher.detail(f"  [{spec.name} decoder] step {step + 1}/{cfg.steps} {cfg.loss} {loss.item():.5f} "
                           f"train PSNR {np.mean(running[-100:]):.2f} dB ({time.time() - start:.0f} s)")
    return ae.eval().requires_grad_(False)


def autoencoder_stage(spec: ZooSpec, out: Path, x_train: torch.Tensor, watcher: Watcher, reuse: Path | None) -> AutoencoderStage:
    """Train the autoencoder, or take it: from ``reuse`` (an earlier run of the same recipe) or, for
    a sibling, from its parent (as it is, or with its decoder fine-tuned)."""
    log, t0, cpu0 = watcher.stage, time.time(), time.process_time()
    if spec.relation:
        where = parent_folder(spec, out)  # the parent's recipe as this run caps it (a sibling's is its parent's)
        parent = load_trained_autoencoder(dataclasses.replace(get_spec(spec.parent), ae_training=spec.ae_training), where)
        if spec.relation == "shared-autoencoder":
            log(f"[{spec.name}] the autoencoder of {spec.parent} in {model_dir(spec.parent, where)}, byte for byte")
            return AutoencoderStage(parent.module, parent.files, 0.0, 0.0, f"shared with {spec.parent}")
        log(f"[{spec.name}] fine-tuning the decoder of {spec.parent} ({spec.decoder_tuning.steps} steps, {spec.decoder_tuning.loss} loss)")
        module = round_to_float16(finetune_decoder(spec, parent.module, x_train, watcher))
        return AutoencoderStage(module, None, time.time() - t0, time.process_time() - cpu0, f"decoder of {spec.parent} fine-tuned")
    if reuse is not None:
        reused = load_trained_autoencoder(spec, Path(reuse))
        seconds = float(reused.record["autoencoder_seconds"])
        log(f"[{spec.name}] reusing the autoencoder in {model_dir(spec.name, Path(reuse))} (trained in {seconds:.0f} s by the run that made it)")
        return AutoencoderStage(reused.module, reused.files, seconds, reused.record["autoencoder_cpu_seconds"], "reused")
    log(f"[{spec.name}] training the autoencoder on {len(x_train)} crops ({spec.ae_training.steps} steps)")
    module = round_to_float16(train_autoencoder(spec, x_train, watcher=watcher))
    return AutoencoderStage(module, None, time.time() - t0, time.process_time() - cpu0, "trained")


def denoiser_stage(spec: ZooSpec, out: Path, ae: torch.nn.Module, x_train: torch.Tensor, watcher: Watcher) -> DenoiserStage:
    """Train the denoiser on the autoencoder's normalised latents, or take the parent's (a decoder
    fine-tune samples with its parent's denoiser). A sibling on the parent's autoencoder keeps the
    parent's latent normalisation, so that the two autoencoders compute alike."""
    if spec.relation:
        parent = json.loads((model_dir(spec.parent, parent_folder(spec, out)) / "zoo.json").read_text())
        shift, scale = list(parent["latent_shift"]), list(parent["latent_scale"])
        if spec.relation == "decoder-finetune":
            unet_dir = model_dir(spec.parent, parent_folder(spec, out)) / "unet"
            watcher.stage(f"[{spec.name}] sampling with the denoiser of {spec.parent}")
            files = {p.name: p.read_bytes() for p in sorted(unet_dir.iterdir()) if p.is_file()}
            return DenoiserStage(None, files, shift, scale, 0.0, int(parent["params"]["unet"]))
    mean, std = latent_targets(spec, ae, x_train)
    if not spec.relation:
        shift, scale = latent_normalisation(spec, mean, std)
    watcher.stage(f"[{spec.name}] latents {tuple(mean.shape[1:])}: per-channel shift {min(shift):.3f}..{max(shift):.3f}, "
                  f"scale {min(scale):.3f}..{max(scale):.3f}; training the denoiser ({spec.unet_training.steps} steps)")
    t0 = time.time()
    unet = round_to_float16(train_unet(spec, mean, std, shift, scale, watcher=watcher))
    return DenoiserStage(unet, None, shift, scale, time.time() - t0, param_count(unet))


def write_part(folder: Path, module: torch.nn.Module | None, files: dict[str, bytes] | None) -> None:
    """A model's autoencoder or denoiser folder: ``files`` byte for byte, or ``module`` saved."""
    if files is None:
        save_float16(module, folder)
        return
    folder.mkdir(parents=True)
    for fname, blob in files.items():
        (folder / fname).write_bytes(blob)


def model_record(spec: ZooSpec, ae: AutoencoderStage, den: DenoiserStage, cpu_seconds: float, crops: int) -> dict:
    """The model's ``zoo.json`` (before its PSNR and gates are added)."""
    return {
        "name": spec.name,
        "family": spec.family,
        "autoencoder_class": spec.ae.cls,
        "resolution": data.RESOLUTION,
        "downsample": spec.ae.downsample,
        "latent_shape": list(spec.ae.latent_shape()),
        "latent_shift": den.shift,
        "latent_scale": den.scale,
        "quantize_on_decode": spec.quantize_on_decode,
        "sampling_steps": spec.sampling_steps,
        "relation": {"kind": spec.relation, "parent": spec.parent} if spec.relation else None,
        "params": {"autoencoder": param_count(ae.module), "unet": den.params},
        "training": {
            "seed": spec.seed,
            "data_seed": spec.data_seed,
            "autoencoder": asdict(spec.ae_training),
            "unet": asdict(spec.unet_training),
            "decoder_tuning": None if spec.decoder_tuning is None else asdict(spec.decoder_tuning),
            "autoencoder_seconds": round(ae.seconds, 1),
            "autoencoder_cpu_seconds": None if ae.cpu_seconds is None else round(ae.cpu_seconds, 1),
            "autoencoder_reused": ae.how == "reused",
            "autoencoder_from": ae.how,
            "unet_seconds": round(den.seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "threads": torch.get_num_threads(),
            "environment": environment(),
            "train_crops": crops,
        },
    }


def train_model(
    spec: ZooSpec, out: Path, *, watcher: Watcher | None = None, threads: int | None = None, max_steps: int | None = None,
    reuse_autoencoder: Path | None = None,
) -> TrainResult:
    """Train one zoo model and save it (diffusers folders + ``zoo.json``) under ``out/<name>``, then
    measure its PSNR and check its quality gates.

    With ``reuse_autoencoder`` (a weights folder), the autoencoder saved there by an earlier run of the
    same recipe is used as it is and only the denoiser is trained; since the autoencoder stage is
    deterministic, this gives the weights a full run gives, in a third of the time. A sibling is made
    from its parent's weights (:class:`~aedr_zoo.models.ZooSpec`)."""
    from diffusers import DDIMScheduler

    spec, watcher = capped(spec, max_steps), watcher or Watcher()
    if threads:
        torch.set_num_threads(threads)
    cpu0 = time.process_time()
    x_train = data.split_data("train").tensor()
    ae = autoencoder_stage(spec, out, x_train, watcher, None if spec.relation else reuse_autoencoder)
    den = denoiser_stage(spec, out, ae.module, x_train, watcher)
    folder = model_dir(spec.name, out)
    if folder.exists():
        shutil.rmtree(folder)
    write_part(folder / "autoencoder", ae.module, ae.files)
    write_part(folder / "unet", den.module, den.files)
    DDIMScheduler(**spec.scheduler).save_pretrained(folder / "scheduler")
    meta = model_record(spec, ae, den, time.process_time() - cpu0, len(x_train))
    (folder / "zoo.json").write_text(json.dumps(meta, indent=2) + "\n")
    return check_model(spec, out, meta, ae, den, watcher)


def check_model(spec: ZooSpec, out: Path, meta: dict, ae: AutoencoderStage, den: DenoiserStage, watcher: Watcher) -> TrainResult:
    """Measure a saved model's PSNR and quality gates into its ``zoo.json``."""
    from .evaluate import reconstruction_psnr
    from .quality import model_gates, passed
    from .zoo import ZooModel

    folder = model_dir(spec.name, out)
    psnr = reconstruction_psnr(ZooModel(spec, weights_dir=out, verify=False).autoencoder(), data.split_data("eval").images)
    meta["psnr_eval"] = round(psnr, 2)
    meta["psnr_protocol"] = "mean PSNR over the zoo-real-eval crops, 8-bit, posterior mean / un-sampled latent"
    watcher.stage(f"[{spec.name}] checking the quality gates")
    t0 = time.time()
    meta["gates"] = g = model_gates(ZooModel(spec, weights_dir=out, verify=False))
    (folder / "zoo.json").write_text(json.dumps(meta, indent=2) + "\n")
    watcher.stage(
        f"[{spec.name}] done: eval PSNR {psnr:.2f} dB, autoencoder {ae.seconds:.0f} s ({ae.how}), denoiser {den.seconds:.0f} s; "
        f"gates ({time.time() - t0:.0f} s) {'passed' if passed(g) else 'FAILED'}: latent |mean offset| "
        f"{g['latents']['max_abs_mean_offset']:.3f}, std ratio error {g['latents']['max_std_ratio_error']:.3f}, "
        f"saturation {g['saturation']['ratio']:.2f}x, MMD2 {g['distance']['mmd2']:.4f} (threshold {g['distance']['threshold']:.4f})")
    return TrainResult(spec.name, ae.seconds, den.seconds, meta["training"]["cpu_seconds"], psnr, ae.how == "reused", passed(g))


ENVIRONMENT_PACKAGES = ("torch", "diffusers", "numpy", "pillow", "scikit-image", "scikit-learn", "safetensors")


def environment() -> dict[str, str]:
    """The Python and package versions a run used: the weights are reproducible bit for bit with
    the same versions (floating-point kernels and image resampling change between releases)."""
    from aedr.card import package_versions

    return package_versions(ENVIRONMENT_PACKAGES)


SECONDS_PER_STEP_GUESS = 0.3  # one single-threaded step on a 2-core CPU, when no run was recorded


def recorded_seconds(spec: ZooSpec, folders: list[Path], denoiser_only: bool = False) -> float:
    """How long ``spec`` took to train (only its denoiser with ``denoiser_only``) in the first of
    ``folders`` that holds a record of it (its ``zoo.json``), else a guess from its step counts."""
    for folder in folders:
        meta = model_dir(spec.name, folder) / "zoo.json"
        if meta.exists():
            t = json.loads(meta.read_text())["training"]
            return float(t["unet_seconds"] + (0 if denoiser_only else t["autoencoder_seconds"]))
    return SECONDS_PER_STEP_GUESS * steps_to_train(spec, denoiser_only)


def training_order(specs: list[ZooSpec], folders: list[Path], denoiser_only: bool = False) -> list[ZooSpec]:
    """Longest training first, by the times recorded in ``folders`` (the shipped weights record
    theirs): with two jobs, the slowest model then never starts last and trains alone."""
    return sorted(specs, key=lambda s: -recorded_seconds(s, folders, denoiser_only))


class _Relayed:
    """A worker's :class:`Watcher`: every event put on the queue the parent reads (steps at most
    every half second, so the queue never slows training down)."""

    def __init__(self, events) -> None:
        self.events, self.pending, self.sent_at = events, 0, time.monotonic()

    def watcher(self) -> Watcher:
        return Watcher(stage=lambda m: self.events.put(("stage", m)), detail=lambda m: self.events.put(("detail", m)), advance=self.advance)

    def advance(self, n: int) -> None:
        self.pending += n
        if time.monotonic() - self.sent_at >= 0.5:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.events.put(("advance", self.pending))
        self.pending, self.sent_at = 0, time.monotonic()


def _train_in_worker(name: str, out: str, threads: int, max_steps: int | None, reuse: str | None, events) -> TrainResult:
    relayed = _Relayed(events)
    try:
        return train_model(get_spec(name), Path(out), watcher=relayed.watcher(), threads=threads, max_steps=max_steps,
                           reuse_autoencoder=None if reuse is None else Path(reuse))
    finally:
        relayed.flush()


def _pool_runner(stack: ExitStack, jobs: int, out: Path, threads: int, max_steps: int | None, reuse: Path | None,
                 watcher: Watcher) -> Callable[[list[ZooSpec]], list[TrainResult]]:
    """How a wave of models is trained: in this process (``jobs`` <= 1), or ``jobs`` at a time in
    worker processes whose events reach ``watcher`` (the pool and its queue live as long as ``stack``)."""
    if jobs <= 1:
        return lambda wave: [train_model(spec, out, watcher=watcher, threads=threads, max_steps=max_steps, reuse_autoencoder=reuse)
                             for spec in wave]
    ctx = multiprocessing.get_context("spawn")
    events = stack.enter_context(ctx.Manager()).Queue()
    pool = stack.enter_context(ProcessPoolExecutor(max_workers=jobs, mp_context=ctx))

    def run(wave: list[ZooSpec]) -> list[TrainResult]:
        futures = [pool.submit(_train_in_worker, spec.name, str(out), threads, max_steps, None if reuse is None else str(reuse), events)
                   for spec in wave]
        _relay(events, futures, watcher)
        return [f.result() for f in futures]

    return run


def _relay(events, futures: list, watcher: Watcher) -> None:
    """Pass the workers' events to ``watcher`` until every future is done and the queue is empty."""
    import queue

    handlers = {"stage": watcher.stage, "detail": watcher.detail, "advance": watcher.advance}
    while True:
        done = all(f.done() for f in futures)
        try:
            kind, value = events.get(timeout=0.2)
        except queue.Empty:
            if done:
                return
            continue
        handlers[kind](value)


def record_sample_distances(weights: Path, advance: Callable[[int], None] | None = None) -> dict[str, dict[str, float]]:
    """Write each zoo model's gate-3 distances to every other model trained in ``weights`` into its
    folder's ``sample_distances.json``, then the checksums (:func:`aedr_zoo.quality.sample_distances`)."""
    from .quality import sample_distances
    from .store import DISTANCES_FILE
    from .zoo import ZooModel

    models = [ZooModel(s, weights_dir=weights, verify=False) for s in ZOO if (model_dir(s.name, weights) / "zoo.json").is_file()]
    distances = sample_distances(models, advance)
    for m in models:
        record = {"mmd2": distances[m.name], "protocol": "gate 3's MMD² (aedr_zoo/quality.py) between the two models' 256 gate samples"}
        (m.folder / DISTANCES_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_checksums(weights)
    return distances


def record_fidelity_gates(weights: Path) -> dict[str, dict]:
    """Write gate 4 (:func:`aedr_zoo.quality.fidelity_gates`) into the ``zoo.json`` of every
    high-fidelity model trained in ``weights``, against the 4-channel models trained there."""
    from .quality import fidelity_gates

    files = {s.name: model_dir(s.name, weights) / "zoo.json" for s in ZOO}
    metas = {name: json.loads(f.read_text()) for name, f in files.items() if f.is_file()}
    found = fidelity_gates(metas)
    for name, gate in found.items():
        metas[name].setdefault("gates", {})["fidelity"] = gate
        files[name].write_text(json.dumps(metas[name], indent=2) + "\n")
    return found


def train_zoo(
    out: Path = WEIGHTS_DIR,
    only: list[str] | None = None,
    *,
    jobs: int = 2,
    threads: int = 1,
    max_steps: int | None = None,
    reuse_autoencoders: Path | None = None,
    watcher: Watcher | None = None,
) -> list[TrainResult]:
    """Retrain every zoo model (or those in ``only``) from scratch, then rewrite the checksum file.

    ``jobs`` models train at once, each in its own process with ``threads`` torch threads (on a
    2-core CPU, two single-threaded jobs use both cores without threads waiting on each other).
    A model's weights depend on its seeds and its thread count, not on ``jobs``. The longest
    trainings start first (see :func:`training_order`); ``max_steps`` caps every run, for smoke tests.
    ``reuse_autoencoders`` (a weights folder, e.g. the shipped one) trains the denoisers only, on the
    autoencoders saved there (see :func:`train_model`). ``watcher`` hears every model's stages, details
    and steps (:func:`steps_to_train` tells how many), from the worker processes too."""
    watcher = watcher or Watcher()
    reuse = None if reuse_autoencoders is None else Path(reuse_autoencoders)
    specs = training_order([get_spec(n) for n in only] if only else list(ZOO), [Path(out), WEIGHTS_DIR], denoiser_only=reuse is not None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if reuse is not None and max_steps:
        raise ValueError("--max-steps caps the autoencoder too; it cannot reuse a full run's autoencoders")
    start = time.time()
    names = {s.name for s in specs}
    waves = [[s for s in specs if s.parent not in names], [s for s in specs if s.parent in names]]  # parents before their siblings
    results = []
    with ExitStack() as stack:
        run = _pool_runner(stack, jobs, out, threads, max_steps, reuse, watcher)
        for wave in waves:
            results += run(wave)
            write_checksums(out)  # a sibling checks its parent's files against them
    total = time.time() - start
    fidelity = record_fidelity_gates(out)
    results = [dataclasses.replace(r, gates_passed=r.gates_passed and fidelity[r.name]["passed"]) if r.name in fidelity else r
               for r in results]
    for name, gate in fidelity.items():
        watcher.stage(f"[{name}] gate 4 (fidelity) {'passed' if gate['passed'] else 'FAILED'}: PSNR {gate['psnr']:.2f} dB, "
                      f"at least {gate['threshold']:.2f} dB ({gate['best_4_channel']} + {gate['margin_db']:g} dB)")
    summary = {
        "models": [asdict(r) for r in results],
        "total_seconds": round(total, 1),
        "total_cpu_seconds": round(sum(r.cpu_seconds for r in results), 1),
        "jobs": jobs,
        "threads_per_job": threads,
        "max_steps": max_steps,
        "autoencoders_reused_from": None if reuse is None else str(reuse),
        "torch": torch.__version__,
        "environment": environment(),
    }
    name = "training.json" if not only else f"training-{'-'.join(only)}.json"
    (out / name).write_text(json.dumps(summary, indent=2) + "\n")
    watcher.stage("measuring the distances between every two models' samples (the bench's hard pairs)")
    record_sample_distances(out)
    watcher.stage(f"zoo trained in {total / 60:.1f} min")
    return results
