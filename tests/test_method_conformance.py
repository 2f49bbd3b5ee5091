"""Properties every registered method must have, checked for each one (built-in and plugins alike):

- one finite score per image;
- the same scores in any order and any batch split;
- the same scores when run twice with the same seed;
- on a small trained autoencoder, images its decoder made score lower on average than natural images.

Methods that cannot run on this machine (e.g. a missing weight file) are skipped with the reason.
Iterative methods run on small budgets here; a new plugin's methods are included automatically.

Tolerance: scores agree within 1e-5 (relative) across batch splits, one-by-one scoring included.
PyTorch's CPU convolutions round differently for odd and even batch sizes; a method that runs its
batches through :func:`aedr.reconstruction.even_batch` (the built-in ones do) gets scores that agree
bit for bit without gradients, and within ~1e-5 after 100 inversion steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aedr
from aedr.preprocess import tensor_to_uint8, to_model_tensor

from conftest import FolderModel, photo_crops, tiny_kl_vae

# Budgets for iterative methods, applied only where the method has the option: small ones for the
# invariance properties, and enough for the separation property to be meaningful.
BUDGETS: dict[str, dict] = {
    "latenttracer": dict(iterations=10),
    "ronan": dict(iterations=10, lr=0.1),
}
SEPARATION_BUDGETS: dict[str, dict] = {
    "latenttracer": dict(iterations=20),
    "ronan": dict(iterations=100, lr=0.1),
}

METHODS = aedr.load_plugins().methods.names()


def train_tiny_autoencoder(folder: Path, steps: int = 80, seed: int = 0) -> None:
    """A few seconds of training of the tiny KL autoencoder on 16x16 photo crops (it is fully
    convolutional, so it then works at 32x32 too), so that its decoder's images differ from natural
    ones the way a real model's do."""
    torch.manual_seed(seed)
    vae = tiny_kl_vae(seed=seed)
    x = to_model_tensor(photo_crops(256, 16, seed=100), (16, 16))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(vae.parameters(), lr=5e-3)
    for _ in range(steps):
        batch = x[torch.randint(0, x.shape[0], (16,), generator=g)]
        post = vae.encode(batch).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        loss = F.mse_loss(vae.decode(z).sample, batch) + 1e-6 * post.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval().save_pretrained(folder)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> FolderModel:
    folder = tmp_path_factory.mktemp("trained-tiny-vae")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is faster and not disturbed by a busy machine
    try:
        train_tiny_autoencoder(folder)
    finally:
        torch.set_num_threads(threads)
    return FolderModel("trained-tiny-kl", folder)


@pytest.fixture(scope="session")
def mixed_images() -> list[aedr.LoadedImage]:
    """Natural crops of two sizes (scored in separate groups) for the order and split properties."""
    return photo_crops(5, 32, seed=1) + photo_crops(2, 24, seed=2)


@pytest.fixture(scope="session")
def decoded_and_natural(trained_model) -> tuple[list[aedr.LoadedImage], list[aedr.LoadedImage]]:
    """Natural crops, and images made by the trained decoder from latents of other crops (8-bit)."""
    natural = photo_crops(6, 32, seed=7)
    sources = photo_crops(6, 32, seed=8)
    ae = trained_model.autoencoder()
    with torch.no_grad():
        pixels = tensor_to_uint8(ae.decode(ae.encode(to_model_tensor(sources, (32, 32))).mean))
    decoded = [aedr.LoadedImage.from_array(p, f"decoded-{i}") for i, p in enumerate(pixels)]
    return decoded, natural


pytestmark = pytest.mark.usefixtures("single_thread")


def make(name: str, budgets: dict[str, dict] = BUDGETS, **options) -> aedr.Method:
    cls = aedr.load_plugins().methods.get(name)
    known = set(cls.Options.__dataclass_fields__)
    budget = {k: v for k, v in budgets.get(name, {}).items() if k in known}
    try:
        return cls(**{**budget, **options})
    except FileNotFoundError as exc:  # e.g. weights this machine does not have
        pytest.skip(f"{name} cannot run here: {str(exc).splitlines()[0]}")


_scores: dict[str, np.ndarray] = {}


def base_scores(name: str, model, images) -> np.ndarray:
    if name not in _scores:
        _scores[name] = make(name, batch_size=8).score(model, images)
    return _scores[name]


def test_the_baselines_are_registered():
    for name in ("aedr", "aeroblade", "aeroblade-mse", "aeroblade-ssim", "latenttracer", "ronan"):
        assert name in METHODS


@pytest.mark.parametrize("name", METHODS)
def test_one_finite_score_per_image(name, trained_model, mixed_images):
    scores = base_scores(name, trained_model, mixed_images)
    assert scores.shape == (len(mixed_images),)
    assert np.all(np.isfinite(scores)), scores


@pytest.mark.parametrize("name", METHODS)
def test_order_and_batch_split_do_not_change_scores(name, trained_model, mixed_images):
    scores = base_scores(name, trained_model, mixed_images)
    order = [3, 6, 0, 5, 2, 1, 4]
    for batch_size, rtol in ((3, 1e-5), (1, 1e-5)):
        other = make(name, batch_size=batch_size).score(trained_model, [mixed_images[i] for i in order])
        back = np.empty_like(other)
        back[order] = other
        np.testing.assert_allclose(back, scores, rtol=rtol, atol=1e-12, err_msg=f"batch_size={batch_size}")


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_for_a_fixed_seed(name, trained_model, mixed_images):
    scores = base_scores(name, trained_model, mixed_images)
    again = make(name, batch_size=8).score(trained_model, mixed_images)
    np.testing.assert_array_equal(again, scores)


@pytest.mark.parametrize("name", METHODS)
def test_decoded_images_score_lower_than_natural_ones(name, trained_model, decoded_and_natural):
    decoded, natural = decoded_and_natural
    method = make(name, SEPARATION_BUDGETS, batch_size=12)
    scores = method.score(trained_model, decoded + natural)
    s_dec, s_nat = scores[: len(decoded)], scores[len(decoded) :]
    assert s_dec.mean() < s_nat.mean(), (method.label, s_dec, s_nat)
