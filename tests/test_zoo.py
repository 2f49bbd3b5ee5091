"""The embedded model zoo: every registered ``zoo-*`` model loads from its shipped, checksummed
weights, reconstructs real evaluation crops at its documented PSNR, generates reproducibly, and is
told apart from real photographs by AEDR."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import aedr
from aedr_zoo import data, quality
from aedr_zoo.evaluate import reconstruction_psnr
from aedr_zoo.latents import channel_tensor, denormalise, normalise
from aedr_zoo.store import CHECKSUM_FILE, ChecksumError, verify_model
from aedr_zoo.zoo import ZooModel

PLUGINS = aedr.load_plugins()
ZOO_NAMES = sorted(n for n in PLUGINS.models.names() if n.startswith("zoo-"))
PSNR_TOLERANCE_DB = 0.5
MIN_AUC = 0.8

# The zoo's tensors are tiny (32x32 images, 8x8 latents): one thread is fastest, and it keeps a
# busy CPU from making threads wait on each other.
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module", params=ZOO_NAMES)
def model(request) -> ZooModel:
    return PLUGINS.model(request.param)


def test_zoo_covers_the_autoencoder_families():
    assert len(ZOO_NAMES) >= 6
    families = [PLUGINS.model(n).family for n in ZOO_NAMES]
    assert families.count("kl") >= 2 and {"kl16", "tiny", "vq", "movq"} <= set(families)
    plugin_errors = {k: v.errors for k, v in PLUGINS.info.items() if k == "zoo" and v.errors}
    assert not plugin_errors


def test_twin_kl_models_share_the_architecture():
    a, b = (PLUGINS.model(n) for n in ("zoo-kl-a", "zoo-kl-b"))
    assert a.spec.ae == b.spec.ae and a.spec.unet == b.spec.unet
    assert a.spec.ae_training == b.spec.ae_training and a.spec.unet_training == b.spec.unet_training
    assert (a.spec.seed, a.spec.data_seed) != (b.spec.seed, b.spec.data_seed)
    ka = a.autoencoder().module.state_dict()
    kb = b.autoencoder().module.state_dict()
    assert ka.keys() == kb.keys() and all(ka[k].shape == kb[k].shape for k in ka)
    assert not torch.equal(ka["decoder.conv_out.weight"], kb["decoder.conv_out.weight"])


def test_the_shared_autoencoder_sibling_is_its_parents_autoencoder_bit_for_bit():
    parent, sibling = (PLUGINS.model(n) for n in ("zoo-kl-a", "zoo-kl-a-ckpt"))
    assert sibling.spec.relation == "shared-autoencoder" and sibling.spec.parent == parent.name
    files = [p.name for p in sorted((parent.folder / "autoencoder").iterdir())]
    assert files and all((parent.folder / "autoencoder" / f).read_bytes() == (sibling.folder / "autoencoder" / f).read_bytes() for f in files)
    assert parent.meta["latent_shift"] == sibling.meta["latent_shift"] and parent.meta["latent_scale"] == sibling.meta["latent_scale"]
    assert parent.autoencoder_fingerprint() == sibling.autoencoder_fingerprint()  # computed from the weights: one autoencoder
    assert parent.fingerprint() != sibling.fingerprint()  # its own denoiser
    assert (parent.folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() != \
        (sibling.folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()


def test_the_decoder_finetuned_sibling_keeps_its_parents_encoder_and_denoiser():
    parent, sibling = (PLUGINS.model(n) for n in ("zoo-kl-a", "zoo-kl-a-ftdec"))
    assert sibling.spec.relation == "decoder-finetune" and sibling.spec.parent == parent.name
    mine, theirs = sibling.autoencoder().module.state_dict(), parent.autoencoder().module.state_dict()
    frozen = [k for k in theirs if k.startswith(("encoder.", "quant_conv."))]
    assert frozen and all(torch.equal(mine[k], theirs[k]) for k in frozen)  # the same encoder, so the same latent space
    assert not torch.equal(mine["decoder.conv_out.weight"], theirs["decoder.conv_out.weight"])
    assert (parent.folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (sibling.folder / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    assert parent.autoencoder_fingerprint() != sibling.autoencoder_fingerprint()


def test_every_two_zoo_models_have_a_recorded_sample_distance():
    models = [PLUGINS.model(n) for n in ZOO_NAMES]
    for a in models:
        for b in models:
            if a is not b:
                d = a.sample_distance(b)
                assert d is not None and d == b.sample_distance(a)  # the bench's hard pairs need every one
    assert models[0].sample_distance(aedr.get_model("taesd")) is None  # a model outside the zoo: unknown


def test_real_sets_are_registered_and_split_by_photograph():
    sets = {n: PLUGINS.dataset(n) for n in ("zoo-real-train", "zoo-real-cal", "zoo-real-eval")}
    assert all(s.kind == "real" for s in sets.values())
    sources = {split: set(data.split_data(split).sources) for split in data.SPLITS}
    assert not (sources["train"] & sources["cal"]) and not (sources["train"] & sources["eval"])
    assert not (sources["cal"] & sources["eval"])
    ev = sets["zoo-real-eval"].images()
    assert len(ev) == len(data.split_data("eval")) and ev[0].rgb.shape == (data.RESOLUTION, data.RESOLUTION, 3)
    again = data.crop_source(next(s for s in data.SOURCES if s.split == "eval"), 4)
    assert np.array_equal(again, data.split_data("eval").images[:4])


def test_loads_from_shipped_weights(model):
    assert model.availability().local
    verify_model(model.name, model.weights_dir)
    ae = model.autoencoder()
    assert isinstance(ae, aedr.DiffusersAutoencoder)
    assert type(ae.module).__name__ == model.spec.ae.cls
    assert ae.size_policy.multiple == model.spec.ae.downsample
    x = torch.zeros(1, 3, data.RESOLUTION, data.RESOLUTION)
    assert tuple(ae.encode(x).mean.shape[1:]) == tuple(model.meta["latent_shape"])


def test_reconstructs_real_images_at_documented_psnr(model):
    psnr = reconstruction_psnr(model.autoencoder(), data.split_data("eval").images)
    documented = model.meta["psnr_eval"]
    assert documented >= 24.0
    assert psnr >= documented - PSNR_TOLERANCE_DB


# 64 + 64 images: the AUC's standard error is then about 0.03 (at 32 + 32 it is about 0.05, enough
# to put a model whose AUC measured on 128 + 128 images is 0.89 below 0.8 by chance).
N_GENERATED = 64
GEN_SEED = 1000
_generated: dict[str, list[np.ndarray]] = {}


def generated(model: ZooModel) -> list[np.ndarray]:
    """The model's images for seeds GEN_SEED ... GEN_SEED + N_GENERATED - 1, generated once per session."""
    if model.name not in _generated:
        _generated[model.name] = [np.asarray(im) for im in model.generate(N_GENERATED, seed=GEN_SEED)]
    return _generated[model.name]


