"""Hostile input, built by the tests themselves (no binary fixtures): metadata bombs, undecodable and
markup-like file names, images over the pixel budget, corrupt score-store parts, unwritable outputs,
two benches on one folder. Each case checks the exit code, that the message names the file or the
option, and that every other result was kept. docs/reliability.md lists them."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import aedr
import aedr.files
from aedr.bench import commands as bench_commands
from aedr.bench import load_config, run_bench
from aedr.lock import RunLock
from aedr.bench.store import ScoreStore
from aedr.cli import build_app
from aedr.images import (
    ImageDecodeError,
    ImageLoadError,
    ImageOverBudgetError,
    MetadataTooLargeError,
    UnreadableFileError,
    load_image,
)
from aedr.preprocess import split_batches
from aedr.text import markup, safe_str
from conftest import ModelsPlugin, photo_crops
from test_bench_support import BenchModels, make_models

# Tiny models: one torch thread is many times faster than two on a busy two-core machine.
pytestmark = pytest.mark.usefixtures("single_thread")

TESTS = Path(__file__).resolve().parent
POSIX_BYTES_NAMES = sys.platform.startswith("linux")  # macOS and Windows refuse names that are not UTF-8


# -- crafted files -----------------------------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int = 32, height: int = 32, *, before_idat: bytes = b"", after_idat: bytes = b"", seed: int = 0) -> bytes:
    """A valid RGB PNG written by hand, with extra chunks before or after the image data."""
    rows = np.random.default_rng(seed).integers(0, 256, (height, width * 3), dtype=np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + before_idat + _chunk(b"IDAT", zlib.compress(raw)) + after_idat + _chunk(b"IEND", b"")


_FIFTY_MB = zlib.compress(b"\0" * 50_000_000, 9)  # ~49 kB on disk


def metadata_bomb(kind: str) -> bytes:
    """A ~49 kB PNG whose zTXt or iCCP chunk decompresses to 50 MB."""
    if kind == "ztxt":
        return png_bytes(before_idat=_chunk(b"zTXt", b"Comment\0\0" + _FIFTY_MB))
    if kind == "ztxt-after-idat":
        return png_bytes(after_idat=_chunk(b"zTXt", b"Comment\0\0" + _FIFTY_MB))
    if kind == "iccp":
        return png_bytes(before_idat=_chunk(b"iCCP", b"profile\0\0" + _FIFTY_MB))
    raise ValueError(kind)


def save_photos(folder: Path, n: int, seed: int = 3, prefix: str = "") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(photo_crops(n, seed=seed)):
        p = folder / f"{prefix}{i:03d}.png"
        im.to_pil().save(p)
        paths.append(p)
    return paths


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as strict JSON readers do."""
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# -- the command line --------------------------------------------------------------------------------
@pytest.fixture
def cli(tiny_model, monkeypatch):
    monkeypatch.setattr(aedr.plugins, "_default", aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)]))
    for console in (aedr.cli.out, aedr.cli.err, bench_commands.out, bench_commands.err):
        monkeypatch.setattr(console, "_width", 1000)  # long temporary paths stay on one line
    runner = CliRunner()
    app = build_app()

    def run(*args, code=0):
        result = runner.invoke(app, [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args])
        assert result.exit_code == code, result.output + repr(result.exception)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)  # never a traceback
        return result

    return run


@pytest.fixture(scope="module")
def card_path(tmp_path_factory, tiny_model):
    """A calibration card for the test model, made once."""
    folder = tmp_path_factory.mktemp("card")
    images = [aedr.LoadedImage.from_pil(im, f"gen-{i}") for i, im in enumerate(tiny_model.generate(8, seed=50))]
    from aedr.methods.aedr_method import AEDR

    card = aedr.calibrate(tiny_model, AEDR(), images, alpha=0.1, source="test images")
    return card.save(folder / "card.json")


