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
the same whichever executor computed them, as every executor scores with :func:`aedr.kernel.score_item`
and the same torch thread count. One run at a time per folder (the bench's lock); an unreadable shard is set aside
into ``_corrupt/`` and its files scored again.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

from .executors import Executor
from .files import json_text, prepare_output_folder, write_text_atomic
from .images import iter_image_files
from .kernel import ImageResult, Outcome, Scoring, WorkItem, file_sources
from .lock import RunLock
from .methods.base import Method
from .models import ModelPlugin
from .parts import PartStore
from .scoring import ScoreTable
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
    """A folder of parquet shards with one score table between them (one :class:`aedr.parts.PartStore`
    keyed by :data:`KEY`). A shard that cannot be read (truncated, not parquet, lacking the columns)
    is moved into ``_corrupt/`` with a warning."""

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.store = PartStore(self.folder, KEY, REQUIRED, self.folder / CORRUPT_DIR, what="score shard", warn=warn)

    def parts(self) -> list[Path]:
        return self.store.parts()

    def frames(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Every readable shard, oldest first, with ``columns`` only (those older shards lack filled in)."""
        wanted = list(columns or COLUMNS)
        for frame in self.store.frames([*wanted, "image"]):
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
        return self.store.write(normalised(frame))

    def read(self) -> pd.DataFrame:
        """One row per file and :data:`KEY`: the one written last (its score, or the error of the last
        try). The error rows of files that no longer exist are left out."""
        frame = self.store.latest(self.frames())
        if frame is None:
            return pd.DataFrame(columns=COLUMNS)
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
        self.identity: dict[str, tuple[str, str]] = {}  # row name -> (resolved path, stamp), files handed out

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
            window = list(itertools.islice(files, self.task.window))
            if not window:
                return
            yield window

    def complete(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A shard's rows with their files' identity and the task's weights and load options."""
        ids = [self.identity.get(name, (name, "")) for name in frame["image"]]
        for name in set(frame["image"]):
            self.identity.pop(name, None)
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


class StreamBooks:
    """The stream's driver books for one run: the pending files as work items (a window of names at a
    time, ``shard_size`` files per shard, one item per shard and perturbation, the shard being the
    items' group), and each shard written once all its items are back, in whatever order they come."""

    def __init__(self, task: FileScoring, shards: ScoreShards, pending: Pending, report: StreamReport):
        self.task, self.shards, self.pending, self.report = task, shards, pending, report
        self.chains = list(task.perturbations) or [None]
        self.key = (task.method.name, task.method.options_hash())
        self.open: dict[int, tuple[list[Path], dict[int, pd.DataFrame]]] = {}  # shard -> its files, its frames by chain
        self.where: dict[int, tuple[int, int]] = {}  # item -> (shard, chain)

    def scoring(self) -> Scoring:
        return Scoring({self.task.model.name: self.task.model}, {self.key: self.task.method}, share_reconstructions=False,
                       device=str(self.task.method.options.device))

    def items(self) -> Iterator[WorkItem]:
        task, index = self.task, 0
        seed = task.method.options.seed if task.seed is None else task.seed
        shard_numbers = itertools.count()
        for window in self.pending.windows():
            for paths in shards_of(window, task.shard_size):
                shard = next(shard_numbers)
                self.open[shard] = (paths, {})
                for c, chain in enumerate(self.chains):
                    self.where[index] = (shard, c)
                    yield WorkItem(index, task.model.name, self.key, file_sources(paths, task.load_options, chain, seed), group=shard)
                    index += 1

    def receive(self, outcome: Outcome) -> None:
        if outcome.index not in self.where:
            return  # a duplicate: written once
        shard, c = self.where.pop(outcome.index)
        paths, frames = self.open[shard]
        frames[c] = self.rows(paths, self.chains[c], outcome)
        if len(frames) == len(self.chains):
            del self.open[shard]
            write_shard(self.shards, self.pending.complete(pd.concat([frames[i] for i in sorted(frames)], ignore_index=True)), self.report)
            if self.task.progress is not None:
                self.task.progress(len(paths))

    def rows(self, paths: list[Path], chain: Any, outcome: Outcome) -> pd.DataFrame:
        """One item's rows: a row per file, its score or its error (every file of an item whose
        method failed, or that the executor lost, gets that reason)."""
        results = outcome.results
        if outcome.status != "done":
            why = f"scoring failed ({outcome.error})" if outcome.status == "failed" else outcome.error
            results = [ImageResult(safe_str(p), error=why) for p in paths]
        frame = pd.DataFrame({
            "image": [r.id for r in results],
            "content_hash": [r.clean_hash if r.ok else "" for r in results],
            "score": [r.score if r.ok else float("nan") for r in results],
            "downscaled_from": [r.downscaled_from if r.ok else "" for r in results],
            "error": [r.error for r in results],
        })
        return normalised(frame.assign(model=self.task.model.name, method=self.task.method.label, options_hash=self.key[1],
                                       perturbation=chain.id if chain is not None else ""))


def stream_files(task: FileScoring, executor: Executor) -> StreamReport:
    """Score ``task``'s files with ``executor`` into its shard folder: the stream's driver (see the
    module's docstring). A shard that cannot be written stops the run with the written ones kept."""
    report = StreamReport()
    t0 = time.perf_counter()
    with streaming(task) as (shards, pending):
        books = StreamBooks(task, shards, pending, report)
        try:
            for outcome in executor.map(books.items(), books.scoring()):
                books.receive(outcome)
        finally:
            report.already = pending.already
            report.seconds = time.perf_counter() - t0
    return report


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