def test_same_seed_same_images(model):
    images = generated(model)
    assert all(im.shape == (data.RESOLUTION, data.RESOLUTION, 3) and im.dtype == np.uint8 for im in images)
    again = [np.asarray(im) for im in model.generate(3, seed=GEN_SEED)]
    shifted = [np.asarray(im) for im in model.generate(2, seed=GEN_SEED + 1)]
    assert all(np.array_equal(a, b) for a, b in zip(images[:3], again))  # same seed, another call and batch size
    assert all(np.array_equal(a, b) for a, b in zip(images[1:3], shifted))  # image i depends on seed + i only
    assert len({im.tobytes() for im in images}) == len(images)  # different seeds, different images


def test_aedr_tells_generated_from_real(model):
    own = [aedr.LoadedImage.from_array(im, f"gen-{i}") for i, im in enumerate(generated(model))]
    real_all = data.split_data("eval").loaded()
    real = real_all[:: len(real_all) // N_GENERATED][:N_GENERATED]
    scores = aedr.get_method("aedr").score(model, own + real)
    labels = np.r_[np.ones(len(own)), np.zeros(len(real))]  # 1 = belonging; lower score = belonging
    auc = roc_auc_score(labels, -scores)
    print(f"{model.name}: AEDR AUC {auc:.3f} ({len(own)} generated vs {len(real)} real)")
    assert auc >= MIN_AUC, f"{model.name}: AEDR AUC {auc:.3f} against real eval images"


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    spec = PLUGINS.model(ZOO_NAMES[0]).spec
    src = PLUGINS.model(ZOO_NAMES[0]).weights_dir
    shutil.copytree(src / spec.name, tmp_path / spec.name)
    shutil.copy(src / CHECKSUM_FILE, tmp_path / CHECKSUM_FILE)
    ZooModel(spec, tmp_path).autoencoder()  # intact copy loads

    weights = tmp_path / spec.name / "autoencoder" / "diffusion_pytorch_model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError, match="diffusion_pytorch_model.safetensors.*expected"):
        ZooModel(spec, tmp_path).autoencoder()
    with pytest.raises(ChecksumError, match="sha256"):
        ZooModel(spec, tmp_path).generate(1)

    weights.unlink()
    with pytest.raises(ChecksumError, match="missing"):
        ZooModel(spec, tmp_path).autoencoder()
    (tmp_path / CHECKSUM_FILE).unlink()
    with pytest.raises(ChecksumError, match="checksum file missing"):
        ZooModel(spec, tmp_path).autoencoder()


def test_training_order_starts_the_longest_recorded_training_first(tmp_path):
    from aedr_zoo.models import ZOO
    from aedr_zoo.train import SECONDS_PER_STEP_GUESS, recorded_seconds, training_order

    def record(folder, name, seconds):
        (folder / name).mkdir(parents=True)
        training = {"autoencoder_seconds": seconds / 2, "unet_seconds": seconds / 2}
        (folder / name / "zoo.json").write_text(json.dumps({"training": training}))

    first, second = tmp_path / "a", tmp_path / "b"
    record(first, ZOO[-1].name, 5000.0)
    record(second, ZOO[-1].name, 1.0)  # the first folder with a record wins
    record(second, ZOO[0].name, 4000.0)
    order = training_order(list(ZOO), [first, second])
    assert [s.name for s in order[:2]] == [ZOO[-1].name, ZOO[0].name]
    unrecorded = ZOO[1]
    guess = SECONDS_PER_STEP_GUESS * (unrecorded.ae_training.steps + unrecorded.unet_training.steps)
    assert recorded_seconds(unrecorded, [first, second]) == guess


# -- quality gates (docs/zoo.md, "Quality gates"): the generator's samples look like its training data


def test_quality_gates_are_recorded_and_passed(model):
    """Every shipped model's zoo.json holds gates 1-3, measured with the current protocol; gates 1
    and 2 pass (gate 3: the next test)."""
    gates = model.meta["gates"]
    c = model.meta["latent_shape"][0]
    assert f"{quality.GATE_SAMPLES} samples (seeds {quality.GATE_SEED}.." in gates["protocol"]
    lat = gates["latents"]
    assert lat["threshold_mean_offset"] == quality.MAX_MEAN_OFFSET and lat["threshold_std_ratio_error"] == quality.MAX_STD_RATIO_ERROR
    assert all(len(lat[k]) == c for k in ("mean_offset", "std_ratio")) and len(lat["train"]["std"]) == c
    assert lat["passed"] and lat["max_abs_mean_offset"] <= 0.15 and lat["max_std_ratio_error"] <= 0.15
    assert gates["saturation"]["passed"] and gates["saturation"]["samples"] <= 2 * gates["saturation"]["train"]
    assert gates["fixed_point_gap"]["samples"] > 0 and gates["fixed_point_gap"]["real_reconstructions"] > 0
    assert gates["distance"]["threshold"] == pytest.approx(quality.reference().threshold, abs=1e-5)


def test_quality_gate_3_recorded_and_passed(model):
    d = model.meta["gates"]["distance"]
    assert d["passed"] and d["mmd2"] <= d["threshold"], f"{model.name}: MMD2 {d['mmd2']} > {d['threshold']}"


def test_the_high_fidelity_model_passes_gate_4():
    """Gate 4: every high-fidelity (16-channel) zoo model reconstructs zoo-real-eval at least 5 dB
    better than the best 4-channel zoo model, as zoo.json records and the shipped PSNRs confirm."""
    from aedr.models import HIGH_FIDELITY_FAMILIES

    models = [PLUGINS.model(n) for n in ZOO_NAMES]
    high = [m for m in models if m.family in HIGH_FIDELITY_FAMILIES]
    best_four = max((m for m in models if m.meta["latent_shape"][0] == 4), key=lambda m: m.meta["psnr_eval"])
    assert high
    for m in high:
        gate = m.meta["gates"]["fidelity"]
        assert gate == quality.fidelity_gate(m.meta["psnr_eval"], {best_four.name: best_four.meta["psnr_eval"]})
        assert gate["passed"] and m.meta["psnr_eval"] >= best_four.meta["psnr_eval"] + quality.FIDELITY_MARGIN_DB
    assert all("fidelity" not in m.meta["gates"] for m in models if m.family not in HIGH_FIDELITY_FAMILIES)


def test_fidelity_gate_is_against_the_best_four_channel_model():
    metas = {
        "a": {"family": "kl", "latent_shape": [4, 8, 8], "psnr_eval": 26.0},
        "b": {"family": "vq", "latent_shape": [4, 8, 8], "psnr_eval": 27.5},
        "hi": {"family": "kl16", "latent_shape": [16, 8, 8], "psnr_eval": 32.4},
    }
    gate = quality.fidelity_gates(metas)
    assert list(gate) == ["hi"] and gate["hi"]["best_4_channel"] == "b" and gate["hi"]["threshold"] == 32.5
    assert not gate["hi"]["passed"] and quality.failed_gates({"fidelity": gate["hi"]}) == ["fidelity"]
    metas["hi"]["psnr_eval"] = 32.5
    assert quality.fidelity_gates(metas)["hi"]["passed"]
    assert quality.fidelity_gates({"hi": metas["hi"]}) == {}  # no 4-channel model to compare with


def test_latent_normalisation_is_per_channel(model):
    """zoo.json's latent_shift / latent_scale hold one number per latent channel, and sampling maps
    the denoiser's space back with them (z = normalised / scale + shift, per channel)."""
    c = model.meta["latent_shape"][0]
    shift, scale = model.meta["latent_shift"], model.meta["latent_scale"]
    assert isinstance(shift, list) and isinstance(scale, list) and len(shift) == len(scale) == c
    n = torch.randn(2, c, 8, 8)
    z = denormalise(n, shift, scale)
    assert torch.allclose(z[:, 1], n[:, 1] / scale[1] + shift[1])
    assert torch.allclose(normalise(z, shift, scale), n, atol=1e-5)
    assert channel_tensor(0.5, c).shape == (1, c, 1, 1) and torch.all(channel_tensor(0.5, c) == 0.5)
    with pytest.raises(ValueError, match="latent channels"):
        channel_tensor([1.0, 2.0], c + 1)


@pytest.mark.slow
def test_quality_gates_hold_when_recomputed(model):
    """Recompute gates 1-3 from the shipped weights (256 samples per model, about 30 s each on one core):
    they pass, and match what zoo.json records."""
    fresh = quality.model_gates(model)
    stored = model.meta["gates"]
    assert fresh["latents"]["passed"] and fresh["saturation"]["passed"], fresh["saturation"]
    assert fresh["distance"]["passed"] == stored["distance"]["passed"]
    np.testing.assert_allclose(fresh["latents"]["mean_offset"], stored["latents"]["mean_offset"], atol=0.01)
    np.testing.assert_allclose(fresh["latents"]["std_ratio"], stored["latents"]["std_ratio"], atol=0.01)
    assert fresh["saturation"]["train"] == stored["saturation"]["train"]
    assert abs(fresh["saturation"]["samples"] - stored["saturation"]["samples"]) <= 0.002
    assert abs(fresh["distance"]["mmd2"] - stored["distance"]["mmd2"]) <= 0.002
    assert fresh["distance"]["threshold"] == pytest.approx(stored["distance"]["threshold"], abs=1e-4)


def test_latent_gate_flags_offsets_and_spread():
    train = {"mean": [0.0, 1.0], "std": [1.0, 2.0]}
    assert quality.latent_gate({"mean": [0.1, 1.2], "std": [1.1, 1.8]}, train)["passed"]
    assert not quality.latent_gate({"mean": [0.2, 1.0], "std": [1.0, 2.0]}, train)["passed"]  # 0.2 std off
    assert not quality.latent_gate({"mean": [0.0, 1.0], "std": [1.0, 2.4]}, train)["passed"]  # 20 % too wide
    assert not quality.latent_gate({"mean": [0.0, 1.0], "std": [0.8, 2.0]}, train)["passed"]  # 20 % too narrow
    z = torch.randn(64, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    stats = quality.channel_stats(z)
    assert np.allclose(stats["std"], z.std(dim=(0, 2, 3)).double().numpy()) and stats["max"][2] == pytest.approx(float(z[:, 2].max()))


def test_saturation_gate_counts_clipped_channel_values():
    img = np.full((2, 4, 4, 3), 128, dtype=np.uint8)
    img[0, 0, 0] = (0, 128, 255)  # two saturated values of 96
    assert quality.saturated_fraction(img) == pytest.approx(2 / 96)
    train = np.full((1, 4, 4, 3), 128, dtype=np.uint8)
    train[0, 0, 0, 0] = 255  # 1 of 48
    assert quality.saturation_gate(img, train)["passed"]  # 2/96 = 1/48: ratio 1
    img[1, 1, 1] = (255, 255, 255)
    assert not quality.saturation_gate(img, train)["passed"]  # 5/96: ratio 2.5


def test_distance_gate_tells_training_like_images_from_saturated_ones():
    """Training crops outside the MMD's reference pass gate 3; the same crops with their contrast
    tripled (clipped to saturated colour blobs, as the old zoo-kl16 drew) fail it."""
    train = data.split_data("train").images
    rng = np.random.default_rng(quality.MMD_REFERENCE_SEED)
    in_ref = set(rng.choice(len(train), quality.MMD_REFERENCE, replace=False).tolist())
    rest = [i for i in range(len(train)) if i not in in_ref]
    held = train[rest[:: len(rest) // 256][:256]]  # spread over all six training photographs
    assert quality.distance_gate(held)["passed"]
    blobs = np.clip((held.astype(np.float64) - 128) * 3 + 128, 0, 255).astype(np.uint8)
    assert not quality.distance_gate(blobs)["passed"]
    assert quality.mmd2(*(quality.reference().space.transform(*quality.image_features(x)) for x in (held[:128], held[128:])),
                        quality.reference().space) < quality.reference().threshold


def test_reusing_an_autoencoder_keeps_its_files_and_checks_the_recipe(tmp_path):
    import dataclasses

    from aedr_zoo.train import load_trained_autoencoder

    spec = PLUGINS.model("zoo-tiny").spec
    src = PLUGINS.model("zoo-tiny").weights_dir
    shutil.copytree(src / spec.name, tmp_path / spec.name)
    shutil.copy(src / CHECKSUM_FILE, tmp_path / CHECKSUM_FILE)
    reused = load_trained_autoencoder(spec, tmp_path)
    folder = tmp_path / spec.name / "autoencoder"
    assert reused.files == {p.name: p.read_bytes() for p in folder.iterdir()}
    assert reused.record["autoencoder_seconds"] == json.loads((tmp_path / spec.name / "zoo.json").read_text())["training"]["autoencoder_seconds"]
    other = dataclasses.replace(spec, ae_training=dataclasses.replace(spec.ae_training, steps=spec.ae_training.steps + 1))
    with pytest.raises(ValueError, match="another recipe"):
        load_trained_autoencoder(other, tmp_path)


# -- aedr zoo: user errors are one line and exit 2, before any work ----------------------------------
def zoo_cli(*args):
    import typer
    from typer.testing import CliRunner

    from aedr.cli import AedrGroup
    from aedr_zoo.cli import zoo_app

    app = typer.Typer(cls=AedrGroup, pretty_exceptions_enable=False)
    app.add_typer(zoo_app, name="zoo")
    return CliRunner().invoke(app, ["zoo", *map(str, args)])


@pytest.mark.parametrize(
    "args, message",
    [
        (["gates", "--only", "zoo-nope"], "error: --only: no zoo model 'zoo-nope'; zoo models: "),
        (["gallery", "--out", "{tmp}", "--only", "zoo-nope"], "error: --only: no zoo model 'zoo-nope'; zoo models: "),
        (["train", "--out", "{tmp}", "--only", "zoo-nope"], "error: --only: no zoo model 'zoo-nope'; zoo models: "),
        (["train", "--out", "{tmp}", "--reuse-autoencoders", "--max-steps", "2"], "error: --max-steps caps the autoencoder too"),
    ],
)
def test_zoo_command_user_errors(args, message, tmp_path, monkeypatch):
    import aedr_zoo.train

    monkeypatch.setattr(aedr_zoo.train, "train_zoo", lambda *a, **k: pytest.fail("trained before the arguments were checked"))
    result = zoo_cli(*(a.format(tmp=tmp_path / "out") for a in args))
    assert result.exit_code == 2, result.output + repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (tmp_path / "out").exists()


def test_zoo_info_json_lists_every_model():
    result = zoo_cli("info", "--json")
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = json.loads(result.stdout)
    assert sorted(r["name"] for r in rows) == ZOO_NAMES and all(r["available"] for r in rows)
    table = zoo_cli("info")
    assert table.exit_code == 0 and all(name in table.stdout for name in ZOO_NAMES)


@pytest.mark.parametrize("width", (80, 100))
def test_zoo_info_fits_the_terminal_and_shows_every_gate(monkeypatch, width):
    from aedr.cli import out

    monkeypatch.setattr(out, "_width", width)
    text = zoo_cli("info").stdout
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert all(len(line) <= width for line in text.splitlines()) and "…" not in text
    assert len(rows) == len(ZOO_NAMES) and all(row.rstrip("│ ").endswith("passed") for row in rows)
    assert "zoo-kl-a-ckpt: zoo-kl-a's autoencoder" in text  # a sibling's relation, under the table
