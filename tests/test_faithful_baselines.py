"""The baselines compute what their original code computes (``../shared/METHODS.md``).

Each original loop is written out here plainly from METHODS.md, on the diffusers modules directly:
one image at a time, no batching, no shared cache, none of aedr's autoencoder wrapper, and compared
with the plugin on a zoo KL model and a zoo VQ model. Then one test per detail that once differed:
the scaled latent, LatentTracer's learning-rate schedule, VQ decoding, AEROBLADE's 8-bit step and
LatentTracer's ``squash_512`` preprocessing.

Where the reference calls a module, it passes its one image as a batch of two identical copies
and keeps the first: on the CPU a batch of one runs other convolution code than the even batches the
plugins run (see ``aedr.reconstruction.even_batch``), and that last-bit difference is amplified
past 1e-5 by 100 Adam steps and by truncation to 8 bits (a belonging image's reconstruction lies
within float noise of whole pixel values). The copy changes no arithmetic of the image itself.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aedr
from aedr.autoencoder import seeded_normal
from aedr.inversion import invert, learning_rate
from aedr.preprocess import image_seed, to_model_tensor

from aedr_aeroblade import AerobladeMSE, quantize_8bit
from aedr_latenttracer import LatentTracer
from aedr_latenttracer.method import squash_512
from aedr_ronan import RONAN
from aedr_ronan.method import init_seed

from conftest import photo_crops

RTOL = 1e-5


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def zoo():
    plugins = aedr.load_plugins()
    return {name: plugins.models.get(name) for name in ("zoo-kl-a", "zoo-vq")}


def zoo_images(model, n_own: int = 2, n_real: int = 1) -> list[aedr.LoadedImage]:
    own = [aedr.LoadedImage.from_pil(im, f"{model.name}-{i}") for i, im in enumerate(model.generate(n_own, seed=7))]
    return own + photo_crops(n_real, 32, seed=3)


def module_and_factors(model):
    """The diffusers module and (c, b) read from the model's own files, not through aedr's wrapper."""
    module = model.autoencoder().module
    if type(module).__name__ == "VQModel":
        return module, 1.0, 0.0
    meta = json.loads((model.folder / "zoo.json").read_text())
    c = torch.as_tensor(meta["latent_scale"], dtype=torch.float32)
    b = torch.as_tensor(meta["latent_shift"], dtype=torch.float32)
    if c.ndim:  # one number per channel
        c, b = c.view(1, -1, 1, 1), b.view(1, -1, 1, 1)
    return module, c, b


def unit(image: aedr.LoadedImage) -> torch.Tensor:
    """The image in [0, 1], 1x3xHxW."""
    return to_model_tensor([image], (image.width, image.height)).add(1).div(2)


def is_vq(module) -> bool:
    return type(module).__name__ == "VQModel"


def twice(x: torch.Tensor) -> torch.Tensor:
    """One image as a batch of two identical copies (see the module's docs)."""
    return torch.cat([x, x])


def encoded(module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean, std) of E(2x - 1) for 1x3xHxW ``x`` in [0, 1]; VQ: the raw encoder output, no std."""
    with torch.no_grad():
        out = module.encode(twice((x - 0.5) * 2))
    if is_vq(module):
        return out.latents[:1], None
    return out.latent_dist.mean[:1], out.latent_dist.std[:1]


def decode(module, z):
    """D(z) of a batch of copies: VQ latents without quantising (force_not_quantize), as both originals."""
    if is_vq(module):
        return module.decode(z, force_not_quantize=True).sample
    return module.decode(z).sample


def mse(a, b) -> torch.Tensor:
    """Per copy: the mean squared error."""
    return ((a - b) ** 2).flatten(1).mean(1)


# ----------------------------------------------------------------------------------------------
# The original loops, one image at a time


def reference_latenttracer(model, image, iterations=100, lr=0.05) -> float:
    module, c, b = module_and_factors(model)
    x = unit(image)
    z0, _ = encoded(module, x)
    if is_vq(module):
        with torch.no_grad():
            z0 = module.quantize(twice(z0))[0][:1]
    s = torch.nn.Parameter(twice(c * (z0 - b)))
    opt = torch.optim.Adam([s], lr=lr)
    measure = float("inf")
    for i in range(iterations):
        losses = mse((decode(module, s / c + b) / 2 + 0.5).clamp(0, 1), twice(x))
        measure = min(measure, losses[0].item())
        opt.zero_grad()
        losses.sum().backward()  # each copy its own loss's gradient
        opt.step()
        if i % 50 == 0:
            for group in opt.param_groups:
                group["lr"] = group["lr"] * 0.5
    return measure


def reference_ronan(model, image, iterations, lr) -> float:
    module, c, b = module_and_factors(model)
    x = unit(image)
    z, _ = encoded(module, x)
    # The per-image seed (a documented deviation: the original draws from a global generator).
    s = torch.nn.Parameter(twice(seeded_normal(z.shape, [init_seed(image_seed(image, 0))])))
    opt = torch.optim.Adam([s], lr=lr)
    measure = float("inf")
    for _ in range(iterations):
        losses = mse((decode(module, s / c + b) / 2 + 0.5).clamp(0, 1), twice(x))
        measure = min(measure, losses[0].item())
        opt.zero_grad()
        losses.sum().backward()
        opt.step()
    return measure


def reconstruction_unit(model, image) -> torch.Tensor:
    """AEROBLADE's x1 = D(E(x)) in [0, 1], clamped (posterior sample with the image's seed)."""
    module, _, _ = module_and_factors(model)
    mean, std = encoded(module, unit(image))
    z = mean if std is None else mean + std * seeded_normal(mean.shape, [image_seed(image, 0)])
    with torch.no_grad():
        return (decode(module, twice(z))[:1] / 2 + 0.5).clamp(0, 1)


def reference_aeroblade_mse(model, image) -> float:
    rec = reconstruction_unit(model, image).mul(255).byte().float() / 255  # torchvision's to_pil_image
    return mse(rec, unit(image)).item()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zoo-kl-a", "zoo-vq"])
def test_latenttracer_equals_the_original_loop(zoo, name):
    model = zoo[name]
    images = zoo_images(model)
    scores = LatentTracer(batch_size=len(images)).score(model, images)  # the published 100 iterations
    expected = [reference_latenttracer(model, im) for im in images]
    np.testing.assert_allclose(scores, expected, rtol=RTOL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zoo-kl-a", "zoo-vq"])
def test_ronan_equals_the_original_loop(zoo, name):
    model = zoo[name]
    images = zoo_images(model)
    scores = RONAN(lr=0.1, iterations=60, batch_size=len(images)).score(model, images)
    expected = [reference_ronan(model, im, 60, 0.1) for im in images]
    np.testing.assert_allclose(scores, expected, rtol=RTOL)


@pytest.mark.parametrize("name", ["zoo-kl-a", "zoo-vq"])
def test_aeroblade_equals_the_original_reconstruction(zoo, name):
    model = zoo[name]
    images = zoo_images(model)
    scores = AerobladeMSE(batch_size=len(images)).score(model, images)
    expected = [reference_aeroblade_mse(model, im) for im in images]
    np.testing.assert_allclose(scores, expected, rtol=RTOL)


# ----------------------------------------------------------------------------------------------
# The details, one test each


def test_every_model_declares_its_latent_factors(zoo, tiny_model):
    """diffusers models from the config; zoo KL models the denoiser's normalisation; VQ 1 and 0."""
    ae = tiny_model.autoencoder()
    assert ae.scaling_factor == pytest.approx(0.18215) and ae.shift_factor == 0.0  # AutoencoderKL's config
    kl, vq = zoo["zoo-kl-a"], zoo["zoo-vq"]
    meta = json.loads((kl.folder / "zoo.json").read_text())
    as_factor = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
    assert kl.autoencoder().scaling_factor == pytest.approx(as_factor(meta["latent_scale"]))
    assert kl.autoencoder().shift_factor == pytest.approx(as_factor(meta["latent_shift"]))
    assert (vq.autoencoder().scaling_factor, vq.autoencoder().shift_factor) == (1.0, 0.0)
    z = torch.randn(2, 4, 8, 8)
    torch.testing.assert_close(kl.autoencoder().from_scaled(kl.autoencoder().to_scaled(z)), z)


