"""The paper's eight diffusers models, each on a tiny autoencoder of the same class as the real one
(AutoencoderKL with 4 and 16 latent channels, VQModel, Kandinsky's MoVQ = VQModel with spatial norm),
saved in the pipeline layout and loaded through the registered plugin's own loading path: from a
local folder (``AEDR_MODEL_<KEY>``) and from a Hugging Face cache in offline mode."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import aedr
from aedr.preprocess import group_by_size, target_size, to_model_tensor
from aedr.weights import WeightsUnavailableError, env_var_for
from aedr_diffusers import PAPER_MODELS, SPECS, DiffusersModel

from conftest import photo_crops, tiny_kl_vae


pytestmark = pytest.mark.usefixtures("single_thread")


def tiny_autoencoder(key: str) -> torch.nn.Module:
    """A tiny module of the class (and latent width) of the real model's autoencoder."""
    from diffusers import VQModel

    spec = SPECS[key]
    torch.manual_seed(0)
    if spec.family == "kl":
        return tiny_kl_vae(4)
    if spec.family == "kl16":
        return tiny_kl_vae(16)
    common = dict(
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        layers_per_block=1, latent_channels=4, num_vq_embeddings=64, vq_embed_dim=4,
    )
    if spec.family == "movq":  # SpatialNorm normalises in 32 groups: 32 channels
        return VQModel(**common, block_out_channels=(32, 32), norm_num_groups=8, norm_type="spatial")
    return VQModel(**common, block_out_channels=(8, 16), norm_num_groups=4)


@pytest.fixture(scope="module")
def pipeline_folders(tmp_path_factory) -> dict[str, Path]:
    """One folder per model in the layout of its hub repository: ``<folder>/<subfolder>/config.json``."""
    root = tmp_path_factory.mktemp("paper-models")
    folders = {}
    for spec in PAPER_MODELS:
        folder = root / spec.key
        tiny_autoencoder(spec.key).save_pretrained(folder / spec.subfolder)
        folders[spec.key] = folder
    return folders


@pytest.fixture
def plugins(monkeypatch, pipeline_folders) -> aedr.plugins.Plugins:
    """The registered plugins, every paper model pointed at its tiny folder through the environment."""
    for key, folder in pipeline_folders.items():
        monkeypatch.setenv(env_var_for(key), str(folder))
    return aedr.load_plugins()


def test_all_eight_paper_models_are_registered():
    names = aedr.load_plugins().models.names()
    for key in ("SD1.5", "SD2base", "SD2.1", "SDXL", "SD3.5", "FLUX", "KD2.1", "VQDM"):
        assert key in names
    assert env_var_for("SD1.5") == "AEDR_MODEL_SD1_5" and env_var_for("KD2.1") == "AEDR_MODEL_KD2_1"


def test_specs_follow_the_original():
    assert {s.key: s.subfolder for s in PAPER_MODELS}["KD2.1"] == "movq"
    assert SPECS["VQDM"].subfolder == "vqvae"
    assert SPECS["SD3.5"].dtype == SPECS["FLUX"].dtype == torch.bfloat16
    assert all(SPECS[k].dtype == torch.float32 for k in ("SD1.5", "SD2base", "SD2.1", "SDXL", "KD2.1", "VQDM"))
    assert SPECS["SD3.5"].steps == SPECS["FLUX"].steps == 35 and SPECS["SD1.5"].steps == 50
    assert all(s.guidance == 7.5 for s in PAPER_MODELS)
    assert SPECS["KD2.1"].size_policy.fixed == (512, 512)
    assert SPECS["FLUX"].gated and SPECS["FLUX"].hub_id == "black-forest-labs/FLUX.1-dev"


