"""Generating a model's own images from Python, a few at a time, with the progress the API shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from .models import ModelPlugin
from .progress import api_progress

if TYPE_CHECKING:
    from PIL import Image

STEP = 4  # images per call to the model's generator


def generate(model: ModelPlugin, n: int, *, seed: int = 0, prompts: Sequence[str] | None = None, device: str = "cpu",
             progress: "bool | Callable[[int], None] | None" = None) -> list["Image.Image"]:
    """``n`` of ``model``'s own images (:meth:`aedr.ModelPlugin.generate`), made ``STEP`` at a time so
    that ``progress`` (as for :func:`aedr.calibrate`: a bar where a person watches, by default) moves
    as they come. Image ``i`` depends only on ``seed + i`` (and its prompt), so the images are the
    ones a single call would give."""
    if prompts is not None and len(prompts) != n:
        raise ValueError(f"{len(prompts)} prompts for {n} images")
    images: list = []
    with api_progress(progress, f"generating {n} images with {model.name}", n) as advance:
        for start in range(0, n, STEP):
            count = min(STEP, n - start)
            part = None if prompts is None else list(prompts[start:start + count])
            made = model.generate(count, seed=seed + start, prompts=part, device=device)
            if len(made) != count:
                raise RuntimeError(f"model {model.name!r}: generate({count}) returned {len(made)} images")
            images += made
            if advance is not None:
                advance(count)
    return images
