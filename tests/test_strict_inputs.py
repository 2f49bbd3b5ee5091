"""What users give is checked strictly and early (options, cards, devices, arguments).

- Option values have their declared types wherever options enter: Python keyword arguments,
  ``[methods.<name>]`` / ``[bench]`` tables of a config, ``-o KEY=VALUE`` on the command line.
- Calibration cards are validated in full (a schema) before any image is scored, and their hash
  binds the model.
- Broken weights and unusable devices give one sentence and exit code 2, never a traceback.
- Arguments are checked before any model is loaded or image generated.

Every input is built by the tests themselves; nothing here scores more than a few 32x32 images.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import aedr
from aedr.bench import load_config
from aedr.bench.config import BenchConfig, ConfigError
from aedr.bench.plan import select_methods
from aedr.calibration import kde_threshold
from aedr.card import CalibrationCard, CardError, card_hash, summarize
from aedr.cli import build_app
from aedr.fieldtypes import FieldTypeError
from aedr.methods.aedr_method import AEDR, AEDROptions
from aedr.models import WeightsUnavailableError

from conftest import ModelsPlugin, photo_crops, tiny_kl_fingerprint

# Tiny models: one torch thread is many times faster than two on a busy two-core machine.
pytestmark = pytest.mark.usefixtures("single_thread")

ALL_PLUGINS = aedr.load_plugins()


def flat(result) -> str:
    """The command's output on one line (rich wraps long messages)."""
    return " ".join(result.output.split())


@pytest.fixture
def run(monkeypatch):
    """``run(*args, plugins=...)``: the CLI with the given plugin set (default: everything installed)."""

    def invoke(*args, plugins=None):
        monkeypatch.setattr(aedr.plugins, "_default", plugins or ALL_PLUGINS)
        return CliRunner().invoke(build_app(), [str(a) for a in args])

    return invoke


@pytest.fixture
def tiny_plugins(tiny_model):
    return aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)])


