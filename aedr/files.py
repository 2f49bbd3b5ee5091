"""Writing result files without losing results.

- Output paths are checked *before* any work (:func:`check_output_file`, :func:`prepare_output_folder`):
  a read-only folder, a file where a folder should be, or ``--out`` naming an existing folder is an
  error up front. Missing parent folders are created (when the file is written).
- Every file is written to a temporary name beside it and moved into place (:func:`write_atomic`),
  so a reader never sees half a file and a failed write leaves no debris.
- When the final write fails anyway (a full disk, a folder made read-only meanwhile),
  :func:`save_results` keeps the results in a fallback file, beside the target or else in the
  temporary folder, and raises :class:`OutputError` saying where they are.
- Tables and JSON are written UTF-8 safe (:func:`write_frame`, :func:`json_text`): undecodable file
  names become backslash escapes, NaN and infinities become null.
"""

from __future__ import annotations

import json
import math
import re
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .text import safe_str

if TYPE_CHECKING:
    import pandas as pd

FRAME_SUFFIXES = (".csv", ".parquet")


class OutputError(Exception):
    """An output path that cannot be written. ``saved_to``: where the results were kept instead."""

    def __init__(self, message: str, saved_to: Path | None = None):
        super().__init__(message)
        self.saved_to = saved_to


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _probe_writable(folder: Path, option: str) -> None:
    """Create and remove a file in ``folder``: the only test that holds for root, ACLs and read-only mounts."""
    try:
        fd, name = tempfile.mkstemp(prefix=".aedr-write-test-", dir=folder)
    except OSError as exc:
        raise OutputError(f"{option}: cannot write in folder {safe_str(folder)} ({_reason(exc)})") from None
    os.close(fd)
    os.unlink(name)


def check_output_file(path: os.PathLike | str, *, option: str = "--out", suffixes: Sequence[str] | None = FRAME_SUFFIXES) -> Path:
    """Fail now, not after the work, if ``path`` cannot be written as a result file."""
    p = Path(path)
    shown = safe_str(p)
    if p.is_dir():
        example = f", e.g. {safe_str(p / f'results{suffixes[0]}')}" if suffixes else ""
        raise OutputError(f"{option} {shown} is an existing folder; give a file name{example}")
    if suffixes and p.suffix.lower() not in suffixes:
        raise OutputError(f"{option} must end in {' or '.join(suffixes)}, got {shown}")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created when writing
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{option} {shown}: {safe_str(parent)} is not a folder")
    _probe_writable(parent, option)
    return p


def prepare_output_folder(path: os.PathLike | str, *, option: str = "--out", create: bool = True) -> Path:
    """Check that the output folder can be written in, creating it (and its parents) if ``create``;
    else a missing folder's nearest existing parent must be writable (it is made when needed)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{option} {safe_str(p)} is a file, not a folder")
    if not create and not p.exists():
        check_output_file(p / "probe", option=option, suffixes=None)
        return p
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option}: cannot create folder {safe_str(p)} ({_reason(exc)})") from None
    _probe_writable(p, option)
    return p


def write_atomic(path: os.PathLike | str, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then move it into place (or remove it)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, p)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return p


def write_text_atomic(path: os.PathLike | str, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def fallback_paths(path: Path) -> Iterator[Path]:
    """Where results go when ``path`` cannot be written: beside it, then the temporary folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{path.stem}.unsaved-{stamp}-{os.getpid()}{path.suffix}"
    yield path.with_name(name)
    yield Path(tempfile.gettempdir()) / name


def save_results(path: os.PathLike | str, write: Callable[[Path], Any], *, what: str = "results") -> Path:
    """Write atomically; when that fails, keep the results in a fallback file and raise :class:`OutputError`."""
    p = Path(path)
    try:
        return write_atomic(p, write)
    except OSError as exc:
        first = exc
    for candidate in fallback_paths(p):
        try:
            write_atomic(candidate, write)
        except OSError:
            continue
        raise OutputError(f"could not write {what} to {safe_str(p)} ({_reason(first)}); they are kept in {safe_str(candidate)}", candidate)
    raise OutputError(f"could not write {what} to {safe_str(p)} ({_reason(first)}), nor to a fallback file beside it or in {tempfile.gettempdir()}")


def jsonable(value: Any) -> Any:
    """NaN and infinities become null (strict JSON); numpy scalars Python numbers; paths and text UTF-8
    safe strings; an object with a ``__json__()`` method what that returns."""
    if isinstance(value, dict):
        return {safe_str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "__json__"):  # e.g. a figure with its interval: {"value", "low", "high"}
        return jsonable(value.__json__())
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, os.PathLike)):
        return safe_str(value)
    pd = sys.modules.get("pandas")  # a pandas value implies pandas is loaded: never import it here
    if pd is not None and value is pd.NA:
        return None
    return value


def json_text(value: Any, **dumps_options: Any) -> str:
    """Strict JSON (never ``NaN`` or ``Infinity``) of ``value`` after :func:`jsonable`."""
    return json.dumps(jsonable(value), allow_nan=False, **dumps_options)


def text_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every text cell UTF-8 safe (see :func:`aedr.text.safe_str`)."""
    import pandas as pd

    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, pd.StringDtype):
            out[col] = out[col].map(lambda v: safe_str(v) if isinstance(v, str) else v).astype(out[col].dtype)
    return out


def write_frame(frame: pd.DataFrame, path: Path, suffix: str | None = None) -> None:
    """A table as CSV, Parquet or JSON records (by ``suffix``, default ``path``'s), text UTF-8 safe."""
    frame = text_safe_frame(frame)
    suffix = (suffix or path.suffix).lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False, encoding="utf-8")
    elif suffix == ".json":
        path.write_text(json_text(frame.to_dict("records"), indent=2) + "\n", encoding="utf-8")
    else:
        raise ValueError(f"{safe_str(path)}: a table is written as .csv, .parquet or .json, not {suffix!r}")


def set_aside(path: Path, folder: Path, what: str, reason: str, warn: Callable[[str], None] | None = None) -> Path | None:
    """Move an unreadable file of scores into ``folder`` (a stamped name) and say so through ``warn``
    (default :func:`warnings.warn`); returns where it went, or None when it could not be moved (it is
    then ignored). ``what`` names the file in the sentence."""
    dest: Path | None = folder / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)  # type: ignore[arg-type]
        where = f"moved to {safe_str(dest)}"
    except OSError as exc:
        dest, where = None, f"could not be moved aside ({exc.strerror or exc}), so it is ignored"
    message = f"{what} is unreadable ({reason}); {where}; its scores will be computed again"
    if warn is not None:
        warn(message)
    else:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return dest


def safe_name(name: str) -> str:
    """A file-system safe name: every run of characters other than letters, digits, ``.``, ``_``
    and ``-`` becomes one ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"
