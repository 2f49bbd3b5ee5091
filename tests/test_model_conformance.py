"""Properties every registered model must have, checked for each one (built-in and plugins alike),
as tests/test_method_conformance.py does for methods:

- it describes itself: a name matching its registration, a family, a description, a native size, a
  calibration source it can serve, and an availability with a reason when the weights are absent;
- its autoencoder loads when it says it is available, and its size policy, dtype and latent kind
  are consistent with what encode and decode return;
- encode / decode keep the batch, the image size and the channel count, decode to about [-1, 1],
  reconstruct an image closer to itself than to another image, and do so deterministically;
- the declared ``scaling_factor`` / ``shift_factor`` map latents there and back exactly;
- ``quantizes()`` and ``decode(quantize=...)`` agree (VQ), or are a no-op (continuous latents);
- ``generate()`` (where the model has a generator): n RGB images of the native size, image i
  depending only on ``seed + i``.

A model whose weights are not on this machine (``availability().local`` is False, or loading raises
:class:`aedr.WeightsUnavailableError`) is skipped with its reason; nothing is downloaded.
A newly installed model plugin is included automatically.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import aedr
from aedr.weights import WeightsUnavailableError
from aedr.preprocess import to_model_tensor

from conftest import photo_crops

pytestmark = pytest.mark.usefixtures("single_thread")

PLUGINS = aedr.load_plugins()
MODELS = PLUGINS.models.names()

# decode() is not clamped: a good autoencoder overshoots [-1, 1] a little on sharp edges.
RANGE_SLACK = 0.5

_autoencoders: dict[str, aedr.Autoencoder] = {}


def model_of(name: str) -> aedr.ModelPlugin:
    return PLUGINS.models.get(name)


def autoencoder_of(name: str) -> aedr.Autoencoder:
    """The model's CPU autoencoder, or a skip saying why its weights are not here."""
    if name not in _autoencoders:
        model = model_of(name)
        available = model.availability()
        if not available.local:
            pytest.skip(f"{name}: weights not here: {available.detail}")
        try:
            _autoencoders[name] = model.autoencoder("cpu")
        except WeightsUnavailableError as exc:
            pytest.skip(f"{name}: weights unavailable: {str(exc).splitlines()[0]}")
    return _autoencoders[name]


def input_size(policy: aedr.SizePolicy) -> tuple[int, int]:
    """A small (width, height) the policy keeps as it is: not square, so that a swapped width and
    height shows, and at least 32 pixels (and ``min_side``) per side."""
    if policy.fixed is not None:
        return policy.fixed
    m = policy.multiple
    side = math.ceil(max(32, policy.min_side) / m) * m
    return side + m, side


def inputs(ae: aedr.Autoencoder, n: int = 2, seed: int = 3) -> torch.Tensor:
    crops = photo_crops(n, 48, seed=seed)  # resized to the input size (a fixed 512x512 included)
    return to_model_tensor(crops, input_size(ae.size_policy)).to(ae.device, ae.dtype)


_cache: dict[str, tuple[torch.Tensor, aedr.Posterior, torch.Tensor]] = {}


def encoded(name: str) -> tuple[torch.Tensor, aedr.Posterior, torch.Tensor]:
    """(input, posterior, decoded posterior mean) for two photo crops, computed once per model."""
    if name not in _cache:
        ae = autoencoder_of(name)
        x = inputs(ae)
        with torch.no_grad():
            post = ae.encode(x)
            _cache[name] = (x, post, ae.decode(post.mean))
    return _cache[name]


def test_every_shipped_model_family_is_registered():
    families = {model_of(n).family for n in MODELS}
    assert {"kl", "kl16", "tiny", "vq", "movq"} <= families, families


