"""Nothing cached or resumed is reused for what did not produce it: other weights under a model's
name, other load options, a changed file, another model in a reconstruction folder; walks survive
links that lead nowhere; stores survive foreign files and concurrent runs (docs/reliability.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aedr
from aedr.attribution import prepare_cards
from aedr.bench import load_config, run_bench
from aedr.bench.config import ConfigError
from aedr.executors import LocalExecutor
from aedr.lock import FolderInUseError, RunLock
from aedr.stream import FileScoring, ScoreShards, stream_files
from aedr.card import CardError, calibrate
from aedr.images import iter_image_files
from conftest import FolderModel, cli_runner, photo_crops, tiny_kl_vae
from test_bench_support import BenchModels

LOCAL = LocalExecutor()

pytestmark = pytest.mark.usefixtures("single_thread")


def tiny(root: Path, name: str, seed: int) -> FolderModel:
    """A tiny KL model called ``name`` whose weights come from ``seed``."""
    folder = root / f"{name}-seed{seed}"
    if not (folder / "config.json").exists():
        tiny_kl_vae(seed=seed).save_pretrained(folder)
    return FolderModel(name, folder)


def plugins_with(*models) -> aedr.plugins.Plugins:
    return aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])


def text(result) -> str:
    """A command's output with rich's line folding undone."""
    return " ".join(result.output.split())


def save_crops(folder: Path, n: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(photo_crops(n, seed=seed)):
        paths.append(folder / f"crop-{i}.png")
        Image.fromarray(im.rgb).save(paths[-1])
    return paths


# -- 1. weights: fingerprints, cards, the bench ----------------------------------------------------
def test_the_fingerprint_follows_the_weights_not_the_name(tmp_path):
    a, a_again, b = tiny(tmp_path, "m", 0), tiny(tmp_path / "copy", "m", 0), tiny(tmp_path, "m", 1)
    assert a.autoencoder_fingerprint() == a_again.autoencoder_fingerprint()  # same weights, another folder
    assert a.autoencoder_fingerprint() != b.autoencoder_fingerprint()
    ae = b.autoencoder("cpu")
    scaled = tiny(tmp_path / "scaled", "m", 0)
    with __import__("torch").no_grad():
        next(iter(scaled.autoencoder("cpu").module.decoder.parameters())).mul_(1.02)
    assert scaled.autoencoder("cpu").fingerprint() != a.autoencoder_fingerprint()
    assert len(ae.fingerprint()) == 16


def test_a_card_calibrated_on_other_weights_of_its_model_is_refused(tmp_path):
    old = tiny(tmp_path, "suspect", 0)
    card = calibrate(old, aedr.get_method("aedr"), photo_crops(4))
    assert card.weights == old.autoencoder_fingerprint()
    prepare_cards([card], plugins=plugins_with(old))  # the weights it was made with: fine
    retrained = tiny(tmp_path, "suspect", 1)
    with pytest.raises(CardError, match="calibrated with other weights of 'suspect'.*re-calibrate"):
        prepare_cards([card], plugins=plugins_with(retrained))


def test_a_bench_resumed_after_the_weights_changed_computes_everything_again(tmp_path):
    settings = dict(models=["tiny-0"], methods=["aedr"], real="none", n_cal=3, n_eval=2, chunk_size=4, report=False)
    out = tmp_path / "run"
    first = run_bench(load_config("default", out=str(out), **settings), plugins=plugins_with(tiny(tmp_path, "tiny-0", 0)), progress=False)
    assert first.stats.scored == 5 and first.stats.generated == 5
    changed = run_bench(load_config("default", out=str(out), **settings), plugins=plugins_with(tiny(tmp_path, "tiny-0", 1)), progress=False)
    assert changed.stats.already_saved == 0 and changed.stats.scored == 5 and changed.stats.generated == 5  # new images, new scores
    back = run_bench(load_config("default", out=str(out), **settings), plugins=plugins_with(tiny(tmp_path, "tiny-0", 0)), progress=False)
    assert back.stats.already_saved == 5 and back.stats.scored == 0 and back.stats.generated == 0  # the first weights' results are kept
    models = json.loads((out / "metrics.json").read_text())["models"]
    assert models[0]["autoencoder_fingerprint"] == tiny(tmp_path, "tiny-0", 0).autoencoder_fingerprint()


def test_an_executor_table_must_name_a_registered_executor(tmp_path):
    cfg = load_config("default", out=str(tmp_path / "x"), models=["tiny-0"], methods=["aedr"], real="none", n_cal=2, n_eval=1)
    cfg.executor_options["rayy"] = {"actors": 2}
    plugins = plugins_with(tiny(tmp_path, "tiny-0", 0))
    with pytest.raises(ConfigError, match=r"\[executors.rayy\]: .*rayy"):
        run_bench(cfg, plugins=plugins, progress=False)
    from rich.console import Console

    cfg.executor_options = {"ray": {"actors": 2}}
    console = Console(record=True, width=200)
    run_bench(cfg, plugins=plugins, progress=False, console=console)
    assert "[executors.ray] is not used: this run's executor is 'local'" in console.export_text()


# -- 2. the stream: keys, changed files, foreign shards, one run per folder --------------------------
@pytest.fixture
def stream_setup(tmp_path):
    model = aedr.get_plugins().model("zoo-kl-a")
    folder = tmp_path / "in"
    save_crops(folder, 3)
    return model, folder, tmp_path / "scores.parquet"


def score(inputs, out, model, **kw):
    return stream_files(FileScoring(list(inputs), model, aedr.get_method("aedr"), out, **kw), LOCAL)


def test_other_load_options_score_again_and_both_are_kept(stream_setup):
    model, folder, out = stream_setup
    assert score([folder], out, model, load_options={"max_side": 16}).scored == 3
    again = score([folder], out, model)
    assert again.already == 0 and again.scored == 3  # full size: not the 16 px scores
    frame = ScoreShards(out).read()
    assert sorted(frame["load_options"]) == ["", "", "", "max_side=16", "max_side=16", "max_side=16"]
    small = frame[frame["load_options"] == "max_side=16"].set_index("image")["score"]
    full = frame[frame["load_options"] == ""].set_index("image")["score"]
    assert not np.allclose(small.sort_index().to_numpy(), full.sort_index().to_numpy())
    assert score([folder], out, model, load_options={"max_side": 16}).already == 3


def test_a_changed_file_is_scored_again_and_its_new_score_read(stream_setup):
    model, folder, out = stream_setup
    score([folder], out, model)
    before = ScoreShards(out).read().set_index("image")["score"]
    target = folder / "crop-1.png"
    Image.fromarray(photo_crops(1, seed=9)[0].rgb).save(target)  # other pixels, same name
    report = score([folder], out, model)
    assert (report.already, report.scored) == (2, 1)
    after = ScoreShards(out).read().set_index("image")["score"]
    assert len(after) == 3 and after[str(target)] != before[str(target)]
    assert after.drop(str(target)).equals(before.drop(str(target)))


def test_the_same_file_named_another_way_is_not_scored_twice(stream_setup, monkeypatch):
    model, folder, out = stream_setup
    score([folder], out, model)
    monkeypatch.chdir(folder.parent)
    assert score([Path("in")], out, model).already == 3
    assert score([folder / ".." / "in"], out, model).already == 3
    assert len(ScoreShards(out).read()) == 3


def test_a_foreign_or_corrupt_shard_is_set_aside_and_its_files_scored_again(stream_setup):
    model, folder, out = stream_setup
    score([folder], out, model, shard_size=2)
    first, second = ScoreShards(out).parts()
    second.write_bytes(b"PAR1 truncated")  # the shard with crop-2
    pd.DataFrame({"x": [1]}).to_parquet(out / "part-zz-foreign.parquet")
    warnings: list[str] = []
    report = score([folder], out, model, warn=warnings.append)
    assert (report.already, report.scored) == (2, 1)
    assert len(warnings) == 2 and all("moved to" in w and "_corrupt" in w for w in warnings)
    assert len(ScoreShards(out).read()) == 3 and len(pd.read_parquet(out)) == 3  # the folder reads as one table again


def test_one_stream_per_folder(stream_setup):
    model, folder, out = stream_setup
    out.mkdir()
    with RunLock(out, "aedr score"):
        with pytest.raises(FolderInUseError, match=r"in use by another aedr score run \(PID"):
            score([folder], out, model)


def test_a_deleted_files_error_row_leaves_the_table(stream_setup):
    model, folder, out = stream_setup
    bad = folder / "bad.png"
    bad.write_bytes(b"not an image")
    score([folder], out, model)
    assert (ScoreShards(out).read()["error"] != "").sum() == 1
    bad.unlink()
    assert (ScoreShards(out).read()["error"] != "").sum() == 0 and len(ScoreShards(out).read()) == 3


# -- 3. walks: links that lead nowhere ---------------------------------------------------------------
def test_a_loop_of_links_and_a_dangling_link_are_skips_not_crashes(tmp_path, monkeypatch):
    folder = tmp_path / "d"
    save_crops(folder, 1)
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")
    os.symlink(tmp_path / "gone.png", folder / "dangling.png")
    assert [p.name for p in iter_image_files([folder])] == ["a.png", "b.png", "crop-0.png", "dangling.png"]
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    result = run("score", folder, "--model", "zoo-kl-a", "--json")
    rows = {Path(r["image"]).name: r for r in json.loads(result.stdout)}
    assert np.isfinite(rows["crop-0.png"]["score"])
    for name in ("a.png", "b.png", "dangling.png"):
        assert "a link that leads to no file" in rows[name]["error"]
    out = tmp_path / "s.parquet"
    report = score([folder], out, aedr.get_plugins().model("zoo-kl-a"))
    assert (report.scored, report.skipped) == (1, 3)


# -- 4. reconstruct: one model per folder, unique names, its output never its input --------------------
def test_reconstruct_refuses_a_folder_made_by_another_model(tmp_path, monkeypatch):
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    folder = tmp_path / "in"
    save_crops(folder, 2)
    out = tmp_path / "made"
    run("reconstruct", folder, "--model", "zoo-kl-a", "--out", out)
    result = run("reconstruct", folder, "--model", "zoo-kl-b", "--out", out, ok=False)
    assert result.exit_code == 2 and "holds reconstructions made otherwise" in text(result) and "zoo-kl-a" in text(result)
    assert json.loads((out / "reconstruct.json").read_text())["model"] == "zoo-kl-a"
    result = run("reconstruct", folder, "--model", "zoo-kl-a", "--out", out, "--max-side", "16", ok=False)
    assert "max_side" in text(result)


def test_reconstruct_gives_every_input_its_own_file(tmp_path, monkeypatch):
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    crops = photo_crops(3)
    for im, name in zip(crops, ("a-2.png", "a.jpg", "a.png")):
        Image.fromarray(im.rgb).save(folder / name, quality=95)
    out = tmp_path / "made"
    result = run("reconstruct", folder, "--model", "zoo-kl-a", "--out", out)
    assert "3 reconstruction(s) written" in text(result)
    assert sorted(p.name for p in out.glob("*.png")) == ["a-2.png", "a-3.png", "a.png"]  # a.jpg took a.png; a.png then the next free number


def test_reconstruct_into_its_own_input_does_not_read_its_output(tmp_path, monkeypatch):
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    nest = tmp_path / "nest"
    save_crops(nest, 2)
    for _ in range(2):
        result = run("reconstruct", nest, "-r", "--model", "zoo-kl-a", "--out", nest / "rec")
    assert "2 already there" in text(result)
    assert not (nest / "rec" / "rec").exists()
