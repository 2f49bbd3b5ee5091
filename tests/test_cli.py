"""The command line, end to end, through typer's test runner, against a model built in the test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import aedr

from conftest import ModelsPlugin, cli_runner, photo_folder

# Tiny models: one torch thread is many times faster than two on a busy two-core machine.
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def cli(tiny_model, monkeypatch):
    return cli_runner(aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)]), monkeypatch)


@pytest.fixture
def photo_dir(tmp_path):
    return photo_folder(tmp_path / "photos", 10)


@pytest.fixture
def generated_dir(tmp_path, tiny_model):
    folder = tmp_path / "generated"
    folder.mkdir()
    for i, im in enumerate(tiny_model.generate(10, seed=100)):
        im.save(folder / f"{i:03d}.png")
    return folder


def test_listings(cli):
    models = json.loads(cli("models", "--json").stdout)
    assert [m["name"] for m in models] == ["tiny-kl"] and models[0]["generator"] is True
    methods = json.loads(cli("methods", "--json").stdout)
    assert methods[0]["name"] == "aedr" and methods[0]["options"]["distance"] == "l2"
    assert "tiny-kl" in cli("models").output


def test_score_records_bad_files_and_writes_csv(cli, photo_dir, tmp_path):
    (photo_dir / "empty.png").write_bytes(b"")
    (photo_dir / "notes.jpg").write_text("not an image")
    Image.new("RGB", (1, 1)).save(photo_dir / "dot.png")
    out = tmp_path / "scores.csv"
    result = cli("score", photo_dir, "--model", "tiny-kl", "--out", out, "-o", "distance=l1", "--json")
    rows = json.loads(result.stdout)
    assert len(rows) == 13
    frame = pd.read_csv(out)
    scored = frame[frame["error"].isna()]
    assert len(scored) == 10 and np.all(np.isfinite(scored["score"]))
    assert set(frame.loc[frame["error"].notna(), "image"].map(lambda p: p.rsplit("/", 1)[-1])) == {"empty.png", "notes.jpg", "dot.png"}
    assert (frame["method"].dropna() == "aedr(distance=l1)").all()
    parquet = tmp_path / "scores.parquet"
    cli("score", photo_dir / "000.png", "--model", "tiny-kl", "--out", parquet)
    assert len(pd.read_parquet(parquet)) == 1


def test_calibrate_and_attribute(cli, generated_dir, photo_dir, tmp_path, tiny_model, monkeypatch):
    card_path = tmp_path / "card.json"
    result = cli("calibrate", "--model", "tiny-kl", "--generate", 16, "--out", card_path, "--alpha", "0.1")
    assert "threshold =" in result.output
    card = aedr.card.CalibrationCard.load(card_path)
    assert card.n_images == 16 and card.alpha == 0.1 and card.method == "aedr"
    assert card.versions["torch"] and card.created and card.source.startswith("generated 16")

    default_path = tmp_path / "default.json"  # neither --images nor --generate: the model's own source
    monkeypatch.setattr(tiny_model, "calibration", aedr.CalibrationSource(generate=12))
    cli("calibrate", "--model", "tiny-kl", "--out", default_path)
    assert aedr.CalibrationCard.load(default_path).n_images == 12

    auto_path = tmp_path / "auto.json"
    cli("calibrate", "--model", "tiny-kl", "--images", generated_dir, "--alpha", "auto", "--non-belonging", photo_dir, "--out", auto_path)
    auto = aedr.card.CalibrationCard.load(auto_path)
    assert auto.alpha_selection.startswith("auto") and auto.estimation_accuracy is not None

    result = cli("attribute", generated_dir / "000.png", photo_dir / "000.png", "--card", card_path, "--card", auto_path, "--json")
    records = json.loads(result.stdout)
    assert len(records) == 2
    for r in records:
        assert len(r["verdicts"]) == 2
        for v in r["verdicts"]:
            assert v["belongs"] == (v["score"] < v["threshold"])
            assert 0 <= v["tail_probability"] <= 1
        ranked = [v["model"] for v in sorted(r["verdicts"], key=lambda v: -v["tail_probability"]) if v["belongs"]]
        assert r["attributed_to"] == list(dict.fromkeys(ranked))  # both cards are tiny-kl's: the model is named once
    out = tmp_path / "verdicts.csv"
    cli("attribute", generated_dir, "--card", card_path, "--out", out)
    assert len(pd.read_csv(out)) == 10


@pytest.mark.parametrize("width", [80, 100])
def test_a_verdict_outside_the_calibration_domain_is_marked(cli, generated_dir, tmp_path, monkeypatch, width):
    from skimage import data

    from aedr.cli import out

    card_path = tmp_path / "card.json"
    cli("calibrate", "--model", "tiny-kl", "--images", generated_dir, "--out", card_path)
    domain = aedr.CalibrationCard.load(card_path).domain
    assert domain.formats == {"PNG": 10} and domain.sizes == ["32x32"] and domain.jpeg_qualities == []
    photo = tmp_path / "a-large-photograph-from-a-camera.jpg"
    Image.fromarray(data.astronaut()).save(photo, quality=80)  # 512 x 512: 256 times the pixels, and lossy
    records = json.loads(cli("attribute", generated_dir / "000.png", photo, "--card", card_path, "--json").stdout)
    inside, outside = (r["verdicts"][0]["outside_domain"] for r in records)
    assert inside == [] and outside == ["512x512 has 256x the pixels of the largest calibration image (32x32)", "JPEG, calibrated on lossless images only"]
    monkeypatch.setattr(out, "_width", width)
    table = cli("attribute", generated_dir / "000.png", photo, "--card", card_path).output
    assert all(len(line) <= width for line in table.splitlines()), table
    assert "! " in table and "outside the card's calibration domain" in table and "256x the pixels" in table
    assert "a-large-" in table and "camera.jpg" in table  # the name folds after its separators
    # a card from before cards recorded their domain: unknown, nothing marked
    doc = json.loads(card_path.read_text())
    del doc["domain"]
    card_path.write_text(json.dumps(doc))
    records = json.loads(cli("attribute", photo, "--card", card_path, "--json").stdout)
    assert records[0]["verdicts"][0]["outside_domain"] == []


def test_compat_loss_ratio_file(cli, photo_dir, tmp_path):
    out = tmp_path / "ratio.txt"
    cli("compat", "loss-ratio", "--model", "tiny-kl", "--images", photo_dir, "--out", out)
    lines = out.read_text().splitlines()
    assert len(lines) == 10
    for line in lines:
        a, b = line.split()
        assert len(a.split(".")[1]) == 8 and len(b.split(".")[1]) == 8
    glcm = tmp_path / "glcm.txt"
    cli("compat", "glcm", "--images", photo_dir, "--out", glcm)
    threshold = cli("compat", "threshold", "--loss-ratio", out, "--glcm", glcm).output
    assert threshold.startswith("threshold = ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "x.png", "--model", "tiny-k"], "Did you mean: tiny-kl"),
        (["calibrate", "--model", "tiny-kl", "--images", "x", "--generate", "3", "--out", "c.json"], "exactly one of --images"),
        (["calibrate", "--model", "tiny-kl", "--generate", "4", "--alpha", "auto", "--out", "c.json"], "--non-belonging"),
        (["score", "x.png", "--model", "tiny-kl", "--method", "aedrr"], "Did you mean: aedr"),
        (["score", "x.png", "--model", "tiny-kl", "-o", "distanse=l1"], "unknown option 'distanse' (did you mean distance?)"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(cli, args, message):
    result = cli(*args, ok=False)
    assert result.exit_code == 2
    assert message in result.output


def test_empty_folder_is_an_error(cli, tmp_path):
    (tmp_path / "nothing").mkdir()
    result = cli("score", tmp_path / "nothing", "--model", "tiny-kl", ok=False)
    assert result.exit_code == 2 and "holds no images" in result.output


# -- one error convention for every command, built-in or a plugin's ---------------------------------
def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def plugin_app(*plugins):
    """A root ``aedr`` group with only the given plugins' commands mounted."""
    import typer

    from aedr.cli import AedrGroup

    app = typer.Typer(cls=AedrGroup, pretty_exceptions_enable=False)
    aedr.load_plugins(entry_points=False, extra=list(plugins)).add_commands(app)
    return app