@pytest.mark.parametrize("name", MODELS)
def test_describes_itself(name):
    model = model_of(name)
    assert isinstance(model, aedr.ModelPlugin)
    assert model.name == name
    for attr in ("family", "description"):
        value = getattr(model, attr)
        assert isinstance(value, str) and value.strip(), (attr, value)
    assert model.native_size is None or (isinstance(model.native_size, int) and model.native_size > 0)
    assert isinstance(model.can_generate, bool)
    assert name in repr(model)


@pytest.mark.parametrize("name", MODELS)
def test_availability_says_why_not(name):
    available = model_of(name).availability()
    assert isinstance(available, aedr.Availability)
    assert isinstance(available.local, bool)
    assert isinstance(available.detail, str)
    if not available.local:
        assert available.detail.strip(), "a model whose weights are absent must say what is missing"


@pytest.mark.parametrize("name", MODELS)
def test_calibration_source_can_be_served(name):
    model = model_of(name)
    source = model.calibration
    assert isinstance(source, aedr.CalibrationSource)
    assert isinstance(source.describe(), str)
    if source.generate is not None:
        assert isinstance(source.generate, int) and source.generate > 0, source
        assert model.can_generate, f"{name} calibrates on generated images but has no generator"
    if source.folder is not None:
        assert hasattr(source.folder, "is_dir"), f"calibration folder must be a Path: {source.folder!r}"


@pytest.mark.parametrize("name", MODELS)
def test_available_model_loads_once_per_device_and_dtype(name):
    ae = autoencoder_of(name)  # availability().local said True: loading must not fail
    assert isinstance(ae, aedr.Autoencoder)
    assert model_of(name).autoencoder("cpu") is ae


@pytest.mark.parametrize("name", MODELS)
def test_size_policy(name):
    policy = autoencoder_of(name).size_policy
    assert isinstance(policy, aedr.SizePolicy)
    assert policy.min_side >= 1
    if policy.fixed is not None:
        assert policy.target_size(37, 91) == policy.fixed
        return
    m = policy.multiple
    assert m >= 1
    for w, h in ((37, 91), (64, 64), (m * 5 + 1, m * 3 - 1)):
        tw, th = policy.target_size(w, h)
        assert tw % m == 0 and th % m == 0, (w, h, tw, th)
        assert abs(tw - w) <= m / 2 and abs(th - h) <= m / 2, (w, h, tw, th)
    w, h = input_size(policy)
    assert policy.target_size(w, h) == (w, h), "a size that is already a multiple is kept"


@pytest.mark.parametrize("name", MODELS)
def test_dtype_and_device(name):
    ae = autoencoder_of(name)
    assert isinstance(ae.dtype, torch.dtype) and ae.dtype.is_floating_point
    assert ae.device == torch.device("cpu")
    x, post, y = encoded(name)
    assert post.mean.dtype == ae.dtype
    assert y.dtype == ae.dtype


@pytest.mark.parametrize("name", MODELS)
def test_encode_and_decode_shapes(name):
    ae = autoencoder_of(name)
    x, post, y = encoded(name)
    assert ae.latent_kind in ("kl", "vq", "deterministic")
    assert post.mean.ndim == 4 and post.mean.shape[0] == x.shape[0]
    if ae.latent_kind == "kl":
        assert post.std is not None and post.std.shape == post.mean.shape
        assert torch.all(post.std >= 0)
    else:
        assert post.std is None, "deterministic and VQ encoders have no posterior spread"
    assert y.shape == x.shape, (tuple(x.shape), tuple(y.shape))


@pytest.mark.parametrize("name", MODELS)
def test_decodes_to_the_image_range_and_reconstructs(name):
    x, post, y = encoded(name)
    assert torch.all(torch.isfinite(y))
    assert -1 - RANGE_SLACK <= float(y.min()) and float(y.max()) <= 1 + RANGE_SLACK, (float(y.min()), float(y.max()))
    own = (y - x).abs().mean(dim=(1, 2, 3))
    other = (y - x.flip(0)).abs().mean(dim=(1, 2, 3))
    assert torch.all(own < other), f"reconstructions are not closer to their own inputs: {own} vs {other}"