@pytest.mark.parametrize("key", [s.key for s in PAPER_MODELS])
def test_autoencoder_from_local_folder(plugins, key):
    model = plugins.model(key)
    spec = SPECS[key]
    assert model.availability().local, model.availability()
    ae = model.autoencoder("cpu")
    assert type(ae.module).__name__ == spec.autoencoder_class
    assert ae.dtype == spec.dtype and all(p.dtype == spec.dtype for p in ae.module.parameters())
    assert ae.latent_kind == ("vq" if spec.family in ("vq", "movq") else "kl")

    side = 32
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        post = ae.encode(x)
        z = post.latent("sample", seeds=[3])
        y = ae.decode(z)
    channels = 16 if spec.family == "kl16" else 4
    assert z.shape == (1, channels, side // 2, side // 2)
    assert y.shape == x.shape and y.dtype == spec.dtype
    assert torch.isfinite(y.float()).all() and float(y.float().abs().max()) < 20
    if spec.family in ("vq", "movq"):
        assert post.std is None
        # Decoding snaps the latent to the codebook first, as VQModel.decode does by default
        with torch.no_grad():
            assert torch.allclose(y, ae.decode(ae.quantize(z)), atol=1e-5)
            raw = ae.module.decode(z, force_not_quantize=True).sample
        assert not torch.allclose(y, raw, atol=1e-4)
    else:
        assert post.std is not None


def test_size_rules(plugins):
    odd = aedr.LoadedImage.from_array(np.zeros((52, 36, 3), np.uint8), "odd")
    big = aedr.LoadedImage.from_array(np.zeros((300, 200, 3), np.uint8), "big")
    sd = plugins.model("SD2base").autoencoder("cpu")
    # each side to round(side / 8) * 8 with Python's rounding: 36 / 8 = 4.5 -> 4, 52 / 8 = 6.5 -> 6
    assert target_size(odd, sd.size_policy) == (32, 48)
    assert target_size(big, sd.size_policy) == (200, 304)  # 37.5 -> 38
    kd = plugins.model("KD2.1").autoencoder("cpu")
    assert target_size(odd, kd.size_policy) == target_size(big, kd.size_policy) == (512, 512)
    assert group_by_size([odd, big], kd.size_policy) == {(512, 512): [0, 1]}
    x = to_model_tensor([odd], (512, 512))
    assert x.shape == (1, 3, 512, 512) and -1 <= float(x.min()) and float(x.max()) <= 1


@pytest.mark.parametrize("key", ["SD2base", "SD3.5", "VQDM", "KD2.1"])
def test_aedr_runs_on_each_family(plugins, key, pipeline_folders):
    """One model per autoencoder family (kl, kl16 in bf16, vq, movq), on images of mixed sizes."""
    images = photo_crops(2, size=32, seed=4) + [aedr.LoadedImage.from_array(photo_crops(1, size=52, seed=5)[0].rgb[:, :36], "odd")]
    model = plugins.model(key)
    if key == "KD2.1":  # the same MoVQ folder at 64x64 instead of 512x512, which is slow on a CPU
        spec = dataclasses.replace(SPECS[key], size_policy=aedr.SizePolicy(fixed=(64, 64)))
        model = DiffusersModel(spec, source=pipeline_folders[key])
    method = aedr.get_method("aedr", batch_size=2)
    scores = method.score(model, images)
    assert scores.shape == (len(images),) and scores.dtype == np.float64
    assert np.isfinite(scores).all() and (scores > 0).all()


def test_bf16_module_float32_losses(plugins):
    """FLUX runs its autoencoder in bf16 and AEDR's losses are taken in float32 on its outputs."""
    model = plugins.model("FLUX")
    ae = model.autoencoder("cpu")
    assert ae.dtype == torch.bfloat16
    images = photo_crops(2, size=32, seed=7)  # an even batch, as AEDR runs it
    ratio = aedr.get_method("aedr", calibrate=False, latent="mean").score(model, images)[0]
    x0 = to_model_tensor(images, (32, 32))
    with torch.no_grad():
        x1 = ae.decode(ae.encode(x0).mean).contiguous()  # as the shared first pass gives it, cached or not
        x2 = ae.decode(ae.encode(x1).mean)
    assert x1.dtype == torch.bfloat16
    x0, x1, x2 = x0[:1], x1[:1], x2[:1]
    l1 = torch.mean((x1.float() - x0) ** 2)
    l2 = torch.mean((x2.float() - x1.float()) ** 2)
    assert ratio == pytest.approx(float(l1 / l2), rel=1e-6)
    bf16_ratio = float(torch.mean((x1 - x0.bfloat16()) ** 2) / torch.mean((x2 - x1) ** 2))
    assert ratio != bf16_ratio


def test_dtype_override(plugins):
    assert plugins.model("FLUX").autoencoder("cpu", torch.float32).dtype == torch.float32
    assert plugins.model("SD2.1").autoencoder("cpu", torch.bfloat16).dtype == torch.bfloat16
    # SDXL's VAE overflows in float16: upcast to float32, as diffusers' pipelines do
    assert plugins.model("SDXL").autoencoder("cpu", torch.float16).dtype == torch.float32
    assert plugins.model("SDXL").autoencoder("cpu", torch.bfloat16).dtype == torch.bfloat16


def test_autoencoder_folder_itself_and_source_argument(pipeline_folders):
    """A folder holding the autoencoder alone works as well as the pipeline folder."""
    model = DiffusersModel(SPECS["VQDM"], source=pipeline_folders["VQDM"] / "vqvae")
    assert model.availability().local
    assert model.autoencoder("cpu").latent_kind == "vq"


def _fake_hub_cache(cache: Path, repo_id: str, subfolder: str, module: torch.nn.Module) -> None:
    """The layout huggingface_hub keeps for a downloaded repository (revision main)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    module.save_pretrained(repo / "snapshots" / commit / subfolder)


@pytest.fixture
def offline_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache in offline mode (huggingface_hub's and diffusers' own switches)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for spec in PAPER_MODELS:
        monkeypatch.delenv(env_var_for(spec.key), raising=False)
    return cache


def test_hub_id_from_the_cache_offline(offline_cache):
    spec = SPECS["SD2base"]
    model = DiffusersModel(spec)
    assert not model.availability().local
    _fake_hub_cache(offline_cache, spec.hub_id, spec.subfolder, tiny_autoencoder("SD2base"))
    assert model.availability().local and "HF cache" in model.availability().detail
    ae = model.autoencoder("cpu")
    assert type(ae.module).__name__ == "AutoencoderKL"


def test_sd15_former_id_used_when_only_it_is_cached(offline_cache):
    spec = SPECS["SD1.5"]
    assert DiffusersModel(spec).source.value == spec.hub_id
    _fake_hub_cache(offline_cache, "runwayml/stable-diffusion-v1-5", "vae", tiny_autoencoder("SD1.5"))
    model = DiffusersModel(spec)
    assert model.source.value == "runwayml/stable-diffusion-v1-5" and model.availability().local
    model.autoencoder("cpu")


def test_mirror_id_from_environment(offline_cache, monkeypatch):
    _fake_hub_cache(offline_cache, "someone/sd21-mirror", "vae", tiny_autoencoder("SD2.1"))
    monkeypatch.setenv("AEDR_MODEL_SD2_1", "someone/sd21-mirror")
    model = DiffusersModel(SPECS["SD2.1"])
    assert model.source.origin == "environment" and model.availability().local
    assert model.autoencoder("cpu").latent_kind == "kl"


def test_missing_weights_error_says_which_id_and_how(offline_cache):
    with pytest.raises(WeightsUnavailableError) as err:
        DiffusersModel(SPECS["FLUX"]).autoencoder("cpu")
    text = str(err.value)
    for needle in ("'FLUX'", "black-forest-labs/FLUX.1-dev", "subfolder 'vae'", "gated", "hf auth login", "HF_TOKEN",
                   "AEDR_MODEL_FLUX", "HF_HUB_OFFLINE", "not in the local cache", "mirror"):
        assert needle in text, needle
    with pytest.raises(WeightsUnavailableError) as err:
        DiffusersModel(SPECS["VQDM"]).autoencoder("cpu")
    assert "microsoft/vq-diffusion-ithq" in str(err.value) and "gated" not in str(err.value)


def test_missing_local_folder(tmp_path):
    model = DiffusersModel(SPECS["SDXL"], source=tmp_path / "nowhere")
    assert not model.availability().local and "does not exist" in model.availability().detail
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError, match="has no .*vae/config.json"):
        DiffusersModel(SPECS["SDXL"], source=tmp_path / "empty").autoencoder("cpu")


def test_calibration_images_folder_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("AEDR_IMAGES_SD2BASE", raising=False)
    model = DiffusersModel(SPECS["SD2base"])
    assert model.calibration.generate == 500 and model.can_generate
    monkeypatch.setenv("AEDR_IMAGES_SD2BASE", str(tmp_path))
    # runs take the model's images from the folder instead of generating them
    assert model.calibration.folder == tmp_path and not model.can_generate


def test_saved_config_class_matches_spec(pipeline_folders):
    for spec in PAPER_MODELS:
        config = json.loads((pipeline_folders[spec.key] / spec.subfolder / "config.json").read_text())
        assert config["_class_name"] == spec.autoencoder_class
