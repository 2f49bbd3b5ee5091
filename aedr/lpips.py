"""LPIPS (Zhang et al., CVPR 2018), VGG16 backbone with the learned v0.1 linear heads.

The network is built here (no torchvision needed) and filled from two weight files that aedr never
downloads:

- torchvision's ImageNet VGG16 file ``vgg16-397923af.pth``, looked up in ``$AEDR_VGG16_WEIGHTS``, then in
  torch's hub cache ``<torch.hub.get_dir()>/checkpoints/`` (where torchvision itself saves it; the
  folder moves with ``$TORCH_HOME``);
- the LPIPS v0.1 linear heads ``vgg.pth``, looked up in ``$AEDR_LPIPS_HEADS``, then as
  ``<torch.hub.get_dir()>/checkpoints/lpips_v0.1_vgg.pth``, then inside an installed ``lpips`` package
  (``lpips/weights/v0.1/vgg.pth``; the file is read, the package is never imported, so
  ``pip install --no-deps lpips`` is enough).

Both are read with ``torch.load(..., weights_only=True)``. A missing file is an error at set-up that
names the file and where to put it (:class:`LPIPSWeightsMissing`); there is no fallback.

Computation (standard LPIPS): inputs in [-1, 1] are shifted and scaled per channel, the VGG16 maps
relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 are unit-normalised along channels, their squared
difference is weighted by the layer's linear head (a 1x1 convolution to one channel), averaged over
space and summed over the chosen layers. Layers are numbered 1..5; ``layers=(2,)`` is AEROBLADE's
"layer 2" distance (relu2_2, at half resolution).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

VGG16_FILENAME = "vgg16-397923af.pth"
HEADS_FILENAME = "lpips_v0.1_vgg.pth"
ENV_VGG16 = "AEDR_VGG16_WEIGHTS"
ENV_HEADS = "AEDR_LPIPS_HEADS"
ALL_LAYERS: tuple[int, ...] = (1, 2, 3, 4, 5)

# VGG16 "features": convolutions per stage (a 2x2 max-pool precedes stages 2..5) and the indices of
# those convolutions in torchvision's ``vgg16().features`` (what the weight file's keys name).
_STAGE_CONVS = (2, 2, 3, 3, 3)
_STAGE_WIDTHS = (64, 128, 256, 512, 512)
_TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

# LPIPS's input normalisation, applied to [-1, 1] images.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPSWeightsMissing(FileNotFoundError, ValueError):
    """A weight file LPIPS needs is not on this machine; the message says which and where to put it.
    (Also a ``ValueError``, so that callers treating bad method options as user errors show it as one.)"""


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _lpips_package_heads() -> Path | None:
    """``lpips/weights/v0.1/vgg.pth`` of an installed ``lpips`` package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "weights" / "v0.1" / "vgg.pth"
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class WeightPaths:
    """Where the two files were found (``None``: not found) and every place that was looked at."""

    vgg16: Path | None
    heads: Path | None
    vgg16_searched: tuple[str, ...]
    heads_searched: tuple[str, ...]


def find_weights(vgg16: str | os.PathLike | None = None, heads: str | os.PathLike | None = None) -> WeightPaths:
    """Resolve the two weight files: explicit paths first, then the environment, then the caches."""
    vgg_candidates: list[Path] = []
    if vgg16 is not None:
        vgg_candidates.append(Path(vgg16).expanduser())
    elif os.environ.get(ENV_VGG16):
        vgg_candidates.append(Path(os.environ[ENV_VGG16]).expanduser())
    else:
        vgg_candidates.append(_hub_checkpoints() / VGG16_FILENAME)

    head_candidates: list[Path] = []
    if heads is not None:
        head_candidates.append(Path(heads).expanduser())
    elif os.environ.get(ENV_HEADS):
        head_candidates.append(Path(os.environ[ENV_HEADS]).expanduser())
    else:
        head_candidates.append(_hub_checkpoints() / HEADS_FILENAME)
        packaged = _lpips_package_heads()
        if packaged is not None:
            head_candidates.append(packaged)

    def first(cands: list[Path]) -> Path | None:
        return next((c for c in cands if c.is_file()), None)

    searched_heads = [str(c) for c in head_candidates]
    if heads is None and not os.environ.get(ENV_HEADS) and len(head_candidates) == 1:
        searched_heads.append("an installed lpips package (none)")
    return WeightPaths(first(vgg_candidates), first(head_candidates), tuple(str(c) for c in vgg_candidates), tuple(searched_heads))