def assert_user_error(result, *fragments: str) -> None:
    """Exit code 2, no traceback, and every fragment in the message (compared without white space,
    which rich inserts where it wraps, even inside a long path)."""
    text = flat(result)
    assert result.exit_code == 2, text + repr(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text
    squeezed = "".join(text.split())
    for fragment in fragments:
        assert "".join(fragment.split()) in squeezed, (fragment, text)


def make_card(model: str = "tiny-kl", method: aedr.Method | None = None, scores=(1.0, 1.3, 1.1, 1.6, 1.2)) -> CalibrationCard:
    method = method or AEDR()
    opts = method.options_dict()
    scores = [float(s) for s in scores]
    weights = tiny_kl_fingerprint()
    return CalibrationCard(
        model=model, weights=weights, method=method.name, method_options=opts, options_hash=card_hash(model, method.name, opts, weights),
        alpha=0.05, alpha_selection="fixed", threshold=kde_threshold(scores, 0.05), n_images=len(scores),
        scores=scores, summary=summarize(scores), source="built by the test",
    )


# -- 4. option values have their declared types --------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"calibrate": "false"}, "calibrate must be true or false, got 'false' (a string)"),
        ({"calibrate": 0}, "calibrate must be true or false"),
        ({"batch_size": True}, "batch_size must be an integer or one of 'auto', got true (a bool)"),
        ({"seed": 1.0}, "seed must be an integer"),
        ({"distance": "L3"}, "distance must be one of 'l2', 'l1'"),
        ({"dtype": 16}, "dtype must be a string or none"),
        ({"device": ["cpu"]}, "device must be a string"),
    ],
)
def test_python_options_of_the_wrong_type_are_refused(kwargs, fragment):
    with pytest.raises(FieldTypeError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        AEDR(**kwargs)
    with pytest.raises(FieldTypeError):  # an options object made directly is checked too
        AEDROptions(**kwargs)
    opts = AEDROptions()
    for key, value in kwargs.items():
        setattr(opts, key, value)  # changed after it was made
    with pytest.raises(FieldTypeError):
        AEDR(opts)


def test_typed_options_are_normalised_and_lists_checked():
    ronan = ALL_PLUGINS.methods.get("ronan")
    assert ronan(lr=1).options.lr == 1.0 and isinstance(ronan(lr=1).options.lr, float)
    assert ronan(lr=1).options_hash() == ronan(lr=1.0).options_hash()
    with pytest.raises(FieldTypeError, match="lr must be a finite number"):
        ronan(lr=math.nan)
    aeroblade_options = ALL_PLUGINS.methods.get("aeroblade").Options
    assert aeroblade_options(detection_models=["zoo-kl-a"]).detection_models == ["zoo-kl-a"]
    with pytest.raises(FieldTypeError, match="detection_models must be a list of strings, got 'zoo-kl-a'"):
        aeroblade_options(detection_models="zoo-kl-a")
    with pytest.raises(FieldTypeError, match="detection_models must be a list of strings"):
        aeroblade_options(detection_models=["zoo-kl-a", 3])


def test_command_line_text_is_parsed_to_the_declared_type():
    parse = AEDROptions.parse
    assert parse("calibrate", "false") is False and parse("calibrate", "YES") is True
    assert parse("batch_size", "4") == 4 and parse("dtype", "none") is None and parse("dtype", "float16") == "float16"
    assert parse("distance", "L1") == "l1"
    assert ALL_PLUGINS.methods.get("aeroblade").Options.parse("detection_models", "a,b") == ["a", "b"]
    assert ALL_PLUGINS.methods.get("ronan").Options.parse("clamp", "none") is None
    for key, raw in (("calibrate", "maybe"), ("batch_size", "1.5"), ("batch_size", "true"), ("seed", ""), ("distance", "l3")):
        with pytest.raises(FieldTypeError, match=key):
            parse(key, raw)


def test_calibrate_false_from_the_command_line_is_applied(run, tiny_plugins, tmp_path):
    path = tmp_path / "a.png"
    photo_crops(1)[0].to_pil().save(path)
    on = json.loads(run("score", path, "-m", "tiny-kl", "--json", plugins=tiny_plugins).stdout)
    off = json.loads(run("score", path, "-m", "tiny-kl", "--json", "-o", "calibrate=false", plugins=tiny_plugins).stdout)
    expected = AEDR(calibrate=False).score(tiny_plugins.model("tiny-kl"), [aedr.load_image(path)])[0]
    assert off[0]["score"] == pytest.approx(expected) and off[0]["score"] != on[0]["score"]
    assert_user_error(run("score", path, "-m", "tiny-kl", "-o", "calibrate=maybe", plugins=tiny_plugins), "calibrate must be true or false")


@pytest.mark.parametrize(
    "text, fragments",
    [
        ('[methods.aedr]\ncalibrate = "false"\n', ["[methods.aedr] in", "calibrate must be true or false, got 'false'"]),
        ("[methods.aedr]\ndistance = 2\n", ["[methods.aedr] in", "distance must be one of"]),
        ("[methods.ronan]\niterations = 2.5\n", ["[methods.ronan] in", "iterations must be an integer"]),
        ("[methods.ronan]\nlr = nan\n", ["lr must be a finite number"]),
        ("[methods.nomethod]\nx = 1\n", ["[methods.nomethod] in", "no method 'nomethod' is registered"]),
        ("[methods.AEDR]\ncalibrate = false\n", ["no method 'AEDR'", "did you mean [methods.aedr]"]),
        ("[methods.aedr]\ncalibrat = false\n", ["[methods.aedr] in", "unknown option 'calibrat' (did you mean calibrate?)"]),
        ('[bench]\nreport = "no"\n', ["[bench] report must be true or false, got 'no'"]),
        ("[bench]\nbatch_size = true\n", ["[bench] batch_size must be an integer or one of 'auto' or none, got true (a bool)"]),
        ("[bench]\nmodels = 5\n", ["[bench] models must be a list of strings, got 5"]),
        ("[bench]\nmethods = [1]\n", ["[bench] methods must be a list of strings"]),
        ("[bench]\nn_cal = 8.0\n", ["[bench] n_cal must be an integer"]),
        ('[bench]\nshare_reconstructions = "yes"\n', ["share_reconstructions must be true or false"]),
        ("[bench]\nalpha = nan\n", ["alpha must be a"]),
        ('[bench]\ndevice = "bogus"\n', ["device 'bogus' is not a device name"]),
    ],
)
def test_config_values_of_the_wrong_type_are_errors_naming_file_and_key(tmp_path, text, fragments):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "default"\n' + text)
    with pytest.raises(ConfigError) as info:
        select_methods(load_config(path), ALL_PLUGINS)  # the method tables are checked against the registry
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    if "[methods." in text:
        assert str(path) in message


def test_bench_config_from_python_is_checked_the_same_way():
    for kwargs, fragment in (({"report": "no"}, "report must be true or false"), ({"n_cal": "3"}, "n_cal must be an integer"),
                             ({"models": 5}, "models must be a list of strings"), ({"batch_size": True}, "batch_size must be an integer or one of 'auto' or none")):
        with pytest.raises(ConfigError, match=fragment):
            BenchConfig(**kwargs)
        with pytest.raises(ConfigError, match=fragment):
            load_config("default", **kwargs)
    assert BenchConfig(models="zoo-kl-a, zoo-vq").models == ["zoo-kl-a", "zoo-vq"]  # a comma-separated string


def test_config_options_that_are_right_are_applied(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('extends = "default"\n[bench]\nmodels = "zoo-kl-a"\n[methods.aedr]\ncalibrate = false\n[methods.ronan]\nlr = 1\n')
    specs = {s.name: s for s in select_methods(load_config(path), ALL_PLUGINS)}
    assert specs["aedr"].method.options.calibrate is False and specs["aedr"].label == "aedr(calibrate=False)"
    assert specs["ronan"].method.options.lr == 1.0


def test_only_shipped_tables_may_name_methods_not_installed(tmp_path):
    only_aedr = {"aedr": AEDR}
    load_config("default").check_method_tables(only_aedr)  # [methods.ronan] of the shipped config: an optional plugin
    path = tmp_path / "mine.toml"
    path.write_text('extends = "default"\n[methods.ronan]\niterations = 3\n')
    with pytest.raises(ConfigError, match=r"\[methods.ronan\] in .*mine.toml: no method 'ronan' is registered"):
        load_config(path).check_method_tables(only_aedr)
    with pytest.raises(ConfigError, match="no method 'nomethod'"):
        BenchConfig(method_options={"nomethod": {}}).check_method_tables(only_aedr)
    assert "method_origins" not in load_config(path).to_dict()  # metrics.json keeps the run's definition only


def test_bench_command_line_options_are_typed(run):
    assert_user_error(run("bench", "--dry-run", "-o", "aedr.calibrate=maybe"), "--option aedr.calibrate=maybe", "true or false")
    assert_user_error(run("bench", "--dry-run", "-o", "ronan.iterations=2.5"), "iterations must be an integer, got '2.5'")
    result = run("bench", "--dry-run", "--models", "zoo-kl-a", "--methods", "aedr", "-o", "aedr.calibrate=false")
    assert result.exit_code == 0 and "aedr(calibrate=False)" in flat(result)


# -- 7. calibration cards --------------------------------------------------------------------------
@pytest.fixture
def card_file(tmp_path) -> Path:
    return make_card().save(tmp_path / "good.json")


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


@pytest.mark.parametrize(
    "change, fragments",
    [
        (lambda d: {**d, "threshold": math.nan}, ["threshold", "finite", "NaN"]),
        (lambda d: {**d, "threshold": math.inf}, ["threshold", "finite", "Infinity"]),
        (lambda d: {**d, "scores": d["scores"][:-1] + [math.nan]}, ["scores.", "finite"]),
        (lambda d: [d], ["a JSON object is needed", "a list"]),
        (lambda d: None, ["a JSON object is needed", "null"]),
        (lambda d: _without(d, "threshold"), ["threshold: required field missing"]),
        (lambda d: _without(d, "scores"), ["scores: required field missing"]),
        (lambda d: {**d, "n_images": "5"}, ["n_images", "valid integer", '"5"']),
        (lambda d: {**d, "alpha": True}, ["alpha"]),
        (lambda d: {**d, "alpha": 1.5}, ["alpha", "less than 1"]),
        (lambda d: {**d, "threshold": "1.2"}, ["threshold", "valid number"]),
        (lambda d: {**d, "method_options": []}, ["method_options", "dictionary"]),
        (lambda d: {**d, "n_images": 4}, ["n_images is 4 but the card holds 5 scores"]),
        (lambda d: {**d, "scores": [1.0] * 5}, ["scores are all equal"]),
        (lambda d: {**d, "model": "zoo-vq"}, ["options_hash", "does not match the card's model 'zoo-vq'", "re-calibrate"]),
        (lambda d: {**d, "method_options": {**d["method_options"], "distance": "l1"}}, ["options_hash", "changed after calibration"]),
        (lambda d: {**d, "format": "aedr-calibration-card/1"}, ["older aedr", "re-calibrate", "aedr calibrate --model tiny-kl"]),
        (lambda d: _without({**d, "format": "aedr-calibration-card/2"}, "weights"), ["older aedr", "does not record which weights", "re-calibrate"]),
        (lambda d: {**d, "weights": "0" * 16}, ["options_hash", "changed after calibration"]),
        (lambda d: _without(d, "weights"), ["weights: required field missing"]),
        (lambda d: {**d, "format": "something"}, ["not an aedr calibration card"]),
    ],
)
def test_bad_cards_are_refused_naming_file_and_field(card_file, change, fragments):
    card_file.write_text(json.dumps(change(json.loads(card_file.read_text()))))  # Python's json writes NaN as NaN
    with pytest.raises(CardError) as info:
        CalibrationCard.load(card_file)
    message = str(info.value)
    assert str(card_file) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_unreadable_card_files(tmp_path):
    for path, fragment in ((tmp_path / "missing.json", "cannot be read"), (tmp_path, "cannot be read")):
        with pytest.raises(CardError, match=fragment):
            CalibrationCard.load(path)
    (tmp_path / "half.json").write_text('{"model": ')
    (tmp_path / "png.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    for name in ("half.json", "png.json"):
        with pytest.raises(CardError, match=f"{name}: not a calibration card: not JSON"):
            CalibrationCard.load(tmp_path / name)


def test_a_good_card_round_trips_and_binds_its_model(card_file):
    card = CalibrationCard.load(card_file)
    assert card == dataclasses.replace(make_card(), created=card.created) and card.where == f"card {card_file}"
    with pytest.raises(ValueError, match="does not match the card's model 'other'"):
        dataclasses.replace(card, model="other")  # made in Python: validated the same way
    assert json.loads(card.to_json())["format"] == "aedr-calibration-card/3"


def test_a_card_runs_where_it_is_applied_not_where_it_was_made(card_file, tiny_plugins):
    data = json.loads(card_file.read_text())
    data["method_options"].update(device="cuda:7", batch_size=1)  # runtime options: not in the hash
    card_file.write_text(json.dumps(data))
    method = CalibrationCard.load(card_file).build_method(tiny_plugins)
    assert method.options.device == "cpu" and method.options.batch_size == AEDROptions().batch_size


def test_a_card_the_installed_method_cannot_reproduce_says_recalibrate(tiny_plugins):
    opts = {**AEDR().options_dict(), "retired_option": 3}  # made by a version whose AEDR had this option
    card = dataclasses.replace(make_card(), method_options=opts, options_hash=card_hash("tiny-kl", "aedr", opts, tiny_kl_fingerprint()))
    with pytest.raises(CardError, match="other options than the card was made with .*retired_option.*re-calibrate"):
        card.build_method(tiny_plugins)
    typed = {**AEDR().options_dict(), "calibrate": "false"}
    card = dataclasses.replace(make_card(), method_options=typed, options_hash=card_hash("tiny-kl", "aedr", typed, tiny_kl_fingerprint()))
    with pytest.raises(CardError, match="calibrate must be true or false"):
        card.build_method(tiny_plugins)


def test_every_card_is_checked_before_any_image_is_scored(tiny_plugins, monkeypatch):
    scored = []
    monkeypatch.setattr(aedr.Method, "score", lambda self, *a, **k: scored.append(self) or np.zeros(0))
    images = photo_crops(2)
    for bad, fragment in (
        (make_card(model="not-installed"), "card for 'not-installed' \\(aedr\\): Unknown model 'not-installed'"),
        (dataclasses.replace(make_card(), method="nomethod", options_hash=card_hash("tiny-kl", "nomethod", make_card().method_options, tiny_kl_fingerprint())), "Unknown method 'nomethod'"),
    ):
        with pytest.raises(CardError, match=fragment):
            aedr.attribute(images, [make_card(), bad], plugins=tiny_plugins)
        assert scored == []


def test_attribute_refuses_a_bad_card_before_reading_images(run, tiny_plugins, card_file, tmp_path, monkeypatch):
    bad = tmp_path / "nan.json"
    bad.write_text(card_file.read_text().replace('"threshold": ', '"threshold": NaN, "was": '))
    monkeypatch.setattr(aedr.Method, "score", lambda *a, **k: pytest.fail("scored before the cards were checked"))
    assert_user_error(run("attribute", tmp_path, "--card", card_file, "--card", bad, plugins=tiny_plugins), str(bad), "threshold", "finite")
    renamed = tmp_path / "renamed.json"
    renamed.write_text(card_file.read_text().replace('"model": "tiny-kl"', '"model": "zoo-kl-a"'))
    assert_user_error(run("attribute", tmp_path, "--card", renamed, plugins=tiny_plugins), str(renamed), "re-calibrate")


# -- 10. one sentence, not a traceback ---------------------------------------------------------------
@pytest.fixture
def png(tmp_path) -> Path:
    path = tmp_path / "in.png"
    photo_crops(1)[0].to_pil().save(path)
    return path


def test_zoo_checksum_failure_is_one_sentence(run, tmp_path, png):
    from aedr_zoo.store import CHECKSUM_FILE, ChecksumError
    from aedr_zoo.zoo import ZooModel

    shipped = ALL_PLUGINS.model("zoo-kl-a")
    copy = tmp_path / "weights"
    shutil.copytree(shipped.weights_dir / shipped.name, copy / shipped.name)
    shutil.copy(shipped.weights_dir / CHECKSUM_FILE, copy / CHECKSUM_FILE)
    weights = copy / shipped.name / "autoencoder" / "diffusion_pytorch_model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    weights.write_bytes(bytes(blob))
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(ZooModel(shipped.spec, copy))])
    assert issubclass(ChecksumError, WeightsUnavailableError)
    assert_user_error(run("score", png, "-m", "zoo-kl-a", plugins=plugins), "diffusion_pytorch_model.safetensors has sha256", "expected")

    (copy / CHECKSUM_FILE).write_text("not a checksum line\n")
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(ZooModel(shipped.spec, copy))])
    assert_user_error(run("score", png, "-m", "zoo-kl-a", plugins=plugins), "line 1: not 'SHA256 FILE'")