def no_work(monkeypatch):
    """Any image loading from now on fails the test: output checks must come before the work."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(aedr.scoring, "load_image", refuse)


# -- 1. metadata chunks that decompress past Pillow's limits -------------------------------------------
@pytest.mark.parametrize("kind", ["ztxt", "ztxt-after-idat", "iccp"])
def test_metadata_bomb_is_its_own_load_error(tmp_path, kind):
    path = tmp_path / f"{kind}.png"
    path.write_bytes(metadata_bomb(kind))
    assert path.stat().st_size < 60_000
    with pytest.raises(MetadataTooLargeError, match=f"{kind}.png"):
        load_image(path)


def test_metadata_bomb_is_a_skip_in_score_and_compat_glcm(cli, tmp_path):
    folder = tmp_path / "in"
    save_photos(folder, 2)
    (folder / "bomb-ztxt.png").write_bytes(metadata_bomb("ztxt"))
    (folder / "bomb-iccp.png").write_bytes(metadata_bomb("iccp"))
    out = tmp_path / "scores.csv"
    result = cli("score", folder, "--model", "tiny-kl", "--out", out)
    assert "bomb-ztxt.png" in result.output and "bomb-iccp.png" in result.output and "metadata chunk" in result.output
    frame = pd.read_csv(out)
    assert frame["score"].notna().sum() == 2 and np.isfinite(frame["score"].dropna()).all()
    errors = frame.loc[frame["error"].notna(), "error"]
    assert len(errors) == 2 and all("metadata chunk" in e for e in errors)

    glcm = tmp_path / "glcm.txt"
    result = cli("compat", "glcm", "--images", folder, "--out", glcm)
    assert len(glcm.read_text().splitlines()) == 2
    assert "bomb-ztxt.png" in result.output and "bomb-iccp.png" in result.output


def test_every_decoder_failure_becomes_an_image_load_error(tmp_path, monkeypatch):
    good = tmp_path / "good.png"
    good.write_bytes(png_bytes())
    import aedr.images as images

    for raised, expected in [(ZeroDivisionError("decoder bug"), ImageDecodeError), (PermissionError(13, "Permission denied"), UnreadableFileError),
                             (MemoryError(), aedr.images.ImageTooLargeError)]:
        def broken_open(*args, _exc=raised, **kwargs):
            raise _exc

        monkeypatch.setattr(images.Image, "open", broken_open)
        with pytest.raises(expected, match="good.png"):
            load_image(good)
    monkeypatch.undo()
    assert load_image(good).width == 32


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on the corrupt TIFF tags it skips
def test_fuzzed_images_raise_only_the_loaders_error(tmp_path):
    """A few hundred truncated and byte-flipped images of every format: a LoadedImage or an ImageLoadError."""
    rng = np.random.default_rng(15)
    base = Image.fromarray(photo_crops(1, size=24)[0].rgb)
    originals = {}
    for fmt, suffix in [("PNG", "png"), ("JPEG", "jpg"), ("BMP", "bmp"), ("GIF", "gif"), ("TIFF", "tif"), ("WEBP", "webp")]:
        p = tmp_path / f"base.{suffix}"
        base.save(p, format=fmt)
        originals[suffix] = p.read_bytes()
    originals["ztxt.png"] = metadata_bomb("ztxt")
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(360):
        suffix = list(originals)[i % len(originals)]
        data = bytearray(originals[suffix])
        if i % 3 == 0:  # truncated
            data = data[: int(rng.integers(0, len(data)))]
        else:  # 1..8 bytes flipped, header included
            for pos in rng.integers(0, len(data), int(rng.integers(1, 9))):
                data[pos] ^= int(rng.integers(1, 256))
        path = tmp_path / f"fuzz-{i:03d}.{suffix.split('.')[-1]}"
        path.write_bytes(bytes(data))
        try:
            im = load_image(path)
        except ImageLoadError as exc:
            assert path.name in str(exc)
            outcomes["refused"] += 1
        else:
            assert im.rgb.dtype == np.uint8 and im.gray.shape == im.rgb.shape[:2]
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10  # both paths were exercised


# -- 2. file names that are not UTF-8 ------------------------------------------------------------------
def test_safe_str_and_markup():
    bad = os.fsdecode(b"bad\xff.png") if POSIX_BYTES_NAMES else "bad\udcff.png"
    assert safe_str(bad) == "bad\\xff.png" and safe_str("café.png") == "café.png"
    assert safe_str("lone\ud800") == "lone\\ud800"
    assert markup("x[red]y.png") == "x\\[red]y.png"


@pytest.mark.skipif(not POSIX_BYTES_NAMES, reason="this file system accepts only UTF-8 names")
def test_undecodable_file_names_keep_every_score(cli, tmp_path, card_path):
    folder = tmp_path / "in"
    save_photos(folder, 2)
    bad = Path(os.fsdecode(os.fsencode(folder) + b"/bad\xff.png"))
    Image.fromarray(photo_crops(1, seed=9)[0].rgb).save(bad)
    for suffix in (".csv", ".parquet"):
        out = tmp_path / f"scores{suffix}"
        result = cli("score", folder, "--model", "tiny-kl", "--out", out)
        assert "bad\\xff.png" in result.output
        frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
        assert len(frame) == 3 and frame["score"].notna().all()
        assert any(name.endswith("bad\\xff.png") for name in frame["image"])

    out = tmp_path / "verdicts.parquet"
    verdicts = strict_json(cli("attribute", folder, "--card", card_path, "--out", out, "--json").stdout)
    assert len(verdicts) == 3 and any(v["image"].endswith("bad\\xff.png") for v in verdicts)
    frame = pd.read_parquet(out)
    assert len(frame) == 3 and any(name.endswith("bad\\xff.png") for name in frame["image"])


# -- 3. rich markup in user-provided text -----------------------------------------------------------------
def test_markup_like_names_are_shown_verbatim(cli, tmp_path, card_path):
    folder = tmp_path / "in"
    save_photos(folder, 1)
    Image.fromarray(photo_crops(1, seed=5)[0].rgb).save(folder / "x[red]y.png")
    (folder / "a[").mkdir()
    Image.fromarray(photo_crops(1, seed=6)[0].rgb).save(folder / "a[" / "]b.png")
    (folder / "c[bold]d.png").write_bytes(b"not an image [/]")
    args = [folder, folder / "a[" / "]b.png", "--model", "tiny-kl"]
    result = cli("score", *args)
    assert "x[red]y.png" in result.output and "a[/]b.png" in result.output and "c[bold]d.png" in result.output
    result = cli("attribute", folder, folder / "a[" / "]b.png", "--card", card_path)
    assert "x[red]y.png" in result.output and "a[/]b.png" in result.output
    # error messages too: a missing file whose name is markup
    result = cli("score", tmp_path / "no[/]pe.png", "--model", "tiny-kl", code=2)
    assert "no[/]pe.png" in result.output


def test_config_text_survives_in_errors(cli, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text("[methods.aedr]\nbogus = 1\n")
    result = cli("bench", "--config", config, "--models", "tiny-kl", "--dry-run", code=2)
    assert "[methods.aedr]" in result.output and "bogus" in result.output


# -- 5. huge images ---------------------------------------------------------------------------------------
def test_pixel_budget_skips_and_max_side_downscales(cli, tmp_path):
    folder = tmp_path / "in"
    save_photos(folder, 1)  # 32x32 = 1024 pixels
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / "large.png")
    out = tmp_path / "scores.csv"
    result = cli("score", folder, "--model", "tiny-kl", "--pixel-budget", 2000, "--out", out)
    assert "large.png" in result.output and "--max-side" in result.output and "budget 2000" in result.output
    frame = pd.read_csv(out)
    assert frame["score"].notna().sum() == 1 and frame["error"].dropna().str.contains("large.png").all()

    result = cli("score", folder, "--model", "tiny-kl", "--pixel-budget", 2000, "--max-side", 40, "--out", out)
    frame = pd.read_csv(out).set_index(pd.read_csv(out)["image"].map(lambda p: Path(p).name))
    assert frame["score"].notna().all()
    assert frame.loc["large.png", "downscaled_from"] == "64x48" and pd.isna(frame.loc["000.png", "downscaled_from"])
    assert "downscaled" in result.output
    with pytest.raises(ImageOverBudgetError, match="--max-side 40"):
        load_image(folder / "large.png", pixel_budget=1600)
    im = load_image(folder / "large.png", max_side=40)
    assert (im.width, im.height) == (40, 30) and im.meta["downscaled_from"] == "64x48"


def test_batches_are_bounded_by_pixels_and_announced(tiny_model):
    assert [len(b) for b in split_batches(range(5), (64, 64), 8, 2 * 64 * 64)] == [2, 2, 1]
    assert [len(b) for b in split_batches(range(3), (4096, 4096), 8)] == [1, 1, 1]  # one huge image is a batch
    assert [len(b) for b in split_batches(range(9), (32, 32), 4)] == [4, 4, 1]  # the count still bounds

    from aedr.methods.aedr_method import AEDR
    from aedr.methods.base import watch_batches

    class SmallBatches(AEDR):
        max_batch_pixels = 2 * 32 * 32

    images = photo_crops(5)
    seen = []
    with watch_batches(lambda batch, size: seen.append((len(batch), size))):
        scores = SmallBatches().score(tiny_model, images)
    assert seen == [(2, (32, 32)), (2, (32, 32)), (1, (32, 32))]
    assert np.isfinite(scores).all()
    SmallBatches().score(tiny_model, images[:1])
    assert len(seen) == 3  # no listener outside the block


def test_progress_names_a_long_single_image(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(aedr.progress, "LONG_BATCH_PIXELS", 100)  # every 32x32 image counts as long here
    path = save_photos(tmp_path / "in", 1)[0]
    result = cli("score", path, "--model", "tiny-kl")
    assert f"scoring {path} at 32x32" in result.output.replace("\n", " ")


# -- 13. minor ------------------------------------------------------------------------------------------
def test_missing_input_file_is_an_error(cli, tmp_path):
    good = save_photos(tmp_path / "in", 1)[0]
    for args in ([tmp_path / "missing.png"], [good, tmp_path / "missing.png"]):
        result = cli("score", *args, "--model", "tiny-kl", code=2)
        assert "missing.png" in result.output and "no such file" in result.output


def test_attribute_json_is_strict_with_a_status(cli, tmp_path, card_path, monkeypatch):
    paths = save_photos(tmp_path / "in", 2)
    monkeypatch.setattr(aedr.CalibrationCard, "tail_probability", lambda self, scores: np.full(len(scores), np.nan))
    text = cli("attribute", *paths, "--card", card_path, "--json").stdout
    assert "NaN" not in text and "Infinity" not in text
    records = strict_json(text)
    assert len(records) == 2
    for r in records:
        (v,) = r["verdicts"]
        assert v["tail_probability"] is None and v["status"] == "not finite: tail_probability" and math.isfinite(v["score"])
    out = tmp_path / "verdicts.json"
    cli("attribute", *paths, "--card", card_path, "--out", out)
    assert [r["status"] for r in strict_json(out.read_text())] == ["not finite: tail_probability"] * 2


def test_compat_accuracy_refuses_a_non_finite_threshold(cli, tmp_path):
    (tmp_path / "ratio.txt").write_text("1.0 2.0\n")
    (tmp_path / "glcm.txt").write_text("0.5\n")
    for value in ("nan", "inf"):
        result = cli("compat", "accuracy", "--loss-ratio", tmp_path / "ratio.txt", "--glcm", tmp_path / "glcm.txt", "--threshold", value, code=2)
        assert "--threshold" in result.output


# -- 8. output paths ------------------------------------------------------------------------------------
def _commands(tmp_path: Path, card: Path, out: Path) -> dict[str, list]:
    images = tmp_path / "in"
    return {
        "score": ["score", images, "--model", "tiny-kl", "--out", out],
        "attribute": ["attribute", images, "--card", card, "--out", out],
        "calibrate": ["calibrate", "--model", "tiny-kl", "--images", images, "--out", out],
        "compat glcm": ["compat", "glcm", "--images", images, "--out", out],
    }


@pytest.mark.parametrize("command", ["score", "attribute", "calibrate", "compat glcm"])
def test_bad_output_paths_fail_before_any_work(cli, tmp_path, card_path, monkeypatch, command):
    save_photos(tmp_path / "in", 2)
    folder = tmp_path / "existing"
    folder.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    no_work(monkeypatch)
    result = cli(*_commands(tmp_path, card_path, folder)[command], code=2)
    assert "existing" in result.output and "folder" in result.output
    result = cli(*_commands(tmp_path, card_path, a_file / "out.csv")[command], code=2)
    assert "file.txt is not a folder" in result.output

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(aedr.files.tempfile, "mkstemp", read_only)  # what a read-only folder answers
    result = cli(*_commands(tmp_path, card_path, tmp_path / "ro" / "out.csv")[command], code=2)
    assert "cannot write in folder" in result.output and "Permission denied" in result.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused_up_front(cli, tmp_path, monkeypatch):
    save_photos(tmp_path / "in", 1)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    no_work(monkeypatch)
    try:
        result = cli("score", tmp_path / "in", "--model", "tiny-kl", "--out", ro / "scores.csv", code=2)
    finally:
        ro.chmod(0o700)
    assert "ro" in result.output and "cannot write" in result.output


def test_missing_parent_folders_are_created(cli, tmp_path):
    save_photos(tmp_path / "in", 1)
    out = tmp_path / "new" / "deeper" / "scores.csv"
    cli("score", tmp_path / "in", "--model", "tiny-kl", "--out", out)
    assert len(pd.read_csv(out)) == 1


@pytest.mark.parametrize("command", ["score", "attribute", "calibrate", "compat glcm"])
def test_full_disk_at_the_end_keeps_the_results(cli, tmp_path, card_path, monkeypatch, command):
    """The target's disk is full: the results go to the temporary folder, the error says where."""
    save_photos(tmp_path / "in", 3)
    target_dir = tmp_path / "full"
    target_dir.mkdir()
    spare = tmp_path / "spare-tmp"
    spare.mkdir()
    monkeypatch.setattr(aedr.files.tempfile, "gettempdir", lambda: str(spare))
    real_write_atomic = aedr.files.write_atomic

    def full_disk(path, write):
        if Path(path).parent == target_dir:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_atomic(path, write)

    monkeypatch.setattr(aedr.files, "write_atomic", full_disk)
    suffix = ".json" if command == "calibrate" else ".txt" if command == "compat glcm" else ".csv"
    out = target_dir / f"results{suffix}"
    result = cli(*_commands(tmp_path, card_path, out)[command], code=2)
    (kept,) = spare.iterdir()
    text = " ".join(result.output.split())
    assert "No space left on device" in text and str(out) in text and str(kept) in text
    assert not list(target_dir.iterdir())
    if command == "calibrate":
        assert aedr.CalibrationCard.load(kept).n_images == 3
    elif command == "compat glcm":
        assert len(kept.read_text().splitlines()) == 3
    else:
        assert len(pd.read_csv(kept)) == 3


