"""Scoring any number of image files under one model: streamed, in parquet shards, resumable.

``aedr score DIR... --executor NAME --out scores.parquet`` never holds more than a window of file
names and one shard of images: the folders are walked lazily (each folder's entries by name, a
sub-folder's files where its name falls), the files taken a window at a time, scored by the executor
and written as they come, one parquet file per shard, under the folder ``scores.parquet/``
(``pandas.read_parquet("scores.parquet")`` reads them as one table; :meth:`ScoreShards.read` gives
one row per file).

Each row names its file (``image``), the content hash of its pixels, the model, the method and the
options hash; a file that cannot be used is a row with an ``error`` and no score. A rerun into the
same folder skips every file (by name) that a shard already holds a score for under that model and
options hash, and tries the others again (the files with an error too: a later ``--max-side`` may
make them usable), so an interrupted run resumes, and a run with another executor continues it: the
rows are the same whichever executor computed them, as both call :func:`score_loaded`.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from ..files import json_text, prepare_output_folder, write_atomic, write_frame, write_text_atomic
from ..images import LoadedImage, iter_image_files, load_image
from ..methods.base import Method
from ..models import ModelPlugin
from ..scoring import ScoreTable, Skip, score_images
from ..text import safe_str

COLUMNS = [*ScoreTable.COLUMNS, "error"]
KEY = ["image", "model", "options_hash"]
MANIFEST = "_aedr.json"


@dataclass
class FileScoring:
    """What to score and where: the files of ``inputs`` (folders expanded, ``recursive`` or not),
    under ``model`` with ``method``, into the shard folder ``out``; ``shard_size`` images per shard,
    ``window`` file names handed to the executor at a time, ``load_options`` for
    :func:`aedr.images.load_image` (``max_side``, ``pixel_budget``)."""

    inputs: Sequence[Path]
    model: ModelPlugin
    method: Method
    out: Path
    recursive: bool = False
    shard_size: int = 256
    window: int = 65536
    load_options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int], None] | None = None


class StreamFailed(RuntimeError):
    """The executor stopped before every file was scored; the shards written so far are kept."""


@dataclass
class StreamReport:
    scored: int = 0
    skipped: int = 0
    already: int = 0
    shards: int = 0
    seconds: float = 0.0


class ScoreShards:
    """A folder of parquet shards with one score table between them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []

    def done(self, model: str, options_hash: str) -> set[str]:
        """The files (``image``) a shard already holds a score for, under this model and options."""
        out: set[str] = set()
        for part in self.parts():
            frame = pd.read_parquet(part, columns=["image", "model", "options_hash", "error"])
            frame = frame[(frame["model"] == model) & (frame["options_hash"] == options_hash) & (frame["error"] == "")]
            out.update(frame["image"].astype(str))
        return out

    def write(self, frame: pd.DataFrame) -> Path:
        """One shard, written atomically (a killed run leaves whole shards only)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        return write_atomic(path, lambda tmp: write_frame(normalised(frame), tmp, ".parquet"))

    def read(self) -> pd.DataFrame:
        """Every shard's rows, one per (file, model, options hash): its score if a run scored it, else
        the last error a run recorded."""
        parts = self.parts()
        if not parts:
            return pd.DataFrame(columns=COLUMNS)
        frame = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        frame["_scored"] = frame["error"] == ""
        frame = frame.sort_values("_scored", kind="stable").drop_duplicates(KEY, keep="last")
        return frame.drop(columns="_scored").sort_index().reset_index(drop=True)

    def describe(self, task: FileScoring) -> None:
        """Record in ``_aedr.json`` which (model, method, options) the folder's rows come from."""
        record = {"model": task.model.name, "method": task.method.label, "options_hash": task.method.options_hash(),
                  "options": task.method.options_dict(include_runtime=False)}
        path = self.folder / MANIFEST
        try:
            runs = json.loads(path.read_text()).get("runs", [])
        except (OSError, ValueError, AttributeError):
            runs = []
        runs = [r for r in runs if (r.get("model"), r.get("options_hash")) != (record["model"], record["options_hash"])] + [record]
        write_text_atomic(path, json_text({"columns": COLUMNS, "runs": runs}))


