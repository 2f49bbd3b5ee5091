"""``aedr score --executor``: files streamed into parquet shards, a shard at a time, resumable, with
the same rows as the in-memory path (the Ray side is in test_ray.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aedr
from aedr.bench import stream
from aedr.bench.execute import LocalExecutor
from aedr.bench.stream import COLUMNS, FileScoring, ScoreShards
from aedr.scoring import score_files
from conftest import cli_runner


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """11 zoo crops as PNG files, one unreadable file and one too small for the autoencoder."""
    root = tmp_path_factory.mktemp("stream-in")
    for im in aedr.get_plugins().dataset("zoo-real-eval").images()[:11]:
        Image.fromarray(im.rgb).save(root / f"{im.id.split('/')[-1]}.png")
    (root / "broken.png").write_bytes(b"not an image")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "tiny.png")
    return root


@pytest.fixture(scope="module")
def model():
    return aedr.get_plugins().model("zoo-kl-a")


def task(folder, out, model, **kw) -> FileScoring:
    return FileScoring([folder], model, aedr.get_method("aedr"), out, **kw)


def test_shards_hold_the_in_memory_scores_and_the_skips(folder, model, tmp_path):
    out = tmp_path / "scores.parquet"
    report = LocalExecutor().score_files(task(folder, out, model, shard_size=4))
    assert (report.scored, report.skipped, report.already, report.shards) == (11, 2, 0, 4)
    shards = ScoreShards(out)
    assert len(shards.parts()) == 4
    frame = pd.read_parquet(out)  # the folder reads as one table
    assert list(frame.columns) == COLUMNS and len(frame) == 13
    ref = score_files(sorted(folder.glob("*.png")), model, aedr.get_method("aedr"))
    ok = frame[frame["error"] == ""].set_index("image")["score"].sort_index()
    np.testing.assert_allclose(ok.to_numpy(), ref.rows.set_index("image")["score"].sort_index().to_numpy(), rtol=1e-6)
    errors = frame[frame["error"] != ""].set_index("image")["error"]
    assert set(errors.index) == {str(folder / "broken.png"), str(folder / "tiny.png")}
    assert frame["score"][frame["error"] != ""].isna().all()


def test_an_interrupted_stream_resumes_without_scoring_anything_twice(folder, model, tmp_path, monkeypatch):
    out = tmp_path / "scores.parquet"
    seen: list[str] = []
    real = stream.score_paths

    def counting(model, method, paths, load_options=None):
        seen.extend(paths)
        return real(model, method, paths, load_options)

    monkeypatch.setattr(stream, "score_paths", counting)

    def stop_after_two_shards(n, calls=[0]):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalExecutor().score_files(task(folder, out, model, shard_size=3, progress=stop_after_two_shards))
    assert len(ScoreShards(out).parts()) == 2 and len(seen) == 6
    report = LocalExecutor().score_files(task(folder, out, model, shard_size=3))
    assert report.already == 6 and report.scored + report.skipped == 7
    assert len(seen) == 13 == len(set(seen))  # every file once
    frame = pd.read_parquet(out)
    assert len(frame) == 13 and frame["image"].is_unique
    # another method (another options hash) in the same folder is scored afresh; both are kept
    other = FileScoring([folder], model, aedr.get_method("aedr", distance="l1"), out, shard_size=20)
    assert LocalExecutor().score_files(other).already == 0
    assert len(pd.read_parquet(out)) == 26


def test_the_stream_holds_one_shard_of_images_and_one_window_of_names(folder, model, tmp_path, monkeypatch):
    sizes: list[int] = []
    real = stream.load_images

    def recording(paths, **kw):
        sizes.append(len(paths))
        return real(paths, **kw)

    monkeypatch.setattr(stream, "load_images", recording)
    t = task(folder, tmp_path / "s.parquet", model, shard_size=5, window=7)
    _, windows, _ = stream.prepare(t)
    assert [len(w) for w in windows] == [7, 6]
    LocalExecutor().score_files(task(folder, tmp_path / "t.parquet", model, shard_size=5, window=7))
    assert sizes == [5, 2, 5, 1]  # shards never span windows, never exceed shard_size


def test_the_command(folder, tmp_path, monkeypatch):
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    out = tmp_path / "scores.parquet"
    result = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", out, "--shard-size", "5")
    text = " ".join(result.output.split())
    assert "11 scored, 2 skipped, 0 already in" in text and "3 shard(s) written" in text
    assert len(pd.read_parquet(out)) == 13
    text = " ".join(run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", out).output.split())
    assert "0 scored, 0 skipped, 13 already in" in text
    for args, message in [
        (["--executor", "local", "--out", tmp_path / "x.csv"], "give --out NAME.parquet"),
        (["--executor", "local"], "give --out NAME.parquet"),
        (["--executor", "local", "--out", tmp_path / "y.parquet", "--perturb", "jpeg:90"], "--perturb cannot be streamed"),
        (["--executor", "nope", "--out", tmp_path / "z.parquet"], "nope"),
        (["--executor", "local", "--ray-address", "auto", "--out", tmp_path / "z.parquet"], "--ray-address needs the ray executor"),
    ]:
        result = run("score", folder, "--model", "zoo-kl-a", *args, ok=False)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
    (tmp_path / "file.parquet").write_text("x")
    result = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", tmp_path / "file.parquet", ok=False)
    assert result.exit_code == 2 and "is a file" in result.output
