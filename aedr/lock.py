"""One run per output folder (``aedr bench``; ``aedr score --executor`` into its shard folder).

A run holds an exclusive, non-blocking lock on ``<out>/.aedr-bench.lock`` (``flock`` on POSIX,
``msvcrt.locking`` on Windows) for its whole duration. The operating system drops the lock when the
process ends, however it ends (``kill -9`` included), so a lock is never stale: a leftover file from
a dead run is simply locked again. The file records the holder's PID, host and start time, which a
second run reports when it finds the folder in use.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from .files import OutputError
from .text import safe_str

LOCK_NAME = ".aedr-bench.lock"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class FolderInUseError(OutputError):
    """Another live process holds the output folder's lock."""

    def __init__(self, folder: Path, holder: dict):
        self.folder, self.holder = folder, holder
        pid = holder.get("pid", "unknown")
        where = f" on {holder['host']}" if holder.get("host") and holder.get("host") != socket.gethostname() else ""
        since = f", running since {holder['started']}" if holder.get("started") else ""
        super().__init__(
            f"output folder {safe_str(folder)} is in use by another {holder.get('run') or 'aedr'} run (PID {pid}{where}{since}); "
            "wait for it to finish, or give another --out"
        )


class RunLock:
    """``with RunLock(out):`` holds the folder's lock, or raises :class:`FolderInUseError`."""

    def __init__(self, folder: str | os.PathLike, run: str = "aedr bench"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.run = run  # what holds it, as a second run's message names it
        self._fd: int | None = None

    def holder(self) -> dict:
        """What the lock file says about the run that holds (or last held) it."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the lock file {safe_str(self.path)} ({exc.strerror or exc})") from None
        if not _try_lock(fd):
            os.close(fd)
            raise FolderInUseError(self.folder, self.holder())
        # Only the holder writes the file, and only after taking the lock.
        info = {"pid": os.getpid(), "run": self.run, "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": [safe_str(a) for a in sys.argv]}
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode("utf-8"))
            os.fsync(fd)
        except OSError as exc:  # a full disk: nothing could be saved there anyway
            _unlock(fd)
            os.close(fd)
            raise OutputError(f"cannot write the lock file {safe_str(self.path)} ({exc.strerror or exc})") from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
