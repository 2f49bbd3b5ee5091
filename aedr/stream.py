"""Scoring any number of image files under one model: streamed, in parquet shards, resumable.

``aedr score DIR... --executor NAME --out scores.parquet`` never holds more than a window of file
names and one shard of images: the folders are walked lazily (each folder's entries by name, a
sub-folder's files where its name falls), the files taken a window at a time, scored by the executor
and written as they come, one parquet file per shard, under the folder ``scores.parquet/``
(``pandas.read_parquet("scores.parquet")`` reads them as one table; :meth:`ScoreShards.read` gives
one row per file).

Each row names its file (``image``, as given; ``path``, resolved), the content hash of its pixels,
the model and its weights fingerprint, the method and the options hash, the load options
(``--max-side``, ``--pixel-budget``) and the file's size and modification time (``file_stamp``); a
file that cannot be used is a row with an ``error`` and no score. A rerun into the same folder skips
every file that a shard already holds a score for under the same key (:data:`KEY`: resolved path,
model, weights, options, load options) whose size and modification time have not changed since,
and tries the others again (the files with an error too: a later ``--max-side`` may make them
usable), so an interrupted run resumes, and a run with another executor continues it: the rows are
the same whichever executor computed them, as both call :func:`score_loaded` with the same torch
thread count. One run at a time per folder (the bench's lock); an unreadable shard is set aside
into ``_corrupt/`` and its files scored again.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from .files import json_text, prepare_output_folder, set_aside, write_atomic, write_frame, write_text_atomic
from .images import LoadedImage, iter_image_files, load_image
from .lock import RunLock
from .methods.base import Method
from .models import ModelPlugin
from .scoring import ScoreTable, Skip, score_images
from .text import safe_str

if TYPE_CHECKING:
    from .perturbations import Chain

# ``path``: the file's resolved path; ``weights``: the model's autoencoder fingerprint; ``load_options``:
# how files were loaded ("" for the defaults); ``file_stamp``: "size:mtime_ns" of the file when read
COLUMNS = [*ScoreTable.COLUMNS, "error", "path", "weights", "load_options", "file_stamp", "perturbation"]
KEY = ["path", "model", "weights", "options_hash", "load_options", "perturbation"]
REQUIRED = ("image", "model", "options_hash", "score", "error")
MANIFEST = "_aedr.json"
CORRUPT_DIR = "_corrupt"  # a leading underscore: parquet readers skip it when they read the folder


@dataclass
class FileScoring:
    """What to score and where: the files of ``inputs`` (folders expanded, ``recursive`` or not),
    under ``model`` with ``method``, into the shard folder ``out``; ``shard_size`` images per shard,
    ``window`` file names handed to the executor at a time, ``load_options`` for
    :func:`aedr.images.load_image` (``max_side``, ``pixel_budget``); ``warn`` says when an
    unreadable shard is set aside (default: :func:`warnings.warn`). With ``perturbations``, each
    file's perturbed copies are scored instead (a row per file and perturbation), each seeded by
    ``seed`` (default: the method's) and the image's content, as ``aedr score --perturb`` does."""

    inputs: Sequence[Path]
    model: ModelPlugin
    method: Method
    out: Path
    recursive: bool = False
    shard_size: int = 256
    window: int = 65536
    load_options: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int], None] | None = None
    warn: Callable[[str], None] | None = None  # one sentence per unreadable shard set aside
    perturbations: Sequence["Chain"] = ()
    seed: int | None = None

    @property
    def perturbation_ids(self) -> list[str]:
        """The ``perturbation`` of each row a file gets: "" (clean), or one per perturbation."""
        return [c.id for c in self.perturbations] or [""]


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
    """A folder of parquet shards with one score table between them. A shard that cannot be read
    (truncated, not parquet, lacking the columns) is moved into ``_corrupt/`` with a warning."""

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.warn = warn

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []

    def frames(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every readable shard, oldest first, with ``columns`` only (those older shards lack filled in)."""
        import pyarrow.parquet as pq

        wanted = list(columns or COLUMNS)
        for part in self.parts():
            try:
                present = set(pq.read_schema(part).names)
                missing = [c for c in REQUIRED if c not in present]
                if missing:
                    raise ValueError(f"lacks column(s) {', '.join(missing)}")
                frame = pd.read_parquet(part, columns=[c for c in dict.fromkeys([*wanted, "image"]) if c in present])
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # pyarrow raises its own error types
                set_aside(part, self.folder / CORRUPT_DIR, f"score shard {safe_str(part)}", f"{type(exc).__name__}: {exc}", self.warn)
                continue
            yield upgraded(frame, wanted)[wanted]

    def done(self, key: dict[str, str], perturbations: Sequence[str] = ("",)) -> dict[str, str]:
        """resolved path -> file stamp of every file a shard holds a score for under ``key`` (every
        column of :data:`KEY` but ``path`` and ``perturbation``) and each of ``perturbations``, all
        made from the file as it was then (one stamp)."""
        stamps: dict[tuple[str, str], str] = {}
        for frame in self.frames(["path", "file_stamp", "error", "perturbation", *key]):
            hit = frame["error"] == ""
            for column, value in key.items():
                hit &= frame[column] == value
            stamps.update(zip(zip(frame.loc[hit, "path"], frame.loc[hit, "perturbation"]), frame.loc[hit, "file_stamp"]))
        out: dict[str, str] = {}
        for path in {p for p, _ in stamps}:
            seen = {stamps.get((path, pid)) for pid in perturbations}
            if len(seen) == 1 and None not in seen:
                out[path] = seen.pop()
        return out

    def write(self, frame: pd.DataFrame) -> Path:
        """One shard, written atomically (a killed run leaves whole shards only); names sort in the
        order the shards were written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        return write_atomic(path, lambda tmp: write_frame(normalised(frame), tmp, ".parquet"))

    def read(self) -> pd.DataFrame:
        """One row per file and :data:`KEY`: the one written last (its score, or the error of the last
        try). The error rows of files that no longer exist are left out."""
        frames = list(self.frames())
        if not frames:
            return pd.DataFrame(columns=COLUMNS)
        frame = pd.concat(frames, ignore_index=True).drop_duplicates(KEY, keep="last")
        errors = frame.index[frame["error"] != ""]  # only these are looked up on disk
        gone = [i for i in errors if not os.path.lexists(frame.at[i, "path"])]
        return frame.drop(index=gone).reset_index(drop=True)

    def describe(self, task: FileScoring) -> None:
        """Record in ``_aedr.json`` which (model, weights, method, options, load options) the folder's
        rows come from, and the torch thread count that scored them."""
        import torch

        record = {"model": task.model.name, "weights": task.model.autoencoder_fingerprint(), "method": task.method.label,
                  "options_hash": task.method.options_hash(), "options": task.method.options_dict(include_runtime=False),
                  "load_options": load_options_text(task.load_options), "perturbations": task.perturbation_ids,
                  "threads": torch.get_num_threads()}
        path = self.folder / MANIFEST
        try:
            runs = json.loads(path.read_text()).get("runs", [])
        except (OSError, ValueError, AttributeError):
            runs = []
        same = ("model", "weights", "options_hash", "load_options", "perturbations")
        runs = [r for r in runs if tuple(r.get(k) for k in same) != tuple(record[k] for k in same)] + [record]
        write_text_atomic(path, json_text({"columns": COLUMNS, "runs": runs}))


def upgraded(frame: pd.DataFrame, columns: Sequence[str] = COLUMNS) -> pd.DataFrame:
    """A shard with ``columns`` of the current schema: shards written before a column existed get it
    empty (``path`` from ``image``), so their rows never match a key and their files are scored again."""
    for column in columns:
        if column not in frame.columns:
            frame[column] = frame["image"] if column == "path" else ("" if column != "score" else float("nan"))
    return frame


def load_options_text(options: dict[str, Any]) -> str:
    """The load options as the key holds them: ``max_side=16,pixel_budget=10000`` ("" for none set)."""
    return ",".join(f"{k}={v}" for k, v in sorted(options.items()) if v not in (None, 0))


def file_identity(path: Path) -> tuple[str, str]:
    """(resolved path, "size:mtime_ns") of a file, as the resume rule compares them; the stamp is ""
    when the file cannot be examined (a dangling link: its error row is retried)."""
    try:
        resolved = safe_str(Path(path).resolve())
    except (OSError, RuntimeError):  # a loop of links
        resolved = safe_str(Path(os.path.abspath(path)))
    try:
        st = os.stat(path)
    except OSError:
        return resolved, ""
    return resolved, f"{st.st_size}:{st.st_mtime_ns}"


class Pending:
    """The files of a task still to score, a window at a time. Each file is examined (resolved path,
    size and modification time) as it is passed: one already scored under the task's key and not
    changed since is counted in ``already`` (and reported to ``task.progress``); the others are
    handed out, and :meth:`complete` adds their identity to their rows."""

    def __init__(self, task: FileScoring, done: dict[str, str], key: dict[str, str]):
        self.task, self.done, self.key, self.already = task, done, key, 0
        self.identity: dict[str, tuple[str, str]] = {}  # row name -> (resolved path, stamp), this window

    def files(self) -> Iterator[Path]:
        for path in iter_image_files(self.task.inputs, recursive=self.task.recursive):
            resolved, stamp = file_identity(path)
            if stamp and self.done.get(resolved) == stamp:
                self.already += 1
                if self.task.progress is not None:
                    self.task.progress(1)
            else:
                self.identity[safe_str(path)] = (resolved, stamp)  # the real path is loaded; its text names the row
                yield path

    def windows(self) -> Iterator[list[Path]]:
        files = self.files()
        while True:
            self.identity = {}
            window = list(itertools.islice(files, self.task.window))
            if not window:
                return
            yield window

    def complete(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A shard's rows with their files' identity and the task's weights and load options."""
        ids = [self.identity.get(name, (name, "")) for name in frame["image"]]
        frame = frame.assign(path=[p for p, _ in ids], file_stamp=[s for _, s in ids])
        return frame.assign(weights=self.key["weights"], load_options=self.key["load_options"])


@contextmanager
def streaming(task: FileScoring) -> Iterator[tuple[ScoreShards, Pending]]:
    """The task's shard folder (made, or checked), locked for the run (one run per folder), and its
    pending files."""
    missing = [p for p in task.inputs if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(safe_str(p) for p in missing)} (nothing was done)")
    prepare_output_folder(task.out, option="--out")
    with RunLock(task.out, "aedr score"):
        shards = ScoreShards(task.out, task.warn)
        key = {"model": task.model.name, "weights": task.model.autoencoder_fingerprint(),
               "options_hash": task.method.options_hash(), "load_options": load_options_text(task.load_options)}
        pending = Pending(task, shards.done(key, task.perturbation_ids), key)
        shards.describe(task)
        yield shards, pending


def load_paths(paths: Sequence[Path], load_options: dict[str, Any] | None = None) -> tuple[list[LoadedImage], list[Skip]]:
    """Each file loaded (:func:`aedr.images.load_image`), or its reason for being unusable."""
    from .images import ImageLoadError

    images, skipped = [], []
    for p in paths:
        try:
            images.append(load_image(p, **(load_options or {})))
        except ImageLoadError as exc:
            skipped.append(Skip(safe_str(p), str(exc)))
    return images, skipped


def score_paths(model: ModelPlugin, method: Method, paths: Sequence[Path], load_options: dict[str, Any] | None = None,
                perturbations: Sequence["Chain"] = (), seed: int | None = None) -> pd.DataFrame:
    """One shard's rows: every file loaded and scored (lower = belonging), unusable ones with an
    error; with ``perturbations``, a row per file and perturbation (see :class:`FileScoring`)."""
    images, skipped = load_paths(paths, load_options)
    return score_loaded(model, method, images, skipped, perturbations, seed)


def score_loaded(model: ModelPlugin, method: Method, images: Sequence[LoadedImage], skipped: Sequence[Skip],
                 perturbations: Sequence["Chain"] = (), seed: int | None = None) -> pd.DataFrame:
    """The rows of :func:`score_paths` for files already loaded (``skipped``: those that could not be)."""
    frames = []
    for chain in list(perturbations) or [None]:
        table = score_images(model, method, images, perturbations=[chain] if chain else (), seed=seed)
        suffix = f" ({chain.id})" if chain else ""
        table.skipped = list(skipped) + [Skip(s.id.removesuffix(suffix), s.error) for s in table.skipped]  # rows name their file
        frames.append(table.with_skips().assign(perturbation=chain.id if chain else ""))
    frame = pd.concat(frames, ignore_index=True)
    frame["model"], frame["method"], frame["options_hash"] = model.name, method.label, method.options_hash()
    return normalised(frame)


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """The shards' one schema: ``score`` float64, every other column text ("" where missing: a
    skipped file has no hash; a column the frame lacks), so that the shards read as one table."""
    out = pd.DataFrame(index=frame.index)
    for c in COLUMNS:
        if c == "score":
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        else:
            values = (frame[c] if c in frame.columns else pd.Series("", index=frame.index)).astype(object)
            out[c] = values.where(values.notna(), "").map(str)
    return out.reset_index(drop=True)


def shards_of(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    return iter(lambda: list(itertools.islice(it, size)), [])


def stream_locally(task: FileScoring) -> StreamReport:
    """In this process: one shard at a time."""
    report = StreamReport()
    t0 = time.perf_counter()
    with streaming(task) as (shards, pending):
        try:
            for window in pending.windows():
                for paths in shards_of(window, task.shard_size):
                    frame = score_paths(task.model, task.method, paths, task.load_options, task.perturbations, task.seed)
                    write_shard(shards, pending.complete(frame), report)
                    if task.progress is not None:
                        task.progress(len(paths))
        finally:
            report.already = pending.already
            report.seconds = time.perf_counter() - t0
    return report


def write_shard(shards: ScoreShards, frame: pd.DataFrame, report: StreamReport) -> None:
    """Write one shard (rows completed by :meth:`Pending.complete`) and count its rows; a failed
    write stops the run with the shards kept."""
    try:
        shards.write(frame)
    except OSError as exc:
        raise StreamFailed(f"could not write a shard into {safe_str(shards.folder)} ({exc.strerror or exc}); "
                           f"the {report.shards} shard(s) written are kept: rerun the same command to score the rest") from exc
    bad = frame["error"].astype(str) != ""
    report.skipped += int(bad.sum())
    report.scored += int((~bad).sum())
    report.shards += 1
