"""The generator code path on a tiny Stable Diffusion pipeline built from tiny configs (random weights,
a byte-level CLIP tokenizer without merges), saved to a folder and loaded through the SD1.5 plugin
exactly as the real pipeline is: ``aedr generate`` writes NNN.png, one seed per image.

Needs ``transformers`` (the text encoder and tokenizer); skipped without it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers", reason="the tiny pipeline needs transformers (CLIP text encoder)")

import aedr  # noqa: E402
from aedr_diffusers import SPECS, DiffusersModel, Prompt, write_prompt_file  # noqa: E402


pytestmark = pytest.mark.usefixtures("single_thread")


def byte_symbols() -> list[str]:
    """The 256 printable symbols byte-level BPE uses for bytes: printable Latin-1 bytes stand for
    themselves, the others are shifted to code points from 256 on."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), 256)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(shifted)) for b in range(256)]


def byte_level_clip_tokenizer(folder: Path):
    """A CLIP tokenizer whose vocabulary is the 256 byte symbols (plus end-of-word forms): no merges."""
    from transformers import CLIPTokenizer

    symbols = byte_symbols()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer.from_pretrained(folder, model_max_length=16)


@pytest.fixture(scope="module")
def tiny_sd_folder(tmp_path_factory) -> Path:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = tmp_path_factory.mktemp("tiny-sd")
    tokenizer = byte_level_clip_tokenizer(root / "tok-src")
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=16,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
        projection_dim=16, max_position_embeddings=16,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    folder = root / "stable-diffusion-v1-5"
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture
def sd15(monkeypatch, tiny_sd_folder) -> DiffusersModel:
    """The registered SD1.5 plugin, pointed at the tiny pipeline: the original's 50 steps."""
    monkeypatch.setenv("AEDR_MODEL_SD1_5", str(tiny_sd_folder))
    monkeypatch.delenv("AEDR_IMAGES_SD1_5", raising=False)
    return aedr.load_plugins().model("SD1.5")


@pytest.fixture(scope="module")
def fast_sd15(tiny_sd_folder) -> DiffusersModel:
    """The same with 3 steps, for the checks that do not depend on the step count."""
    return DiffusersModel(dataclasses.replace(SPECS["SD1.5"], steps=3), source=tiny_sd_folder)


def test_pipeline_runs_with_the_original_settings(sd15):
    assert sd15.can_generate and sd15.spec.steps == 50 and sd15.spec.guidance == 7.5
    image = sd15.generate(1, seed=0, prompts=["a cat"])[0]
    pipe = sd15.pipeline("cpu")
    assert type(pipe).__name__ == "StableDiffusionPipeline" and pipe.safety_checker is None
    assert len(pipe.scheduler.timesteps) == 50 and pipe.guidance_scale == 7.5
    assert image.size == (16, 16)  # the pipeline's default size: unet sample size x VAE factor


def test_generate_one_seed_per_image(fast_sd15):
    sd15 = fast_sd15
    images = sd15.generate(2, seed=3, prompts=["a red cube", "a blue sphere"])
    assert [im.size for im in images] == [(16, 16), (16, 16)]  # the pipeline's default size
    assert all(im.mode == "RGB" for im in images)
    again = sd15.generate(1, seed=4, prompts=["a blue sphere"])[0]
    assert np.array_equal(np.asarray(again), np.asarray(images[1]))  # image i depends on seed + i only
    other = sd15.generate(1, seed=5, prompts=["a blue sphere"])[0]
    assert not np.array_equal(np.asarray(other), np.asarray(images[1]))


def test_prompt_file_prompt_follows_the_seed(fast_sd15, monkeypatch, tmp_path):
    """Without prompts, image seed s uses prompt s mod N of AEDR_PROMPT_FILE, however calls are batched."""
    write_prompt_file(tmp_path / "P.txt", [Prompt("001", "a cat"), Prompt("002", "a dog"), Prompt("003", "a cow")])
    monkeypatch.setenv("AEDR_PROMPT_FILE", str(tmp_path / "P.txt"))
    from_file = fast_sd15.generate(1, seed=5)[0]
    explicit = fast_sd15.generate(1, seed=5, prompts=["a cow"])[0]
    assert np.array_equal(np.asarray(from_file), np.asarray(explicit))


def test_generated_images_score_under_the_pipeline_autoencoder(fast_sd15):
    """The autoencoder comes from the same pipeline folder (its vae subfolder)."""
    images = [aedr.LoadedImage.from_pil(fast_sd15.generate(1, seed=0, prompts=["x"])[0], "g0")]
    scores = aedr.get_method("aedr").score(fast_sd15, images)
    assert np.isfinite(scores).all() and (scores > 0).all()


def test_autoencoder_only_folder_cannot_generate(tiny_sd_folder):
    model = DiffusersModel(SPECS["SD1.5"], source=tiny_sd_folder / "vae")
    assert model.availability().local
    with pytest.raises(OSError, match="model_index.json"):
        model.generate(1, prompts=["x"])


def test_generate_command_writes_numbered_pngs_and_resumes(sd15, tmp_path):
    import typer
    from typer.testing import CliRunner

    from aedr_diffusers.commands import add_commands

    app = typer.Typer()
    add_commands(app)
    prompts = write_prompt_file(tmp_path / "Prompt.txt", [Prompt("001", "a cat"), Prompt("002", "a dog"), Prompt("003", "a cow")])
    out = tmp_path / "SD1.5"
    args = ["generate", "SD1.5", "--prompts", str(prompts), "--out", str(out), "--device", "cpu", "--seed", "7", "--limit", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png"]
    expected = sd15.generate(1, seed=8, prompts=["a dog"])[0]
    assert np.array_equal(np.asarray(aedr.load_image(out / "002.png").rgb), np.asarray(expected))
    before = (out / "001.png").stat().st_mtime_ns
    result = CliRunner().invoke(app, args[:-2])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["001.png", "002.png", "003.png"]
    assert (out / "001.png").stat().st_mtime_ns == before
