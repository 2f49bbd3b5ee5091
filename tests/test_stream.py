"""``aedr score --executor``: files streamed into parquet shards, a shard at a time, resumable, with
the same rows as the in-memory path (the Ray side is in test_ray.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aedr
from aedr import stream
from aedr.executors import LocalExecutor
from aedr import kernel
from aedr.stream import COLUMNS, FileScoring, ScoreShards
from aedr.images import iter_image_files
from aedr.scoring import score_files
from pathlib import Path
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


LOCAL = LocalExecutor()


def task(folder, out, model, **kw) -> FileScoring:
    return FileScoring([folder], model, aedr.get_method("aedr"), out, **kw)


def test_shards_hold_the_in_memory_scores_and_the_skips(folder, model, tmp_path):
    out = tmp_path / "scores.parquet"
    report = stream.stream_files(task(folder, out, model, shard_size=4), LOCAL)
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
    real = kernel.score_item

    def counting(item, *args, **kw):
        seen.extend(s.path for s in item.sources)
        return real(item, *args, **kw)

    monkeypatch.setattr(kernel, "score_item", counting)

    def stop_after_two_shards(n, calls=[0]):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream.stream_files(task(folder, out, model, shard_size=3, progress=stop_after_two_shards), LOCAL)
    assert len(ScoreShards(out).parts()) == 2 and len(seen) == 6  # broken.png and 5 crops
    report = stream.stream_files(task(folder, out, model, shard_size=3), LOCAL)
    assert report.already == 5 and report.scored + report.skipped == 8  # the error row is tried again
    assert len(seen) == 14 and len(set(seen)) == 13 and seen.count(str(folder / "broken.png")) == 2
    assert len(pd.read_parquet(out)) == 14  # the raw rows: broken.png's error twice
    frame = ScoreShards(out).read()  # one row per file
    assert len(frame) == 13 and frame["image"].is_unique
    # another method (another options hash) in the same folder is scored afresh; both are kept
    other = FileScoring([folder], model, aedr.get_method("aedr", distance="l1"), out, shard_size=20)
    assert stream.stream_files(other, LOCAL).already == 0
    assert len(ScoreShards(out).read()) == 26
    import json

    runs = json.loads((out / stream.MANIFEST).read_text())["runs"]
    assert [r["method"] for r in runs] == ["aedr", "aedr(distance=l1)"]


def test_the_stream_holds_one_shard_of_images_and_one_window_of_names(folder, model, tmp_path, monkeypatch):
    sizes: list[int] = []
    real = kernel.score_item

    def recording(item, *args, **kw):
        sizes.append(len(item.sources))
        return real(item, *args, **kw)

    monkeypatch.setattr(kernel, "score_item", recording)
    with stream.streaming(task(folder, tmp_path / "s.parquet", model, shard_size=5, window=7)) as (_, pending):
        assert [len(w) for w in pending.windows()] == [7, 6]
    stream.stream_files(task(folder, tmp_path / "t.parquet", model, shard_size=5, window=7), LOCAL)
    assert sizes == [5, 2, 5, 1]  # shards never span windows, never exceed shard_size


def test_folders_are_walked_lazily_in_name_order(tmp_path):
    for name in ("b.png", "a.png", "c.txt", "sub/z.png", "sub/y.jpg", ".hidden/x.png", "sub/deeper/w.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    walk = iter_image_files([tmp_path], recursive=True)
    assert next(walk) == tmp_path / "a.png"  # a generator: nothing listed ahead
    assert [p.relative_to(tmp_path).as_posix() for p in walk] == ["b.png", "sub/deeper/w.png", "sub/y.jpg", "sub/z.png"]
    assert [p.name for p in iter_image_files([tmp_path])] == ["a.png", "b.png"]


def test_a_file_name_that_is_not_utf8_is_scored_and_resumed(model, tmp_path):
    import os

    root = tmp_path / "in"
    root.mkdir()
    odd = Path(os.fsdecode(bytes(root) + b"/caf\xe9.png"))
    Image.fromarray(aedr.get_plugins().dataset("zoo-real-eval").images()[0].rgb).save(odd)
    out = tmp_path / "s.parquet"
    report = stream.stream_files(task(root, out, model), LOCAL)
    assert (report.scored, report.skipped) == (1, 0)
    frame = ScoreShards(out).read()
    assert frame["error"].tolist() == [""] and np.isfinite(frame["score"]).all()
    assert stream.stream_files(task(root, out, model), LOCAL).already == 1


def test_the_command(folder, tmp_path, monkeypatch):
    run = cli_runner(aedr.get_plugins(), monkeypatch)
    out = tmp_path / "scores.parquet"
    result = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", out, "--shard-size", "5")
    text = " ".join(result.output.split())
    assert "11 scored, 2 skipped, 0 already scored in" in text and "3 shard(s) written" in text
    assert len(pd.read_parquet(out)) == 13
    text = " ".join(run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", out).output.split())
    assert "0 scored, 2 skipped, 11 already scored in" in text  # the unusable files are tried again
    report = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", out, "--json").output
    assert '"already": 11' in report
    for args, message in [
        (["--executor", "local", "--out", tmp_path / "x.csv"], "give --out NAME.parquet"),
        (["--executor", "local"], "give --out NAME.parquet"),
        (["--executor", "nope", "--out", tmp_path / "z.parquet"], "executor 'nope'"),
        (["--executor", "local", "--executor-option", "x=1", "--out", tmp_path / "z.parquet"], "executor 'local'"),
        (["--shard-size", "4"], "go with --executor"),
        (["--executor", "local", "--ray-address", "auto", "--out", tmp_path / "z.parquet"], "--ray-address needs the ray executor"),
    ]:
        result = run("score", folder, "--model", "zoo-kl-a", *args, ok=False)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (args, result.output)
    perturbed = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", tmp_path / "y.parquet", "--perturb", "jpeg:90")
    assert "11 scored, 2 skipped" in " ".join(perturbed.output.split())  # --perturb streams (it was refused before)
    (tmp_path / "file.parquet").write_text("x")
    result = run("score", folder, "--model", "zoo-kl-a", "--executor", "local", "--out", tmp_path / "file.parquet", ok=False)
    assert result.exit_code == 2 and "is a file" in " ".join(result.output.split())


def test_perturbed_copies_stream_as_aedr_score_perturb_scores_them(folder, model, tmp_path):
    from aedr.scoring import score_images

    chains = aedr.get_plugins().perturbations_for("jpeg:90 crop:0.9")
    out = tmp_path / "p.parquet"
    report = stream.stream_files(task(folder, out, model, perturbations=chains, shard_size=5), LOCAL)
    assert (report.scored, report.skipped) == (22, 4)  # 11 files x 2 perturbations; broken.png and tiny.png under each
    frame = ScoreShards(out).read()
    ok = frame[frame["error"] == ""].set_index(["image", "perturbation"])["score"].sort_index()
    images = [aedr.load_image(p) for p in sorted(folder.glob("*.png")) if p.name not in ("broken.png", "tiny.png")]
    ref = score_images(model, aedr.get_method("aedr"), images, perturbations=chains).rows
    expected = ref.set_index(["image", "perturbation"])["score"].sort_index()
    assert ok.index.equals(expected.index)
    np.testing.assert_array_equal(ok.to_numpy(), expected.to_numpy())
    assert stream.stream_files(task(folder, out, model, perturbations=chains), LOCAL).already == 11
    assert stream.stream_files(task(folder, out, model, perturbations=chains[:1]), LOCAL).already == 11
    assert stream.stream_files(task(folder, out, model), LOCAL).already == 0  # clean copies were never scored
