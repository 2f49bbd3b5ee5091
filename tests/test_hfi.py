"""HFI (arXiv 2412.20704): the blur, the score written out by hand, the LPIPS variant's wiring and
its missing-weights notice, the options and the listing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import aedr
import aedr.lpips as lpips_mod
from aedr.preprocess import to_model_tensor
from aedr.reconstruction import ReconstructionCache

from aedr_hfi import BELONGING_SIGN, HFI, HFIMSE, gaussian_blur, gaussian_kernel1d

from conftest import cli_runner, photo_crops, tiny_kl_vae

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def images() -> list[aedr.LoadedImage]:
    return photo_crops(3, 32, seed=11)


def x0_of(images) -> torch.Tensor:
    return to_model_tensor(images, (images[0].width, images[0].height))


def blur_by_hand(x: np.ndarray, kernel_size: int, sigma: float) -> np.ndarray:
    """A 2-D Gaussian blur of an (N, C, H, W) float64 array, written out: the full 2-D kernel from
    the formula, borders mirrored without repeating the edge pixel (numpy's ``reflect``)."""
    r = kernel_size // 2
    g = np.array([math.exp(-(t * t) / (2 * sigma * sigma)) for t in range(-r, r + 1)])
    k2 = np.outer(g, g) / np.outer(g, g).sum()
    padded = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    h, w = x.shape[-2:]
    out = np.zeros_like(x)
    for dy in range(kernel_size):
        for dx in range(kernel_size):
            out += k2[dy, dx] * padded[..., dy : dy + h, dx : dx + w]
    return out


# ----------------------------------------------------------------------------------------------
# the blur


def test_kernel_3_sigma_1_taps():
    e = math.exp(-0.5)
    expected = np.array([e, 1.0, e]) / (1 + 2 * e)  # 0.27407, 0.45186, 0.27407
    np.testing.assert_allclose(gaussian_kernel1d(3, 1.0).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(expected, [0.274068619, 0.451862762, 0.274068619], atol=1e-9)
    taps = gaussian_kernel1d(5, 2.0).numpy()
    assert taps.sum() == pytest.approx(1.0) and np.allclose(taps, taps[::-1]) and taps.argmax() == 2
    for bad in ((2, 1.0), (0, 1.0), (3, 0.0), (3, -1.0), (3, float("nan"))):
        with pytest.raises(ValueError):
            gaussian_kernel1d(*bad)


def test_blur_interior_is_the_outer_product_of_the_taps():
    impulse = torch.zeros(1, 1, 7, 7)
    impulse[0, 0, 3, 3] = 1.0
    out = gaussian_blur(impulse, 3, 1.0)[0, 0]
    taps = gaussian_kernel1d(3, 1.0).float()
    torch.testing.assert_close(out[2:5, 2:5], torch.outer(taps, taps), rtol=1e-6, atol=1e-7)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-6) and float(out[0].abs().sum()) == 0.0


def test_blur_reflects_the_border_without_repeating_the_edge():
    """A ramp 0, 1, 2, ... along the width: mirrored borders give 2 w at the left edge (w the outer
    tap), where a repeated edge or zero padding would give w."""
    ramp = torch.arange(8, dtype=torch.float32).repeat(1, 3, 8, 1)
    out = gaussian_blur(ramp, 3, 1.0)
    w = float(gaussian_kernel1d(3, 1.0)[0])
    assert float(out[0, 0, 4, 0]) == pytest.approx(2 * w, rel=1e-6)
    assert float(out[0, 0, 4, 7]) == pytest.approx(7 - 2 * w, rel=1e-6)
    torch.testing.assert_close(out[..., 1:7], ramp[..., 1:7], rtol=1e-6, atol=1e-5)  # a ramp is kept inside
    const = torch.full((1, 3, 5, 6), -0.3)
    torch.testing.assert_close(gaussian_blur(const, 3, 1.0), const)


@pytest.mark.parametrize("kernel_size, sigma", [(3, 1.0), (5, 0.7)])
def test_blur_equals_the_written_out_2d_convolution(kernel_size, sigma):
    x = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(0)) * 2 - 1
    expected = blur_by_hand(x.double().numpy(), kernel_size, sigma)
    np.testing.assert_allclose(gaussian_blur(x, kernel_size, sigma).double().numpy(), expected, atol=2e-6)


def test_blur_on_an_image_too_small_for_reflection():
    with pytest.raises(ValueError, match="larger than 2 px"):
        gaussian_blur(torch.zeros(1, 3, 2, 8), 5, 1.0)


# ----------------------------------------------------------------------------------------------
# the score