def test_first_adam_step_moves_the_raw_latent_by_lr_over_c(tiny_model, monkeypatch):
    """Adam's first step is +-lr in the variable it optimises, here the scaled latent s = c z, so the
    raw latent the decoder sees moves by lr / c = 0.05 / 0.18215 per element."""
    ae = tiny_model.autoencoder()
    c = ae.scaling_factor
    assert c == pytest.approx(0.18215)
    seen = []
    original = ae.decode
    monkeypatch.setattr(ae, "decode", lambda z, quantize=None: seen.append(z.detach().clone()) or original(z, quantize))
    LatentTracer(iterations=2).score(tiny_model, photo_crops(2, 32, seed=1))
    step = (seen[1] - seen[0]).abs()
    assert torch.quantile(step.flatten(), 0.5).item() == pytest.approx(0.05 / c, rel=1e-4)
    assert (step - 0.05 / c).abs().le(1e-3 * 0.05 / c).float().mean() > 0.99  # elements with a real gradient


def test_latenttracer_learning_rate_schedule():
    assert [learning_rate(i, 0.05, 50) for i in (0, 1, 50, 51, 99)] == [0.05, 0.025, 0.025, 0.0125, 0.0125]
    assert learning_rate(100, 0.05, 50) == 0.0125 and learning_rate(101, 0.05, 50) == 0.00625
    assert learning_rate(70, 0.1, None) == 0.1  # RONAN: no schedule


