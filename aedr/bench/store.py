"""Long-format per-image scores that survive interruption.

Every finished (method, target, source, chunk) is written as its own parquet part file under
``<out>/scores/parts/`` (written to a temporary name, then ``os.replace``d, so a part is either
complete or absent). At the end of a run the parts are folded into ``<out>/scores/store.parquet``,
again atomically. The store keeps every score ever computed in the folder (a later run with other
budgets reuses what overlaps); ``<out>/scores.parquet`` holds exactly the current plan's rows.
Rows are keyed by (method, options hash, target, target weights, perturbation, image content hash),
``weights`` being the target's autoencoder fingerprint (:meth:`aedr.ModelPlugin.autoencoder_fingerprint`),
so that a model retrained under the same name is scored again: a rerun skips keys already present, and duplicates (e.g. from a run killed during consolidation) collapse to the
latest row. ``perturbation`` is "" for a clean image and the perturbation's id (``jpeg:90``) for a
perturbed one; files written before the column existed hold clean images only and load so. Rows
written before ``weights`` existed have it empty: no plan asks for them, so they are scored again.

A part or store file that cannot be read (truncated, corrupt, not parquet, lacking the key columns)
is moved aside to ``<out>/scores/corrupt/`` with a warning; its rows are then missing, so the run
computes exactly those again.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from ..files import set_aside, write_atomic
from ..text import safe_str

KEY = ("method", "options_hash", "target", "weights", "perturbation", "image_hash")
STORE_DIR = "scores"
CORRUPT_DIR = "corrupt"
# Every key column but ``perturbation`` and ``weights``, which older files lack (see the module's docstring).
REQUIRED = (*(k for k in KEY if k not in ("perturbation", "weights")), "score", "status")


@dataclass
class ScoreRow:
    """One image scored (or skipped) by one method under one target model. Lower score = belonging."""

    method: str
    options_hash: str
    label: str
    target: str
    source: str
    source_kind: str
    split: str
    image_id: str
    image_hash: str
    score: float
    seconds: float
    status: str = "ok"  # "ok" or "skipped"
    error: str = ""
    perturbation: str = ""  # "" for a clean image, else the perturbation's id
    weights: str = ""  # the target's autoencoder fingerprint


COLUMNS = list(ScoreRow.__dataclass_fields__)
DTYPES = {
    **{c: "string" for c in COLUMNS},
    "score": "float64",
    "seconds": "float64",
}


def rows_frame(rows: Iterable[ScoreRow]) -> pd.DataFrame:
    records = [asdict(r) for r in rows]
    for r in records:  # ids and messages may hold undecodable file names; parquet needs UTF-8
        r["image_id"], r["error"] = safe_str(r["image_id"]), safe_str(r["error"])
    frame = pd.DataFrame(records, columns=COLUMNS)
    return frame.astype(DTYPES)


def empty_frame() -> pd.DataFrame:
    return rows_frame([])


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


class ScoreStore:
    """The scores of one output folder: consolidated file plus part files not yet folded in.

    ``warn`` receives one sentence per unreadable file set aside (default: :func:`warnings.warn`);
    ``set_aside`` lists (original path, new path, reason) for each.
    """

    def __init__(self, out: str | Path, warn: Callable[[str], None] | None = None):
        self.out = Path(out)
        self.parts_dir = self.out / STORE_DIR / "parts"
        self.path = self.out / STORE_DIR / "store.parquet"
        self.corrupt_dir = self.out / STORE_DIR / CORRUPT_DIR
        self._counter = itertools.count()
        self.rows_written = 0
        self.warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=3))
        self.set_aside: list[tuple[Path, Path | None, str]] = []

    def part_files(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        return sorted(p for p in self.parts_dir.glob("part-*.parquet"))

    def _read(self, path: Path) -> pd.DataFrame | None:
        """One saved file, or None after setting it aside when it cannot be read."""
        try:
            frame = pd.read_parquet(path)
            missing = [c for c in REQUIRED if c not in frame.columns]
            if missing:
                raise ValueError(f"lacks column(s) {', '.join(missing)}")
            return frame
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # truncated or corrupt: pyarrow raises its own error types
            self._set_aside(path, f"{type(exc).__name__}: {exc}")
            return None

    def _set_aside(self, path: Path, reason: str) -> None:
        kind = "store file" if path == self.path else "part file"
        dest = set_aside(path, self.corrupt_dir, f"score {kind} {safe_str(path)}", reason, self.warn)
        self.set_aside.append((path, dest, reason))

    def load(self) -> pd.DataFrame:
        """Every saved row, duplicates (same key) resolved to the most recently written.
        Unreadable files are set aside (see the module's docstring)."""
        ignored = {p for p, dest, _ in self.set_aside if dest is None}
        paths = ([self.path] if self.path.is_file() else []) + self.part_files()
        frames = [f for p in paths if p not in ignored and (f := self._read(p)) is not None]
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_frame()
        frame = pd.concat([f.reindex(columns=COLUMNS) for f in frames], ignore_index=True).astype(DTYPES)
        frame["perturbation"] = frame["perturbation"].fillna("")  # files from before the column: clean
        frame["weights"] = frame["weights"].fillna("")  # files from before the column: never reused
        return frame.drop_duplicates(list(KEY), keep="last").reset_index(drop=True)

    def write_chunk(self, rows: list[ScoreRow]) -> Path | None:
        """Save one finished chunk as its own part file (atomically)."""
        if not rows:
            return None
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{next(self._counter):06d}.parquet"
        path = self.parts_dir / name
        write_parquet_atomic(rows_frame(rows), path)
        self.rows_written += len(rows)
        return path

    def consolidate(self) -> pd.DataFrame:
        """Fold the part files into the store file and remove them; returns every row."""
        frame = self.load()
        parts = self.part_files()  # after load(): unreadable ones have been set aside
        if parts or not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet_atomic(frame, self.path)
            for p in parts:
                p.unlink(missing_ok=True)
        return frame


def key_set(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    """The saved keys, as tuples in :data:`KEY` order."""
    if not len(frame):
        return set()
    columns = [frame[k].fillna("").astype(str) if k in frame.columns else pd.Series([""] * len(frame), index=frame.index) for k in KEY]
    return set(zip(*columns))