class CommandsPlugin:
    """A third-party plugin's commands, written against the documented API (``aedr.cli.fail``)."""

    @aedr.hookimpl
    def register_commands(self, cli):
        from aedr.cli import CliError, fail

        @cli.command("refuse")
        def refuse(name: str) -> None:
            fail(f"no such thing: {name}")

        @cli.command("refuse-by-raising")
        def refuse_by_raising() -> None:
            raise CliError("raised, not failed")

        @cli.command("crash")
        def crash() -> None:
            raise RuntimeError("a bug")


def test_a_plugins_user_error_is_one_escaped_line_and_exit_2():
    runner = CliRunner()
    app = plugin_app(CommandsPlugin())
    result = runner.invoke(app, ["refuse", "x[red]y[/]"])
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert error_lines(result) == ["error: no such thing: x[red]y[/]"]
    result = runner.invoke(app, ["refuse-by-raising"])
    assert result.exit_code == 2 and error_lines(result) == ["error: raised, not failed"]
    result = runner.invoke(app, ["crash"])  # a bug is not a user error: it keeps its exception
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_long_errors_stay_on_one_line(cli, tmp_path):
    missing = tmp_path / ("a-very-long-folder-name-" * 6) / "x.png"
    result = cli("score", missing, "--model", "tiny-kl", ok=False)
    assert result.exit_code == 2
    assert error_lines(result) == [f"error: no such file or folder: {missing} (nothing was done)"]


def test_generate_and_prompts_commands_report_user_errors_the_same_way(cli, tmp_path):
    from aedr_diffusers.commands import add_commands

    class DiffusersCommands:
        @aedr.hookimpl
        def register_commands(self, cli):
            add_commands(cli)

    runner = CliRunner()
    app = plugin_app(DiffusersCommands())

    def run(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, result.output + repr(result.exception)
        lines = error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        return lines[0]

    prompts = tmp_path / "Prompt.txt"
    out = tmp_path / "images"
    assert "Did you mean: tiny-kl" in run("generate", "tiny-k", "--prompts", prompts, "--out", out)
    assert run("generate", "tiny-kl", "--prompts", prompts, "--out", out) == f"error: --prompts {prompts}: No such file or directory"
    prompts.write_text("001: a cat\nnot a prompt\n")
    assert run("generate", "tiny-kl", "--prompts", prompts, "--out", out).endswith(":2: expected 'NNN: prompt', got 'not a prompt'")
    prompts.write_text("001: a cat\n")
    assert "--device 'nope' is not a device name" in run("generate", "tiny-kl", "--prompts", prompts, "--out", out, "--device", "nope")
    assert not out.exists()
    assert run("prompts", tmp_path, "--out", prompts) == f"error: --out {prompts} already exists"