def hfi_by_hand(vae, x: torch.Tensor, distance, kernel_size=3, sigma=1.0) -> np.ndarray:
    """d(x, D(E(x))) - d(L(x), D(E(L(x)))) with the diffusers module itself, posterior mode, one
    image at a time, the blur written out in numpy."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].double()
        li = torch.from_numpy(blur_by_hand(xi.numpy(), kernel_size, sigma)).float()
        xi = xi.float()
        with torch.no_grad():
            rec = vae.decode(vae.encode(xi).latent_dist.mode()).sample
            rec_l = vae.decode(vae.encode(li).latent_dist.mode()).sample
        out.append(float(distance(xi, rec)) - float(distance(li, rec_l)))
    return np.array(out)


def mse01(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (((a + 1) / 2 - (b + 1) / 2) ** 2).mean()


def test_hfi_mse_is_the_difference_of_the_two_reconstruction_errors(tiny_model, images):
    vae = tiny_kl_vae().eval()  # the weights tiny_model was saved with
    for kernel_size, sigma in ((3, 1.0), (5, 2.0)):
        scores = HFIMSE(batch_size=8, kernel_size=kernel_size, sigma=sigma).score(tiny_model, images)
        expected = BELONGING_SIGN * hfi_by_hand(vae, x0_of(images), mse01, kernel_size, sigma)
        assert np.all(expected != 0)
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7)


def test_blurred_pass_is_cached_beside_the_shared_first_pass(tiny_model, images):
    cache = ReconstructionCache()
    method = HFIMSE()
    first = method.score(tiny_model, images, cache=cache)
    hits = cache.hits
    again = HFIMSE().score(tiny_model, images, cache=cache)
    assert cache.hits > hits
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, HFIMSE().score(tiny_model, images))
    other = HFIMSE(sigma=2.0).score(tiny_model, images, cache=cache)  # another blur: not the cached one
    np.testing.assert_array_equal(other, HFIMSE(sigma=2.0).score(tiny_model, images))
    assert not np.allclose(other, first)


# ----------------------------------------------------------------------------------------------
# the LPIPS variant


def random_weight_files(folder):
    """LPIPS weight files with torchvision's and the v0.1 heads' key names and shapes, random values."""
    g = torch.Generator().manual_seed(0)
    state, idx, c_in = {}, 0, 3
    for w in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
        if w == "M":
            idx += 1
            continue
        state[f"features.{idx}.weight"] = torch.randn(w, c_in, 3, 3, generator=g) * (2.0 / (9 * c_in)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(w, generator=g) * 0.01
        c_in, idx = w, idx + 2
    heads = {f"lin{k}.model.1.weight": torch.rand(1, w, 1, 1, generator=g) for k, w in enumerate([64, 128, 256, 512, 512])}
    torch.save(state, folder / "vgg16-test.pth")
    torch.save(heads, folder / "vgg.pth")
    return folder / "vgg16-test.pth", folder / "vgg.pth"


def test_hfi_uses_lpips_over_all_five_layers(tiny_model, images, tmp_path, monkeypatch):
    vgg, heads = random_weight_files(tmp_path)
    monkeypatch.setenv(lpips_mod.ENV_VGG16, str(vgg))
    monkeypatch.setenv(lpips_mod.ENV_HEADS, str(heads))
    net = lpips_mod.load_lpips("cpu", lpips_mod.ALL_LAYERS)
    assert net.layers == (1, 2, 3, 4, 5)
    scores = HFI(batch_size=8).score(tiny_model, images)
    expected = BELONGING_SIGN * hfi_by_hand(tiny_kl_vae().eval(), x0_of(images), lambda a, b: net(a, b)[0])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-7)
    layer2 = lpips_mod.load_lpips("cpu", (2,))
    assert not np.allclose(scores, BELONGING_SIGN * hfi_by_hand(tiny_kl_vae().eval(), x0_of(images), lambda a, b: layer2(a, b)[0]))


def test_hfi_without_the_weights_says_so_and_names_the_weight_free_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(lpips_mod.ENV_VGG16, raising=False)
    monkeypatch.delenv(lpips_mod.ENV_HEADS, raising=False)
    monkeypatch.setattr(lpips_mod, "_lpips_package_heads", lambda: None)
    with pytest.raises(lpips_mod.LPIPSWeightsMissing) as err:
        HFI()
    msg = str(err.value)
    assert "vgg16-397923af.pth" in msg and "pip install --no-deps lpips" in msg and "hfi-mse" in msg
    assert isinstance(HFIMSE(), HFIMSE)  # the weight-free variant builds on the same machine


# ----------------------------------------------------------------------------------------------
# options, registration, listing


def test_options_are_checked_and_labelled():
    assert HFIMSE().label == "hfi-mse"
    assert HFIMSE(kernel_size=5, sigma=2.0).label == "hfi-mse(kernel_size=5, sigma=2.0)"
    for bad in ({"kernel_size": 4}, {"sigma": 0.0}, {"kernel_size": "3"}):
        with pytest.raises(aedr.MethodOptionsError, match="hfi-mse"):
            aedr.build_method(HFIMSE, bad)
    cls = aedr.load_plugins().methods.get("hfi-mse")
    assert cls is HFIMSE and cls.needs_grad is False
    assert (cls.cost.encoder_passes, cls.cost.decoder_passes) == (2, 2)


def test_aedr_methods_lists_both(monkeypatch):
    run = cli_runner(aedr.load_plugins(), monkeypatch)
    rows = {r["name"]: r for r in json.loads(run("methods", "--json").stdout)}
    assert {"hfi", "hfi-mse"} <= set(rows)
    assert rows["hfi"]["options"]["kernel_size"] == 3 and rows["hfi-mse"]["options"]["sigma"] == 1.0
    assert rows["hfi"]["plugin"] == rows["hfi-mse"]["plugin"]
    table = run("methods").output
    assert "hfi-mse" in table and "HFI" in table
