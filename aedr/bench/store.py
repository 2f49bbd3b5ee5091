"""Long-format per-image scores that survive interruption.

Every finished (method, target, source, chunk) is written as its own parquet part file under
``<out>/scores/parts/`` (written to a temporary name, then ``os.replace``d, so a part is either
complete or absent). At the end of a run the parts are folded into ``<out>/scores/store.parquet``,
again atomically. The store keeps every score ever computed in the folder (a later run with other
budgets reuses what overlaps); ``<out>/scores.parquet`` holds exactly the current plan's rows.
Rows are keyed by (method, options hash, target, image content hash): a rerun skips keys already
present, and duplicates (e.g. from a run killed during consolidation) collapse to the latest row.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd

KEY = ("method", "options_hash", "target", "image_hash")
STORE_DIR = "scores"


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


COLUMNS = list(ScoreRow.__dataclass_fields__)
DTYPES = {
    **{c: "string" for c in COLUMNS},
    "score": "float64",
    "seconds": "float64",
}


def rows_frame(rows: Iterable[ScoreRow]) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
    return frame.astype(DTYPES)


def empty_frame() -> pd.DataFrame:
    return rows_frame([])


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class ScoreStore:
    """The scores of one output folder: consolidated file plus part files not yet folded in."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.parts_dir = self.out / STORE_DIR / "parts"
        self.path = self.out / STORE_DIR / "store.parquet"
        self._counter = itertools.count()
        self.rows_written = 0

    def part_files(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        return sorted(p for p in self.parts_dir.glob("part-*.parquet"))

    def load(self) -> pd.DataFrame:
        """Every saved row, duplicates (same key) resolved to the most recently written."""
        frames = []
        if self.path.is_file():
            frames.append(pd.read_parquet(self.path))
        frames.extend(pd.read_parquet(p) for p in self.part_files())
        frames = [f for f in frames if len(f)]
        if not frames:
            return empty_frame()
        frame = pd.concat([f.reindex(columns=COLUMNS) for f in frames], ignore_index=True).astype(DTYPES)
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
        parts = self.part_files()
        frame = self.load()
        if parts or not self.path.is_file():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet_atomic(frame, self.path)
            for p in parts:
                p.unlink(missing_ok=True)
        return frame


def key_set(frame: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    if not len(frame):
        return set()
    return set(zip(*(frame[k].astype(str) for k in KEY)))
