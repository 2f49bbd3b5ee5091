"""Per-image reconstruction losses, computed in float32 whatever the autoencoder's dtype.

Every distance is a loss (larger = further apart) so that the AEDR ratio L1 / L2 keeps its meaning:
``l2`` mean squared error (the default, as the original), ``l1`` mean absolute error, ``ssim``
1 - SSIM (Gaussian window 11, sigma 1.5, on the [0, 1] scale), ``psnr`` 1 / PSNR (dB, [0, 1] scale),
``lpips`` LPIPS (VGG16, v0.1 heads; needs its weights, see :mod:`aedr.lpips`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Literal

from .lazy import lazy_import

if TYPE_CHECKING:
    import torch
    import torch.nn.functional as F
else:
    torch = lazy_import("torch")
    F = lazy_import("torch.nn.functional")

Distance = Literal["l2", "l1", "ssim", "psnr", "lpips"]
DISTANCES: tuple[str, ...] = ("l2", "l1", "ssim", "psnr", "lpips")


def _flat(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return a.float().flatten(1), b.float().flatten(1)


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = _flat(a, b)
    return ((a - b) ** 2).mean(dim=1)


def mae(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = _flat(a, b)
    return (a - b).abs().mean(dim=1)


def residual_autocovariance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The lag-1 autocovariance of the residual r = a - b, per image: the mean product of horizontally
    adjacent residuals and that of vertically adjacent ones (each channel alone), averaged. Zero in
    expectation for white noise, which the mean squared error counts in full: the part of a
    reconstruction error with spatial structure. Can be negative. Needs at least 2x2 pixels."""
    r = a.float() - b.float()
    if min(r.shape[-2:]) < 2:
        raise ValueError(f"residual_autocovariance needs images of at least 2x2 pixels, got {tuple(r.shape[-2:])}")
    across = (r[..., :, 1:] * r[..., :, :-1]).flatten(1).mean(dim=1)
    down = (r[..., 1:, :] * r[..., :-1, :]).flatten(1).mean(dim=1)
    return (across + down) / 2


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image of two [-1, 1] batches, measured on the [0, 1] scale (valid windows)."""
    a = (a.float() + 1) / 2
    b = (b.float() + 1) / 2
    c = a.shape[1]
    win = _gaussian_window().to(a.device)[None, None].repeat(c, 1, 1, 1)
    size = win.shape[-1]
    if min(a.shape[-2:]) < size:
        raise ValueError(f"ssim needs images of at least {size}x{size} pixels")
    conv = lambda t: F.conv2d(t, win, groups=c)  # noqa: E731
    mu_a, mu_b = conv(a), conv(b)
    var_a = conv(a * a) - mu_a**2
    var_b = conv(b * b) - mu_b**2
    cov = conv(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(dim=1)


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim(a, b)


def psnr_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    m = mse(a, b) / 4.0  # [-1, 1] -> [0, 1] scale
    psnr = 10.0 * torch.log10(1.0 / m.clamp_min(1e-20))
    return 1.0 / psnr


def get_distance(name: str, device: str | torch.device = "cpu") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-image loss function called ``name``."""
    if name == "l2":
        return mse
    if name == "l1":
        return mae
    if name == "ssim":
        return ssim_loss
    if name == "psnr":
        return psnr_loss
    if name == "lpips":
        from .lpips import load_lpips

        net = load_lpips(device=device)
        return lambda a, b: net(a.float(), b.float())
    raise ValueError(f"unknown distance {name!r}; choose one of {', '.join(DISTANCES)}")