class _Pickled:
    def __reduce__(self):
        return (print, ("this must never run",))


def _corrupt_files(folder: Path) -> dict[str, bytes]:
    buffer = folder / "good.pth"
    torch.save({"0.weight": torch.zeros(1)}, buffer)
    good = buffer.read_bytes()
    buffer.unlink()
    return {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "random": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        "pickle": pickle.dumps({"0.weight": _Pickled()}),
        "wrong keys": good,
    }


def test_corrupt_taef2_files_are_one_sentence_without_weights_only_advice(run, tmp_path, png, capfd):
    from aedr_taesd import TAEF2Model

    for case, blob in _corrupt_files(tmp_path).items():
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        for name in ("taef2_encoder.pth", "taef2_decoder.pth"):
            (folder / name).write_bytes(blob)
        model = TAEF2Model(folder=folder)
        with pytest.raises(WeightsUnavailableError) as info:
            model.autoencoder("cpu")
        message = str(info.value)
        assert "taef2_encoder.pth" in message and "weights_only" not in message, (case, message)
        exc = info.value  # torch's exception (and its text) is not chained to ours
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__), case
        result = run("score", png, "-m", "taef2", plugins=aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(model)]))
        assert_user_error(result, "taef2_encoder.pth")
        assert "weights_only" not in result.output and "must never run" not in result.output
    assert "must never run" not in capfd.readouterr().out


