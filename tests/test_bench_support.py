"""Building blocks of the bench tests: two tiny generating models saved to disk and loaded back
through model plugins, a folder of real photographs (with one unreadable file), the plugin set
with every registered method, and small budgets for the expensive methods."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aedr
from conftest import FolderModel, photo_crops, tiny_kl_vae

ITERATION_OPTIONS = ("iterations", "steps", "num_iterations", "n_iter", "iters", "max_iterations")


class BenchModels:
    """Registers the test's models (and optionally datasets and methods) through the plugin hooks."""

    def __init__(self, models=(), datasets=(), methods=()):
        self.models, self.datasets, self.methods = list(models), list(datasets), list(methods)

    @aedr.hookimpl
    def register_models(self, register):
        for m in self.models:
            register(m)

    @aedr.hookimpl
    def register_datasets(self, register):
        for d in self.datasets:
            register(d)

    @aedr.hookimpl
    def register_methods(self, register):
        for m in self.methods:
            register(m)


def make_models(root: Path, n: int = 2) -> list[FolderModel]:
    """``n`` tiny KL autoencoders with different weights, each saved and loaded like a real plugin's."""
    models = []
    for k in range(n):
        folder = root / f"tiny-{k}"
        if not (folder / "config.json").exists():
            tiny_kl_vae(seed=k).save_pretrained(folder)
        model = FolderModel(f"tiny-{k}", folder)
        model.family = ("kl", "kl-b")[k % 2]
        models.append(model)
    return models


def make_real_folder(root: Path, n: int = 10) -> Path:
    """Natural photo crops as PNG and JPEG files, plus one file that is not an image."""
    root.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(photo_crops(n, seed=3)):
        if i % 3 == 2:
            im.to_pil().save(root / f"photo-{i:02d}.jpg", quality=95)
        else:
            im.to_pil().save(root / f"photo-{i:02d}.png")
    (root / "photo-00-broken.png").write_bytes(b"this is not a PNG file")
    return root


def small_budgets(plugins) -> dict[str, dict]:
    """Two optimisation steps for every method that has an iteration budget (RONAN, LatentTracer)."""
    options: dict[str, dict] = {}
    for entry in plugins.methods:
        fields = {f.name for f in dataclasses.fields(entry.obj.Options)}
        for name in ITERATION_OPTIONS:
            if name in fields:
                options.setdefault(entry.name, {})[name] = 2
    return options