def _vgg16_instructions() -> list[str]:
    return [
        f"  fix: copy it into {_hub_checkpoints()}/",
        "       (torchvision saves it there: python -c \"import torchvision;",
        "       torchvision.models.vgg16(weights='IMAGENET1K_V1')\")",
        f"       or set {ENV_VGG16}=/path/to/{VGG16_FILENAME}",
    ]


def missing_weights_message(paths: WeightPaths, alternative: str = "Or use a method or distance that needs no weights.") -> str:
    """The set-up error a user sees: which files are missing, where aedr looked, how to provide them."""
    lines = ["LPIPS (VGG16 with the v0.1 linear heads) needs two weight files; missing here:"]
    if paths.vgg16 is None:
        lines.append(f"- {VGG16_FILENAME} (torchvision's ImageNet VGG16, 528 MB)")
        lines += [f"  looked at: {place}" for place in paths.vgg16_searched]  # one a line: a long path wraps on its own
        lines += _vgg16_instructions()
    if paths.heads is None:
        lines += [
            "- vgg.pth (the LPIPS v0.1 linear heads, 7 kB)",
            *(f"  looked at: {place}" for place in paths.heads_searched),
            "  fix: pip install --no-deps lpips",
            "       (aedr reads lpips/weights/v0.1/vgg.pth from it, never imports it)",
            f"       or copy vgg.pth to {_hub_checkpoints() / HEADS_FILENAME}",
            f"       or set {ENV_HEADS}=/path/to/vgg.pth",
        ]
    lines.append(alternative)
    return "\n".join(lines)


def _sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk (3x3 convs + ReLU, max-pool between stages), returning the ReLU
    output at the end of each requested stage; stages past the last requested one are not run."""

    def __init__(self) -> None:
        super().__init__()
        convs = []
        c_in = 3
        for n, width in zip(_STAGE_CONVS, _STAGE_WIDTHS):
            for _ in range(n):
                convs.append(nn.Conv2d(c_in, width, kernel_size=3, padding=1))
                c_in = width
        self.convs = nn.ModuleList(convs)

    def load_torchvision_state(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``features.{i}.weight/bias`` from a torchvision ``vgg16`` state dict (classifier ignored)."""
        mine = {}
        for k, idx in enumerate(_TORCHVISION_CONV_INDICES):
            for p in ("weight", "bias"):
                key = f"features.{idx}.{p}"
                if key not in state:
                    raise ValueError(f"VGG16 weight file has no {key!r}; is it torchvision's vgg16 (not vgg16_bn)?")
                mine[f"convs.{k}.{p}"] = state[key]
        self.load_state_dict(mine, strict=True)

    def forward(self, x: torch.Tensor, upto: int) -> list[torch.Tensor]:
        outs = []
        k = 0
        for stage, n in enumerate(_STAGE_CONVS[:upto]):
            if stage > 0:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
            for _ in range(n):
                x = F.relu(self.convs[k](x))
                k += 1
            outs.append(x)
        return outs


