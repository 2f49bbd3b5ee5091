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

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import pandas as pd

from ..files import write_atomic
from ..parts import PartStore

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
    frame = pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)  # made UTF-8 safe when written
    return frame.astype(DTYPES)


def empty_frame() -> pd.DataFrame:
    return rows_frame([])


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    write_atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


class ScoreStore:
    """The scores of one output folder: consolidated file plus part files not yet folded in (one
    :class:`aedr.parts.PartStore` keyed by :data:`KEY`).

    ``warn`` receives one sentence per unreadable file set aside (default: :func:`warnings.warn`);
    ``set_aside`` lists (original path, new path, reason) for each.
    """

    def __init__(self, out: str | Path, warn: Callable[[str], None] | None = None):
        self.out = Path(out)
        self.parts_dir = self.out / STORE_DIR / "parts"
        self.path = self.out / STORE_DIR / "store.parquet"
        self.corrupt_dir = self.out / STORE_DIR / CORRUPT_DIR
        self.parts = PartStore(self.parts_dir, KEY, REQUIRED, self.corrupt_dir, what="score part file", warn=warn)
        self.rows_written = 0

    @property
    def set_aside(self) -> list[tuple[Path, Path | None, str]]:
        return self.parts.set_aside

    def part_files(self) -> list[Path]:
        return self.parts.parts()

    def _frames(self) -> Iterator[pd.DataFrame]:
        """The store file's rows, then each part's, in the current schema."""
        store = [self.path] if self.path.is_file() else []
        yield from (upgraded(frame) for frame in self.parts.frames(paths=store, what="score store file"))
        yield from (upgraded(frame) for frame in self.parts.frames())

    def load(self) -> pd.DataFrame:
        """Every saved row, duplicates (same key) resolved to the most recently written.
        Unreadable files are set aside (see the module's docstring)."""
        frame = self.parts.latest(self._frames())
        return empty_frame() if frame is None else frame

    def write_chunk(self, rows: list[ScoreRow]) -> Path | None:
        """Save one finished chunk as its own part file (atomically)."""
        if not rows:
            return None
        path = self.parts.write(rows_frame(rows))
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


def upgraded(frame: pd.DataFrame) -> pd.DataFrame:
    """A saved file's rows in the current schema: files from before ``perturbation`` hold clean
    images; files from before ``weights`` have it empty (never reused)."""
    frame = frame.reindex(columns=COLUMNS).astype(DTYPES)
    frame["perturbation"] = frame["perturbation"].fillna("")
    frame["weights"] = frame["weights"].fillna("")
    return frame


def key_set(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    """The saved keys, as tuples in :data:`KEY` order."""
    if not len(frame):
        return set()
    columns = [frame[k].fillna("").astype(str) if k in frame.columns else pd.Series([""] * len(frame), index=frame.index) for k in KEY]
    return set(zip(*columns))