@pytest.mark.parametrize("name", MODELS)
def test_deterministic(name):
    ae = autoencoder_of(name)
    x, post, y = encoded(name)
    with torch.no_grad():
        again = ae.encode(x)
        torch.testing.assert_close(again.mean, post.mean, rtol=0, atol=0)
        torch.testing.assert_close(ae.decode(post.mean), y, rtol=0, atol=0)
        if post.std is not None:
            seeds = [11, 12]
            torch.testing.assert_close(post.latent("sample", seeds), again.latent("sample", seeds), rtol=0, atol=0)
            assert not torch.equal(post.latent("sample", seeds), post.latent("sample", [13, 14]))


@pytest.mark.parametrize("name", MODELS)
def test_latent_scaling_round_trip(name):
    ae = autoencoder_of(name)
    _, post, _ = encoded(name)
    z = post.mean.float()
    channels = z.shape[1]
    for factor in (ae.scaling_factor, ae.shift_factor):
        if isinstance(factor, tuple):
            assert len(factor) == channels, f"per-channel factor for {channels} channels: {factor}"
        else:
            assert isinstance(factor, (int, float)) and math.isfinite(factor)
    assert np.all(np.asarray(ae.scaling_factor, dtype=float) != 0)
    s = ae.to_scaled(z)
    assert s.shape == z.shape
    torch.testing.assert_close(ae.from_scaled(s), z, rtol=1e-5, atol=1e-5)
    c = torch.as_tensor(ae.scaling_factor, dtype=z.dtype).view(1, -1, 1, 1) if isinstance(ae.scaling_factor, tuple) else ae.scaling_factor
    b = torch.as_tensor(ae.shift_factor, dtype=z.dtype).view(1, -1, 1, 1) if isinstance(ae.shift_factor, tuple) else ae.shift_factor
    torch.testing.assert_close(s, (z - b) * c, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_quantize_option(name):
    ae = autoencoder_of(name)
    _, post, y = encoded(name)
    z = post.mean
    with torch.no_grad():
        if ae.latent_kind != "vq":
            assert not any(ae.quantizes(q) for q in (None, True, False))
            assert torch.equal(ae.quantize(z), z)
            torch.testing.assert_close(ae.decode(z, quantize=True), y, rtol=0, atol=0)
            torch.testing.assert_close(ae.decode(z, quantize=False), y, rtol=0, atol=0)
            return
        assert ae.quantizes(None) == ae.quantize_on_decode
        assert ae.quantizes(True) and not ae.quantizes(False)
        q = ae.quantize(z)
        assert q.shape == z.shape
        torch.testing.assert_close(ae.quantize(q), q, rtol=0, atol=1e-6)
        assert not torch.equal(q, z), "quantising a raw encoder output changes it"
        snapped, raw = ae.decode(z, quantize=True), ae.decode(z, quantize=False)
        torch.testing.assert_close(snapped, ae.decode(q, quantize=False), rtol=1e-5, atol=1e-5)
        assert not torch.equal(snapped, raw)
        torch.testing.assert_close(y, snapped if ae.quantize_on_decode else raw, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_generate_contract(name):
    model = model_of(name)
    if not model.can_generate:
        with pytest.raises(NotImplementedError):
            model.generate(1)
        return
    autoencoder_of(name)  # skips when the weights are not here
    images = model.generate(2, seed=5)
    assert isinstance(images, list) and len(images) == 2
    for im in images:
        assert isinstance(im, Image.Image) and im.mode == "RGB"
    sizes = {im.size for im in images}
    assert len(sizes) == 1
    if model.native_size is not None:
        assert sizes == {(model.native_size, model.native_size)}
    [second] = model.generate(1, seed=6)
    np.testing.assert_array_equal(np.asarray(second), np.asarray(images[1]), err_msg="image i depends only on seed + i")
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
