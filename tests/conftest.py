"""Shared fixtures: a tiny diffusers autoencoder saved to disk and loaded back through a model plugin,
and small natural-image crops from the photographs bundled with scikit-image."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import aedr

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "aedr-seed"
TAESD_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "taesd"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def tiny_kl_vae(latent_channels: int = 4, seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=32,
    )


@functools.cache
def tiny_kl_fingerprint() -> str:
    """The autoencoder fingerprint of ``FolderModel("tiny-kl", ...)`` (the weights of :func:`tiny_kl_vae`)."""
    return aedr.DiffusersAutoencoder(tiny_kl_vae(), size_policy=aedr.SizePolicy(multiple=2)).fingerprint()


class FolderModel(aedr.ModelPlugin):
    """A model plugin that loads a diffusers autoencoder from a local folder, as real plugins do."""

    family = "kl"
    description = "tiny test autoencoder"

    def __init__(self, name: str, folder: Path, multiple: int = 2):
        super().__init__()
        self.name, self.folder, self.multiple = name, folder, multiple

    def load_autoencoder(self, device, dtype):
        return aedr.DiffusersAutoencoder.from_pretrained(
            str(self.folder), torch_dtype=dtype, device=device, size_policy=aedr.SizePolicy(multiple=self.multiple)
        )

    def generate(self, n, seed=0, prompts=None, device="cpu"):
        """Belonging images: the decoder applied to seeded random latents."""
        from aedr.autoencoder import seeded_normal
        from aedr.preprocess import tensor_to_uint8
        from PIL import Image

        ae = self.autoencoder(device)
        z = seeded_normal((n, 4, 16, 16), [seed + i for i in range(n)])
        with torch.no_grad():
            pixels = tensor_to_uint8(ae.decode(z))
        return [Image.fromarray(p) for p in pixels]


class ModelsPlugin:
    """Registers the test's models through the same hook third-party plugins use."""

    def __init__(self, *models):
        self.models = models

    @aedr.hookimpl
    def register_models(self, register):
        for m in self.models:
            register(m)


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("single_thread")``):
    tiny models are all per-op overhead, so one thread is several times faster than two on a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-vae")
    tiny_kl_vae().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir) -> FolderModel:
    return FolderModel("tiny-kl", tiny_model_dir)


def photo_crops(n: int, size: int = 32, seed: int = 0) -> list[aedr.LoadedImage]:
    """Deterministic random crops of scikit-image's bundled colour photographs."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y = int(rng.integers(0, p.shape[0] - size))
        x = int(rng.integers(0, p.shape[1] - size))
        out.append(aedr.LoadedImage.from_array(np.ascontiguousarray(p[y : y + size, x : x + size]), f"photo-{i}"))
    return out


def photo_folder(folder, n: int, seed: int = 3):
    """``folder`` (made) holding ``n`` crops of :func:`photo_crops` as 000.png, 001.png, ..."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(photo_crops(n, seed=seed)):
        im.to_pil().save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="session")
def natural_images() -> list[aedr.LoadedImage]:
    return photo_crops(8)


def cli_runner(plugins, monkeypatch):
    """``run(*args, ok=True)``: the ``aedr`` command line on ``plugins`` (the process's plugin set for
    the test), asserting exit status 0 unless ``ok=False``; returns typer's result."""
    from typer.testing import CliRunner

    from aedr.cli import build_app

    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    runner, app = CliRunner(), build_app()

    def run(*args, ok=True):
        result = runner.invoke(app, [str(a) for a in args])
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    return run


def calibrated_tiny_model(folder: Path):
    """(plugins, model, method, card, photograph, its score): the tiny KL model saved in ``folder``,
    AEDR calibrated on 6 of its generated images, and one photograph crop scored under it."""
    folder = Path(folder)
    tiny_kl_vae().save_pretrained(folder)
    model = FolderModel("tiny-kl", folder)
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model)])
    method = plugins.method("aedr")
    own = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(model.generate(6, seed=0))]
    card = aedr.calibrate(model, method, own)
    image = photo_crops(1, seed=5)[0]
    return plugins, model, method, card, image, float(method.score(model, [image])[0])
