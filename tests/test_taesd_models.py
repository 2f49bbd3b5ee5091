"""The TAESD family plugins: registration, the diffusers ``AutoencoderTiny`` models loaded through the
plugin's own path (local folder, offline hub cache), and this package's TAESD-architecture module
checked against diffusers' independent implementation of the same network."""

from __future__ import annotations

import pytest
import torch

import aedr
from aedr.weights import WeightsUnavailableError
from aedr_taesd import TINY_MODELS, TAEF2Model, TinyAutoencoder, TinyDiffusersModel, decoder, encoder

from conftest import photo_crops

SPECS = {s.key: s for s in TINY_MODELS}


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_autoencoder_tiny(latent_channels: int, width: int = 8, blocks: int | None = 1):
    """diffusers' AutoencoderTiny; ``width=64, blocks=None`` is the published TAESD layout."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(latent_channels)
    layout = {} if blocks is None else dict(num_encoder_blocks=(blocks,) * 4, num_decoder_blocks=(blocks,) * 4)
    return AutoencoderTiny(
        latent_channels=latent_channels,
        encoder_block_out_channels=(width,) * 4, decoder_block_out_channels=(width,) * 4, **layout,
    )


def test_family_is_registered_without_generators():
    models = aedr.load_plugins().models
    for key in ("taesd", "taesdxl", "taesd3", "taef1", "taef2"):
        model = models.get(key)
        assert model.family == "tiny" and not model.can_generate
        assert model.calibration.folder is None and not model.calibration.generate
    assert "FLUX.1" in models.get("taef1").description and "SDXL" in models.get("taesdxl").description


@pytest.mark.parametrize("key", [s.key for s in TINY_MODELS])
def test_autoencoder_tiny_from_local_folder(monkeypatch, tmp_path, key):
    spec = SPECS[key]
    tiny_autoencoder_tiny(spec.latent_channels).save_pretrained(tmp_path / key)
    monkeypatch.setenv(f"AEDR_MODEL_{key.upper()}", str(tmp_path / key))
    model = aedr.load_plugins().model(key)
    assert model.availability().local
    ae = model.autoencoder("cpu")
    assert ae.latent_kind == "deterministic" and ae.dtype == torch.float32
    x = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x).latent("sample", seeds=[1, 2])
        y = ae.decode(z)
    assert z.shape == (2, spec.latent_channels, 4, 5) and y.shape == x.shape
    # diffusers' AutoencoderTiny maps [-1, 1] to its own [0, 1] and back: the plugin passes [-1, 1] through
    with torch.no_grad():
        assert torch.equal(z, ae.module.encoder.layers(x * 0.5 + 0.5))
    assert aedr.get_method("aedr").score(model, photo_crops(2, size=32, seed=9)).shape == (2,)


def test_hub_id_offline_error_and_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("AEDR_MODEL_TAESDXL", raising=False)
    model = TinyDiffusersModel(SPECS["taesdxl"])
    assert not model.availability().local
    with pytest.raises(WeightsUnavailableError) as err:
        model.autoencoder("cpu")
    assert "madebyollin/taesdxl" in str(err.value) and "AEDR_MODEL_TAESDXL" in str(err.value)
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "models--madebyollin--taesdxl"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    tiny_autoencoder_tiny(4).save_pretrained(repo / "snapshots" / commit)
    assert model.availability().local
    assert model.autoencoder("cpu").latent_kind == "deterministic"


def test_own_module_matches_diffusers_autoencoder_tiny():
    """Without the pool branch, the module is TAESD: with the same weights it computes what diffusers'
    AutoencoderTiny computes (the decoder's Clamp is module 0 here, inside ``forward`` in diffusers)."""
    reference = tiny_autoencoder_tiny(4, width=64, blocks=None).eval()
    enc, dec = encoder(4, pool=False), decoder(4, pool=False)
    enc.load_state_dict({k.removeprefix("encoder.layers."): v for k, v in reference.state_dict().items() if k.startswith("encoder.")}, strict=True)
    dec_state = {}
    for k, v in reference.state_dict().items():
        if k.startswith("decoder.layers."):
            index, rest = k.removeprefix("decoder.layers.").split(".", 1)
            dec_state[f"{int(index) + 1}.{rest}"] = v
    dec.load_state_dict(dec_state, strict=True)
    ours = TinyAutoencoder(enc, dec)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        z_ref = reference.encode(x).latents
        y_ref = reference.decode(z_ref).sample
        z = ours.encode(x).mean
        y = ours.decode(z)
    torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)


def test_taef2_architecture_shapes_without_weights():
    enc, dec = encoder(32, pool=True), decoder(32, pool=True)
    assert sum("pool" in k for k in enc.state_dict()) == sum("pool" in k for k in dec.state_dict()) == 12
    ae = TinyAutoencoder(enc, dec)
    with torch.no_grad():
        z = ae.encode(torch.zeros(1, 3, 24, 40)).mean
        y = ae.decode(z)
    assert z.shape == (1, 32, 3, 5) and y.shape == (1, 3, 24, 40)
    assert z.is_contiguous() and y.is_contiguous()


def test_taef2_calibration_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AEDR_IMAGES_TAEF2", str(tmp_path))
    assert TAEF2Model().calibration.folder == tmp_path


def test_weights_come_from_the_core_not_from_another_plugin():
    """The family finds its weights through aedr.weights alone: importing it loads no other plugin,
    and the core module itself imports neither torch nor huggingface_hub."""
    import subprocess
    import sys

    code = (
        "import sys, aedr.weights; heavy = [m for m in ('torch', 'huggingface_hub', 'diffusers') if m in sys.modules]; "
        "assert not heavy, heavy; import aedr_taesd.models; assert 'aedr_diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_taef2_folder_from_argument_environment_or_default(monkeypatch, tmp_path):
    monkeypatch.delenv("AEDR_MODEL_TAEF2", raising=False)
    assert TAEF2Model().folder()[1] == "default"
    monkeypatch.setenv("AEDR_MODEL_TAEF2", str(tmp_path / "env"))
    assert TAEF2Model().folder() == (tmp_path / "env", "AEDR_MODEL_TAEF2")
    assert TAEF2Model(folder=tmp_path / "arg").folder() == (tmp_path / "arg", "argument")
    with pytest.raises(WeightsUnavailableError, match="AEDR_MODEL_TAEF2"):
        TAEF2Model().autoencoder("cpu")