class Pending:
    """The files of a task still to score, in windows; ``already``: how many of its files passed so
    far already had a score (each also reported to ``task.progress`` as it is passed)."""

    def __init__(self, task: FileScoring, done: set[str]):
        self.task, self.done, self.already = task, done, 0

    def files(self) -> Iterator[Path]:
        for path in iter_image_files(self.task.inputs, recursive=self.task.recursive):
            if safe_str(path) not in self.done:  # the real path is loaded; its text names the row
                yield path
            else:
                self.already += 1
                if self.task.progress is not None:
                    self.task.progress(1)

    def windows(self) -> Iterator[list[Path]]:
        return shards_of(self.files(), self.task.window)


def prepare(task: FileScoring) -> tuple[ScoreShards, Pending]:
    """The task's shard folder (made, or checked) and its pending files."""
    missing = [p for p in task.inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(safe_str(p) for p in missing)} (nothing was done)")
    prepare_output_folder(task.out, option="--out")
    shards = ScoreShards(task.out)
    pending = Pending(task, shards.done(task.model.name, task.method.options_hash()))
    shards.describe(task)
    return shards, pending


def load_paths(paths: Sequence[Path], load_options: dict[str, Any] | None = None) -> tuple[list[LoadedImage], list[Skip]]:
    """Each file loaded (:func:`aedr.images.load_image`), or its reason for being unusable."""
    from ..images import ImageLoadError

    images, skipped = [], []
    for p in paths:
        try:
            images.append(load_image(p, **(load_options or {})))
        except ImageLoadError as exc:
            skipped.append(Skip(safe_str(p), str(exc)))
    return images, skipped


def score_paths(model: ModelPlugin, method: Method, paths: Sequence[Path], load_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """One shard's rows: every file loaded and scored (lower = belonging), unusable ones with an error."""
    images, skipped = load_paths(paths, load_options)
    return score_loaded(model, method, images, skipped)


def score_loaded(model: ModelPlugin, method: Method, images: Sequence[LoadedImage], skipped: Sequence[Skip]) -> pd.DataFrame:
    """The rows of :func:`score_paths` for files already loaded (``skipped``: those that could not be)."""
    table = score_images(model, method, images)
    table.skipped = list(skipped) + table.skipped
    frame = table.with_skips()
    frame["model"], frame["method"], frame["options_hash"] = model.name, method.label, method.options_hash()
    return normalised(frame)


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """The shards' one schema: ``score`` float64, every other column text ("" where missing: a
    skipped file has no hash), so that the shards read as one table."""
    out = pd.DataFrame(index=frame.index)
    for c in COLUMNS:
        if c == "score":
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        else:
            values = frame[c].astype(object)
            out[c] = values.where(values.notna(), "").map(str)
    return out.reset_index(drop=True)


def shards_of(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    return iter(lambda: list(itertools.islice(it, size)), [])


def stream_locally(task: FileScoring) -> StreamReport:
    """In this process: one shard at a time."""
    report = StreamReport()
    t0 = time.perf_counter()
    shards, pending = prepare(task)
    try:
        for window in pending.windows():
            for paths in shards_of(window, task.shard_size):
                frame = score_paths(task.model, task.method, paths, task.load_options)
                write_shard(shards, frame, report)
                if task.progress is not None:
                    task.progress(len(paths))
    finally:
        report.already = pending.already
        report.seconds = time.perf_counter() - t0
    return report


def write_shard(shards: ScoreShards, frame: pd.DataFrame, report: StreamReport) -> None:
    """Write one shard and count its rows; a failed write stops the run with the shards kept."""
    try:
        shards.write(frame)
    except OSError as exc:
        raise StreamFailed(f"could not write a shard into {safe_str(shards.folder)} ({exc.strerror or exc}); "
                           f"the {report.shards} shard(s) written are kept: rerun the same command to score the rest") from exc
    bad = frame["error"].astype(str) != ""
    report.skipped += int(bad.sum())
    report.scored += int((~bad).sum())
    report.shards += 1