@pytest.mark.parametrize("device", ["bogus", "cuda:99", "meta"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_unusable_devices_are_one_sentence_before_any_work(run, tiny_plugins, tmp_path, png, device, monkeypatch):
    card = make_card().save(tmp_path / "card.json")
    monkeypatch.setattr(aedr.Method, "score", lambda *a, **k: pytest.fail("scored on an unusable device"))
    for args in (
        ["score", png, "-m", "tiny-kl"],
        ["attribute", png, "--card", card],
        ["calibrate", "-m", "tiny-kl", "--generate", "4", "--out", tmp_path / "c.json"],
    ):
        assert_user_error(run(*args, "--device", device, plugins=tiny_plugins), f"--device '{device}'")
    assert_user_error(run("bench", "--dry-run", "--device", device), f"device '{device}'")


# -- 11. arguments checked before any work ---------------------------------------------------------
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--generate", "4", "--alpha", "nan"], "--alpha must be a number in (0, 1) or 'auto', got 'nan'"),
        (["--generate", "4", "--alpha", "inf"], "got 'inf'"),
        (["--generate", "4", "--alpha", "1"], "got '1'"),
        (["--generate", "1"], "--generate must be at least 2 (a threshold needs two calibration scores), got 1"),
        (["--generate", "-3"], "got -3"),
        (["--generate", "0"], "got 0"),
        (["--generate", "4", "--non-belonging", "."], "--non-belonging is used only with --alpha auto"),
        (["--images", ".", "--save-images", "saved"], "--save-images saves generated images"),
        (["--generate", "4", "-o", "calibrate=maybe"], "calibrate must be true or false"),
    ],
)
def test_calibrate_checks_its_arguments_before_generating(run, tiny_plugins, tiny_model, tmp_path, monkeypatch, args, fragment):
    monkeypatch.setattr(tiny_model, "generate", lambda *a, **k: pytest.fail("generated before the arguments were checked"))
    monkeypatch.chdir(tmp_path)
    assert_user_error(run("calibrate", "-m", "tiny-kl", "--out", tmp_path / "card.json", *args, plugins=tiny_plugins), fragment)
    assert not (tmp_path / "saved").exists() and not (tmp_path / "card.json").exists()


def test_calibrate_needs_two_usable_images_before_scoring(run, tiny_plugins, tmp_path, png, monkeypatch):
    monkeypatch.setattr(aedr.Method, "score", lambda *a, **k: pytest.fail("scored"))
    (png.parent / "broken.png").write_bytes(b"not a png")
    assert_user_error(run("calibrate", "-m", "tiny-kl", "--images", png.parent, "--out", tmp_path / "c.json", plugins=tiny_plugins),
                      "1 usable image(s); a threshold needs at least 2")


def test_bench_checks_real_images_before_generating(run, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr("aedr.bench.sources.model_source", lambda *a, **k: pytest.fail("generated before --real was checked"))
    result = run("bench", "--models", "zoo-kl-a", "--methods", "aedr", "--real", empty, "--out", tmp_path / "out", "--no-progress", "--no-report")
    assert_user_error(result, str(empty), "holds no images")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    result = run("bench", "--models", "zoo-kl-a", "--methods", "aedr", "--real", junk, "--out", tmp_path / "out", "--no-progress", "--no-report")
    assert_user_error(result, "no usable image")