class LPIPS(nn.Module):
    """Per-image LPIPS distance between two [-1, 1] NCHW batches, over the chosen layers (1..5)."""

    def __init__(self, layers: Sequence[int] = ALL_LAYERS) -> None:
        super().__init__()
        layers = tuple(sorted(set(int(l) for l in layers)))
        if not layers or any(l not in ALL_LAYERS for l in layers):
            raise ValueError(f"LPIPS layers must be a non-empty subset of {ALL_LAYERS}, got {layers}")
        self.layers = layers
        self.features = VGG16Features()
        self.heads = nn.ParameterList([nn.Parameter(torch.zeros(1, w, 1, 1)) for w in _STAGE_WIDTHS])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def load_heads(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``lin{k}.model.1.weight`` (the v0.1 file's keys) into the five heads."""
        for k in range(5):
            key = f"lin{k}.model.1.weight"
            if key not in state:
                raise ValueError(f"LPIPS heads file has no {key!r}; expected the v0.1 'vgg.pth'")
            if tuple(state[key].shape) != tuple(self.heads[k].shape):
                raise ValueError(f"LPIPS head {key!r} has shape {tuple(state[key].shape)}, expected {tuple(self.heads[k].shape)}")
            self.heads[k].data.copy_(state[key])

    @staticmethod
    def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
        return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)

    def layer_distances(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(N, len(layers)) per-layer distances, each the spatial mean of the head-weighted difference."""
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS needs two NCHW RGB batches of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
        dev = self.shift.device
        a = (a.to(dev, torch.float32) - self.shift) / self.scale
        b = (b.to(dev, torch.float32) - self.shift) / self.scale
        upto = max(self.layers)
        fa, fb = self.features(a, upto), self.features(b, upto)
        out = []
        for layer in self.layers:
            d = (self._unit(fa[layer - 1]) - self._unit(fb[layer - 1])) ** 2
            out.append(F.conv2d(d, self.heads[layer - 1]).mean(dim=(1, 2, 3)))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.layer_distances(a, b).sum(dim=1)


_cache: dict[tuple, LPIPS] = {}
_lock = threading.Lock()


def require_weights(alternative: str | None = None, vgg16: str | os.PathLike | None = None,
                    heads: str | os.PathLike | None = None) -> WeightPaths:
    """Both weight files' paths, or :class:`LPIPSWeightsMissing` naming the missing ones, where to
    put them and ``alternative`` (what to use instead). A method that needs LPIPS calls it as it is
    set up, so that it fails before any scoring."""
    paths = find_weights(vgg16, heads)
    if paths.vgg16 is None or paths.heads is None:
        raise LPIPSWeightsMissing(missing_weights_message(paths, *([alternative] if alternative else [])))
    return paths


def load_lpips(
    device: str | torch.device = "cpu",
    layers: Sequence[int] = ALL_LAYERS,
    *,
    vgg16_path: str | os.PathLike | None = None,
    heads_path: str | os.PathLike | None = None,
    verify: bool = True,
    alternative: str | None = None,
) -> LPIPS:
    """The LPIPS network on ``device`` (loaded once per process and argument set). ``net(a, b)`` gives
    one distance per image for [-1, 1] NCHW batches. Raises :class:`LPIPSWeightsMissing` when a weight
    file is missing (:func:`require_weights`). ``verify`` checks the VGG16 file against the hash prefix
    in its standard name."""
    paths = require_weights(alternative, vgg16_path, heads_path)
    layers = tuple(sorted(set(int(l) for l in layers)))
    key = (str(torch.device(device)), layers, str(paths.vgg16), str(paths.heads))
    with _lock:
        if key in _cache:
            return _cache[key]
        if verify and paths.vgg16.name == VGG16_FILENAME:
            expected = VGG16_FILENAME.split("-")[1].split(".")[0]
            actual = _sha256_prefix(paths.vgg16, len(expected))
            if actual != expected:
                raise ValueError(
                    "\n".join(
                        [f"{paths.vgg16} is damaged or not torchvision's VGG16 file", f"  (sha256 starts {actual}, expected {expected})"]
                        + _vgg16_instructions()
                    )
                )
        net = LPIPS(layers)
        net.features.load_torchvision_state(torch.load(paths.vgg16, map_location="cpu", weights_only=True))
        net.load_heads(torch.load(paths.heads, map_location="cpu", weights_only=True))
        net.to(device)
        _cache[key] = net
        return net
