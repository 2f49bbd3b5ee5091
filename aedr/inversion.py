"""Batched latent inversion through a decoder: the loop LatentTracer and RONAN share.

A whole batch of latents is optimised at once. The loss is the *sum* of the per-image losses, so each
latent receives exactly the gradient it would get alone, and Adam (element-wise) then moves it exactly
as it would alone. Gradients are taken with respect to the latent only (``torch.autograd.grad``), so
the decoder's weights never get gradients, whatever their ``requires_grad``; no graph outlives its
iteration.

Batch sizes: on the CPU, PyTorch's convolutions take other code paths for odd batch sizes than for
even ones, with float32 results that differ in the last bits (see
:func:`aedr.reconstruction.even_batch`); an inversion amplifies that. ``pad_single=True`` runs an odd
batch with a copy of its last image added (and dropped from the result), so that a score does not
depend on the batch it is scored in, as far as the back end allows (checked on the CPU; inversions
of batches of different even sizes still differ by up to ~1e-5 relative after 100 steps).

The optimised variable is the *scaled* latent s = c * (z - b) of the autoencoder
(:meth:`aedr.Autoencoder.to_scaled`), as the originals optimise the latent their generator works
in; Adam's step size is therefore per unit of scaled latent (on SD models each step moves the raw
latent 1 / 0.18215 = 5.5 times further than Adam on the raw latent would). VQ latents are decoded
without snapping them to the codebook (``force_not_quantize``), as the originals do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable


from .autoencoder import Autoencoder
from .methods.base import MethodOptions
from .models import ModelPlugin
from .lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")


@dataclass
class InversionOptions(MethodOptions):
    """Options of the inversion methods (LatentTracer, RONAN), which set their own defaults.

    ``lr``/``iterations``: Adam's learning rate and the number of iterations. ``clamp``: clamp G(z)
    to [0, 1]; ``None`` = as the originals (every family but ``movq``, Kandinsky's MoVQ).
    ``early_stop_patience``: stop an image after this many iterations without improvement (0 = off,
    the originals' behaviour). ``pad_single``: run odd batches with one extra copy (see the module's docs)."""

    lr: float = 0.05
    iterations: int = 100
    clamp: bool | None = None
    early_stop_patience: int = 0
    pad_single: bool = True

    def validate(self) -> None:
        super().validate()
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.early_stop_patience < 0:
            raise ValueError(f"early_stop_patience must be >= 0 (0 = off), got {self.early_stop_patience}")

    def clamp_for(self, model: ModelPlugin) -> bool:
        """Whether G(z) is clamped for ``model``: ``clamp`` if set, else every family but ``movq``."""
        return self.clamp if self.clamp is not None else model.family != "movq"


@dataclass
class InversionResult:
    """Per image: the minimum loss seen (float64), the iteration it was seen at, and how many
    iterations were evaluated before the loop ended (all of them unless early stopping)."""

    best: torch.Tensor
    best_iteration: torch.Tensor
    evaluated: torch.Tensor


def unit_decoder(ae: Autoencoder, *, clamp: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """G(s) = D(s / c + b) / 2 + 0.5 in float32 from the scaled latent s, clamped to [0, 1] unless
    ``clamp`` is False; VQ latents are decoded as they are (``quantize=False``)."""

    def g(s: torch.Tensor) -> torch.Tensor:
        x = ae.decode(ae.from_scaled(s), quantize=False).float() / 2 + 0.5
        return x.clamp(0, 1) if clamp else x

    return g


def learning_rate(step: int, lr: float, halve_every: int | None) -> float:
    """The rate step ``step`` runs at when the rate is halved *after* every step i with
    ``i % halve_every == 0`` (i = 0 included), as LatentTracer's loop does: with lr 0.05 and 50,
    step 0 runs at 0.05, steps 1-50 at 0.025 and steps 51-100 at 0.0125."""
    if not halve_every or step <= 0:
        return lr
    return lr * 0.5 ** -(-step // halve_every)  # ceil(step / halve_every) halvings so far


def per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).flatten(1).mean(dim=1)


def invert(
    generator: Callable[[torch.Tensor], torch.Tensor],
    target: torch.Tensor,
    z0: torch.Tensor,
    *,
    lr: float,
    iterations: int,
    halve_every: int | None = None,
    early_stop_patience: int = 0,
    pad_single: bool = True,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = per_image_mse,
) -> InversionResult:
    """Minimise ``loss(generator(z), target)`` over z from ``z0`` with Adam, one latent per image.

    ``halve_every=k``: after the step of every iteration i with ``i % k == 0`` (i = 0 included), the
    learning rate is halved (LatentTracer; see :func:`learning_rate`). Each iteration measures the
    loss at the current z *before* its step; the result is the minimum of those. ``early_stop_patience=K > 0``: an image stops counting once its best loss has not improved for
    K iterations; the loop ends when every image has stopped. Off by default (0).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    n = z0.shape[0]
    if target.shape[0] != n:
        raise ValueError(f"{n} latents for {target.shape[0]} target images")
    # Plain tensors even when the caller is in inference mode (inference tensors cannot join autograd).
    with torch.inference_mode(False), torch.enable_grad():
        target = target.detach().float().to(z0.device).clone()
        z = z0.detach().float().clone()
        if pad_single and n % 2 == 1:
            z, target = torch.cat([z, z[-1:]]), torch.cat([target, target[-1:]])
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        m = z.shape[0]
        best = torch.full((m,), float("inf"), dtype=torch.float64)
        best_iter = torch.full((m,), -1, dtype=torch.long)
        evaluated = torch.zeros(m, dtype=torch.long)
        active = torch.ones(m, dtype=torch.bool)
        for i in range(iterations):
            losses = loss(generator(z), target)
            current = losses.detach().double().cpu()
            improved = active & (current < best)
            best = torch.where(improved, current, best)
            best_iter = torch.where(improved, torch.full_like(best_iter, i), best_iter)
            evaluated += active.long()
            if early_stop_patience > 0:
                active &= (i - best_iter) < early_stop_patience
                if not bool(active.any()):
                    break
            if i == iterations - 1:
                break  # the last step's result would never be evaluated
            (grad,) = torch.autograd.grad(losses.sum(), [z])
            z.grad = grad
            for group in opt.param_groups:
                group["lr"] = learning_rate(i, lr, halve_every)
            opt.step()
            z.grad = None
    return InversionResult(best[:n], best_iter[:n], evaluated[:n])