# -- bench: metadata bomb among the real images, corrupt store parts, output failures, the lock ----------
BENCH = dict(models=["tiny-0"], methods=["aedr"], n_cal=4, n_eval=2, chunk_size=2, report=False)


@pytest.fixture(scope="module")
def bench_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench-reliability")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(make_models(base / "models", n=1))])
    real = base / "real"
    save_photos(real, 2)
    (real / "bomb.png").write_bytes(metadata_bomb("ztxt"))
    return base, plugins, real


def _bench_console():
    import io

    from rich.console import Console

    buffer = io.StringIO()
    return Console(file=buffer, width=200), buffer


def test_bench_skips_a_metadata_bomb_among_real_images_by_name(bench_setup):
    base, plugins, real = bench_setup
    console, buffer = _bench_console()
    result = run_bench(load_config("default", out=str(base / "bomb"), real=str(real), n_real=3, **BENCH), plugins=plugins, console=console, progress=False)
    (skip,) = result.plan.sources["real"].skipped
    assert skip.id.endswith("bomb.png") and "metadata chunk" in skip.error
    assert "bomb.png" in buffer.getvalue()
    scores = result.scores
    assert (scores["status"] == "ok").all() and (scores["source"] == "real").sum() == 2


def test_corrupt_part_file_is_set_aside_and_only_its_rows_recomputed(bench_setup):
    base, plugins, _ = bench_setup
    cfg = load_config("default", out=str(base / "corrupt"), real="none", **BENCH)
    first = run_bench(cfg, plugins=plugins, progress=False)
    store = ScoreStore(cfg.out)
    rows = pd.read_parquet(store.path)
    store.path.unlink()  # as a run killed before consolidation leaves it: parts only
    store.parts_dir.mkdir(parents=True, exist_ok=True)
    halves = [rows.iloc[:3], rows.iloc[3:]]
    for i, half in enumerate(halves):
        half.to_parquet(store.parts_dir / f"part-{i:020d}-1-000000.parquet", index=False)
    broken = store.parts_dir / f"part-{0:020d}-1-000000.parquet"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated

    console, buffer = _bench_console()
    again = run_bench(cfg, plugins=plugins, console=console, progress=False)
    warning = " ".join(buffer.getvalue().split())
    assert broken.name in warning and "unreadable" in warning and "computed again" in warning
    assert again.stats.scored == len(halves[0]) and again.stats.already_saved == len(halves[1])
    (aside,) = (Path(cfg.out) / "scores" / "corrupt").iterdir()
    assert aside.name.startswith(broken.name)
    pd.testing.assert_series_equal(
        again.scores.sort_values("image_hash")["score"].reset_index(drop=True),
        first.scores.sort_values("image_hash")["score"].reset_index(drop=True),
    )