def test_the_loop_steps_at_the_rate_in_force(tiny_model):
    """On a linear loss Adam's every step is exactly the rate in force, so the moves of the latent
    between evaluations read off the schedule: 0.05 at step 0, 0.025 at 1 and 50, 0.0125 at 51."""
    seen = []

    def generator(s):
        seen.append(s.detach().clone())
        return s

    invert(generator, torch.zeros(2, 3), torch.zeros(2, 3), lr=0.05, iterations=53, halve_every=50,
           loss=lambda g, t: g.sum(dim=1))
    moves = [(seen[i] - seen[i + 1]).mean().item() for i in range(len(seen) - 1)]
    for step, rate in ((0, 0.05), (1, 0.025), (50, 0.025), (51, 0.0125)):
        assert moves[step] == pytest.approx(rate, rel=1e-4), step  # float32 latents


def test_vq_is_decoded_without_quantising_in_latenttracer_and_aeroblade(zoo, monkeypatch):
    model = zoo["zoo-vq"]
    ae = model.autoencoder()
    assert ae.latent_kind == "vq" and ae.quantize_on_decode  # its own rule quantises (AEDR keeps it)
    images = zoo_images(model, 2, 0)
    calls = []
    original = ae.module.decode

    def recording(z, *args, **kwargs):
        calls.append(kwargs.get("force_not_quantize", False))
        return original(z, *args, **kwargs)

    monkeypatch.setattr(ae.module, "decode", recording)
    LatentTracer(iterations=3).score(model, images)
    AerobladeMSE().score(model, images)
    assert calls and all(calls)
    calls.clear()
    aedr.get_method("aedr").score(model, images)
    assert calls and not any(calls)
    # The decode option itself: quantize=False is diffusers' force_not_quantize=True.
    z = ae.encode(to_model_tensor(images, (32, 32))).mean
    torch.testing.assert_close(ae.decode(z, quantize=False), original(z, force_not_quantize=True).sample)
    torch.testing.assert_close(ae.decode(z), original(z).sample)
    assert not torch.allclose(ae.decode(z, quantize=False), ae.decode(z))


def test_aeroblade_truncates_to_8_bits():
    u = torch.tensor([0.0, 0.5 / 255, 0.99 / 255, 1.001 / 255, 127.7 / 255, 254.999 / 255, 1.0, 1.2, -0.1])
    q = (quantize_8bit(u * 2 - 1) + 1) / 2 * 255
    torch.testing.assert_close(q, torch.tensor([0.0, 0, 0, 1, 127, 254, 255, 255, 0]), atol=1e-4, rtol=0)


def test_aeroblade_reconstruction_pixels_are_the_truncated_ones(zoo):
    model = zoo["zoo-kl-a"]
    images = zoo_images(model, 2, 1)
    scores = AerobladeMSE().score(model, images)
    rounded = [mse(torch.round(reconstruction_unit(model, im) * 255) / 255, unit(im)).item() for im in images]
    np.testing.assert_allclose(scores, [reference_aeroblade_mse(model, im) for im in images], rtol=RTOL)
    assert not np.allclose(scores, rounded, rtol=1e-4)


def test_squash_512_is_the_original_preprocessing():
    """OpenCV's area resize of the 8-bit image to 512x512, / 255, then torchvision's tensor resize
    (bilinear, no antialiasing) to the native square."""
    cv2 = pytest.importorskip("cv2")
    rgb = photo_crops(1, 64, seed=2)[0].rgb
    for native in (512, 256, 768, 32):
        got = squash_512([rgb], native)
        area = cv2.resize(rgb, (512, 512), interpolation=cv2.INTER_AREA)
        ref = torch.from_numpy(area / 255).float().permute(2, 0, 1)[None]
        if native != 512:
            ref = F.interpolate(ref, size=(native, native), mode="bilinear", align_corners=False)
        assert got.shape == (1, 3, native, native)
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # uint8 first: the area resize rounds to 8 bits before the division.
    assert torch.all((squash_512([rgb], 512) * 255 - (squash_512([rgb], 512) * 255).round()).abs() < 1e-4)


def test_squash_512_runs_at_the_models_native_size(zoo):
    pytest.importorskip("cv2")
    model = zoo["zoo-kl-a"]
    assert model.native_size == 32
    native, larger = zoo_images(model, 1, 1), photo_crops(2, 48, seed=4)
    squashed = LatentTracer(iterations=3, squash_512=True)
    plain = LatentTracer(iterations=3)
    # At the native size the squash is the identity: an area upscale by 16 repeats each pixel and the
    # bilinear downscale samples between two copies of it.
    np.testing.assert_allclose(squashed.score(model, native), plain.score(model, native), rtol=1e-5)  # / 255 in float64
    # Other sizes end at the native 32x32 instead of the size policy's 48x48.
    assert not np.allclose(squashed.score(model, larger), plain.score(model, larger), rtol=1e-3)


def test_squash_512_needs_a_native_size(tiny_model):
    pytest.importorskip("cv2")
    assert tiny_model.native_size is None
    with pytest.raises(ValueError, match="native_size"):
        LatentTracer(iterations=2, squash_512=True).score(tiny_model, photo_crops(1, 32))
