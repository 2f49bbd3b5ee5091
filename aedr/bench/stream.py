"""Scoring any number of image files under one model: streamed, in parquet shards, resumable.

``aedr score DIR... --executor NAME --out scores.parquet`` never holds more than a window of file
names and one shard of images: the files are listed lazily (each folder sorted by name), taken a
window at a time, scored by the executor and written as they come, one parquet file per shard, under
the folder ``scores.parquet/`` (``pandas.read_parquet("scores.parquet")`` reads them as one table).

Every row is keyed by (content hash, model, method, options hash), with the file it came from
(``image``); an unusable file is a row with an ``error`` and no score. A rerun into the same folder
skips every file a shard already holds, so an interrupted run resumes, and a run with another
executor continues it: the rows are the same whichever executor computed them, as both call
:func:`score_paths`.
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

from ..files import write_atomic, write_frame, write_text_atomic
from ..images import LoadedImage, iter_image_files
from ..methods.base import Method
from ..models import ModelPlugin
from ..scoring import ScoreTable, Skip, load_images, score_images
from ..text import safe_str

COLUMNS = [*ScoreTable.COLUMNS, "error"]
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
        """The files (``image``) a shard already holds for this model and options."""
        out: set[str] = set()
        for part in self.parts():
            frame = pd.read_parquet(part, columns=["image", "model", "options_hash"])
            frame = frame[(frame["model"] == model) & (frame["options_hash"] == options_hash)]
            out.update(frame["image"].astype(str))
        return out

    def write(self, frame: pd.DataFrame) -> Path:
        """One shard, written atomically (a killed run leaves whole shards only)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        return write_atomic(path, lambda tmp: write_frame(normalised(frame), tmp, ".parquet"))

    def read(self) -> pd.DataFrame:
        parts = self.parts()
        if not parts:
            return pd.DataFrame(columns=COLUMNS)
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)

    def describe(self, task: FileScoring) -> None:
        record = {"model": task.model.name, "method": task.method.label, "options_hash": task.method.options_hash(),
                  "options": task.method.options_dict(include_runtime=False), "columns": COLUMNS}
        write_text_atomic(self.folder / MANIFEST, json.dumps(record, indent=1, default=str))


def prepare(task: FileScoring) -> tuple[ScoreShards, Iterator[list[str]], int]:
    """The shard folder, the windows of file names still to score and how many were already done."""
    if task.out.exists() and not task.out.is_dir():
        raise FileExistsError(f"{safe_str(task.out)} is a file; streamed scores are a folder of parquet shards (give a new name)")
    shards = ScoreShards(task.out)
    done = shards.done(task.model.name, task.method.options_hash())
    missing = [p for p in task.inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(safe_str(p) for p in missing)} (nothing was done)")
    names = (safe_str(p) for p in iter_image_files(task.inputs, recursive=task.recursive))
    todo = (n for n in names if n not in done)
    windows = iter(lambda: list(itertools.islice(todo, task.window)), [])
    task.out.mkdir(parents=True, exist_ok=True)
    shards.describe(task)
    return shards, windows, len(done)


def score_paths(model: ModelPlugin, method: Method, paths: Sequence[str], load_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """One shard's rows: every file loaded and scored (lower = belonging), unusable ones with an error."""
    loaded = load_images(paths, **(load_options or {}))
    return score_loaded(model, method, loaded.images, loaded.skipped)


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


def shards_of(names: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(names)
    return iter(lambda: list(itertools.islice(it, size)), [])


def stream_locally(task: FileScoring) -> StreamReport:
    """In this process: one shard at a time."""
    report = StreamReport()
    t0 = time.perf_counter()
    shards, windows, report.already = prepare(task)
    for window in windows:
        for names in shards_of(window, task.shard_size):
            frame = score_paths(task.model, task.method, names, task.load_options)
            shards.write(frame)
            count(report, frame)
            if task.progress is not None:
                task.progress(len(names))
    report.seconds = time.perf_counter() - t0
    return report


def count(report: StreamReport, frame: pd.DataFrame) -> None:
    bad = frame["error"].astype(str) != ""
    report.skipped += int(bad.sum())
    report.scored += int((~bad).sum())
    report.shards += 1