def test_bench_output_failure_keeps_the_scores_and_a_rerun_writes_the_files(bench_setup, cli, monkeypatch):
    base, plugins, _ = bench_setup
    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    out = base / "full"

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(aedr.bench.outputs, "write_text_atomic", full_disk)
    args = ["bench", "--models", "tiny-0", "--methods", "aedr", "--n-cal", 4, "--n-eval", 2, "--real", "none", "--out", out, "--no-report", "--no-progress"]
    result = cli(*args, code=2)
    text = " ".join(result.output.split())
    assert "No space left on device" in text and str(out / "scores" / "store.parquet") in text and "Traceback" not in text
    assert len(pd.read_parquet(out / "scores" / "store.parquet")) == 4 + 2
    monkeypatch.undo()
    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    result = cli(*args)
    assert "0 scores computed, 6 reused" in " ".join(result.output.split())
    assert (out / "metrics.json").is_file()


def test_bench_chunk_write_failure_keeps_the_saved_chunks(bench_setup, monkeypatch):
    base, plugins, _ = bench_setup
    cfg = load_config("default", out=str(base / "full-chunks"), real="none", **BENCH)
    real_write_chunk = ScoreStore.write_chunk
    written = []

    def fills_up(self, rows):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(len(rows))
        return real_write_chunk(self, rows)

    monkeypatch.setattr(ScoreStore, "write_chunk", fills_up)
    with pytest.raises(aedr.files.OutputError, match="No space left on device") as info:
        run_bench(cfg, plugins=plugins, progress=False)
    assert "1 chunk(s)" in str(info.value) and "scores/parts" in str(info.value)
    monkeypatch.undo()
    resumed = run_bench(cfg, plugins=plugins, progress=False)
    assert resumed.stats.already_saved == written[0] and resumed.stats.scored == 6 - written[0]


