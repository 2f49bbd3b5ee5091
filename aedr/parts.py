"""The one part-file store: a folder of parquet part files that read as one table, keyed.

Every score aedr saves as it goes (the bench's per-unit rows, the stream's shards) is a part file
written atomically (a temporary name, then ``os.replace``: a part is whole or absent) under a name
that sorts in the order parts were written. Reading folds them into one table with one resume rule:
the row written last for a key stands (:meth:`PartStore.latest`); a driver asks which keys are done
with its own test of a row (the bench: any row; the stream: a row without an error, of a file not
changed since). A part that cannot be read (truncated, not parquet, lacking a required column) is
moved into ``corrupt_dir`` with a warning, so that its rows are computed again.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import pandas as pd

from .files import set_aside, write_atomic, write_frame
from .text import safe_str


class PartStore:
    """Part files ``part-*.parquet`` in ``folder``, keyed by ``key``; ``required``: the columns a
    readable part has; ``what``: how warnings name a part ("score shard"); ``warn``: gets one
    sentence per part set aside (default: :func:`warnings.warn`); ``set_aside`` lists (path, new
    path, reason) for each."""

    def __init__(self, folder: Path, key: Sequence[str], required: Sequence[str], corrupt_dir: Path, *,
                 what: str = "score part file", warn: Callable[[str], None] | None = None):
        self.folder, self.key, self.required = Path(folder), list(key), tuple(required)
        self.corrupt_dir, self.what = Path(corrupt_dir), what
        self.warn = warn or (lambda message: warnings.warn(message, RuntimeWarning, stacklevel=3))
        self.set_aside: list[tuple[Path, Path | None, str]] = []

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet")) if self.folder.is_dir() else []

    def write(self, frame: pd.DataFrame) -> Path:
        """One part, written atomically (text UTF-8 safe, as parquet needs); names sort in the order
        parts were written."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        return write_atomic(path, lambda tmp: write_frame(frame, tmp, ".parquet"))

    def read(self, path: Path, columns: Sequence[str] | None = None, what: str | None = None) -> pd.DataFrame | None:
        """One file's ``columns`` (those it has; every column when None), or None after setting it
        aside when it cannot be read or lacks a required column."""
        import pyarrow.parquet as pq

        try:
            present = pq.read_schema(path).names
            missing = [c for c in self.required if c not in present]
            if missing:
                raise ValueError(f"lacks column(s) {', '.join(missing)}")
            return pd.read_parquet(path, columns=None if columns is None else [c for c in dict.fromkeys(columns) if c in present])
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # truncated or corrupt: pyarrow raises its own error types
            reason = f"{type(exc).__name__}: {exc}"
            dest = set_aside(path, self.corrupt_dir, f"{what or self.what} {safe_str(path)}", reason, self.warn)
            self.set_aside.append((path, dest, reason))
            return None

    def frames(self, columns: Sequence[str] | None = None, paths: Iterable[Path] | None = None,
               what: str | None = None) -> Iterator[pd.DataFrame]:
        """Every readable part (or file of ``paths``, named ``what`` in warnings), oldest first."""
        ignored = {p for p, dest, _ in self.set_aside if dest is None}  # could not be moved: not read again
        for path in self.parts() if paths is None else paths:
            if path not in ignored and (frame := self.read(path, columns, what)) is not None:
                yield frame

    def latest(self, frames: Iterable[pd.DataFrame]) -> pd.DataFrame | None:
        """The frames as one table, with the row written last for each key (None: no rows)."""
        frames = [f for f in frames if len(f)]
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True).drop_duplicates(self.key, keep="last").reset_index(drop=True)