def test_bench_out_that_is_a_file_fails_up_front(bench_setup, cli, monkeypatch):
    base, plugins, _ = bench_setup
    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    a_file = base / "not-a-folder"
    a_file.write_text("x")
    result = cli("bench", "--models", "tiny-0", "--methods", "aedr", "--real", "none", "--out", a_file, code=2)
    assert "not-a-folder is a file" in " ".join(result.output.split())


def test_second_bench_on_one_folder_names_the_running_pid(bench_setup, cli, monkeypatch):
    base, plugins, _ = bench_setup
    monkeypatch.setattr(aedr.plugins, "_default", plugins)
    out = base / "locked"
    out.mkdir()
    with RunLock(out):
        result = cli("bench", "--models", "tiny-0", "--methods", "aedr", "--real", "none", "--out", out, code=2)
        text = " ".join(result.output.split())
        assert "in use by another aedr bench run" in text and f"PID {os.getpid()}" in text and str(out) in text
    assert not (out / "images").exists()  # the second run did no work
    with RunLock(out):  # released: free again
        pass


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_lock_of_a_killed_run_is_not_stale(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS.parent)!r})
        from aedr.lock import RunLock
        RunLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL and "locked" in proc.stdout, proc.stderr
    assert RunLock(tmp_path).holder()["pid"] != os.getpid()  # the dead run's record is still there ...
    with RunLock(tmp_path) as lock:  # ... but its lock died with it
        assert lock.holder()["pid"] == os.getpid()
