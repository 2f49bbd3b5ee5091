"""``batch_size = "auto"``: the largest batch that fits on the device, found once and cached.

A method's memory per batch grows with the number of images and their size; what fits depends on the
device, the dtype, the model and the method (an inversion keeps a graph through the decoder, a single
reconstruction does not). :func:`auto_batch_size` finds it by trying: it scores batches of synthetic
images of the size asked for, doubling the batch until the device runs out of memory (or a limit is
reached), then bisecting between the last batch that fitted and the first that did not, and uses 90 %
of it (:data:`MARGIN`). Inversion
methods are probed with two iterations: no graph outlives its iteration, so the peak is that of
iteration one.

The answer is cached in a JSON file (``$AEDR_CACHE_DIR/batch-sizes.json``, default
``~/.cache/aedr``), keyed by model, method and options hash, device name and memory, dtype and image
size, so
the search runs once per combination, and never again on that machine. The file can be deleted at
any time.

Only accelerators signal running out of memory (CUDA's ``OutOfMemoryError``, MPS's "out of memory"
``RuntimeError``). On the CPU an oversized batch swaps instead of failing, so ``auto`` there keeps the
method's default batch size, without a search.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .files import write_text_atomic
from .lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from .models import ModelPlugin
else:
    torch = lazy_import("torch")

Method = Any  # aedr.methods.base.Method (which imports this module: not imported here)

AUTO = "auto"
CPU_BATCH = 8
"""The batch size ``auto`` gives on the CPU for a method whose own default is not a number."""
LIMIT = 512
"""The largest batch the search tries."""
CACHE_FILE = "batch-sizes.json"
MARGIN = 0.9
"""The batch used is this fraction of the largest that fitted: room for what the probe did not hold
(another method's autoencoder, a neighbour on a shared GPU, allocator fragmentation)."""
_lock = threading.Lock()
_memo: dict[str, int] = {}  # this process's answers: the cache file is read once per key


def cache_path() -> Path:
    root = os.environ.get("AEDR_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "aedr"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device running out of memory (CUDA, MPS, or an allocator's message)."""
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def largest_batch(fits: Callable[[int], bool], *, limit: int = LIMIT) -> int:
    """The largest n in [1, limit] with ``fits(n)``, assuming that a batch that fits means every
    smaller one fits: doubling from 1, then bisection. Raises :class:`MemoryError` if even one image
    does not fit."""
    if not fits(1):
        raise MemoryError("not even a batch of one image fits on the device")
    good, bad = 1, None
    while bad is None:
        n = min(good * 2, limit)
        if n == good:
            return good
        if fits(n):
            good = n
        else:
            bad = n
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


def _device_name(device: str) -> str:
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{torch.cuda.get_device_name(index)}"
    return dev.type


def cache_key(method: Method, model: "ModelPlugin", size: tuple[int, int]) -> str:
    o = method.options
    return "|".join([model.name, method.name, method.options_hash(), _device_name(o.device), _device_memory(o.device),
                     str(o.dtype or "model"), f"{size[0]}x{size[1]}"])


def _device_memory(device: str) -> str:
    """The device's total memory (a MIG slice or another card of the same name differs), "" if unknown."""
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_properties(index).total_memory}B"
    return ""


def _load(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
        return {str(k): int(v) for k, v in data.get("batch_sizes", {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def remember(key: str, value: int) -> None:
    path = cache_path() / CACHE_FILE
    with _lock:
        sizes = _load(path)
        sizes[key] = int(value)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps({"batch_sizes": dict(sorted(sizes.items()))}, indent=1))
        except OSError:
            pass  # an unwritable cache only means searching again next time


def cached(key: str) -> int | None:
    return _load(cache_path() / CACHE_FILE).get(key)


def probe_images(n: int, size: tuple[int, int]):
    """``n`` synthetic images of ``size`` (seeded noise: the same on every call)."""
    from .images import LoadedImage

    rng = np.random.default_rng(0)
    w, h = size
    return [LoadedImage.from_array(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), f"probe-{i}") for i in range(n)]


def auto_batch_size(method: Method, model: "ModelPlugin", size: tuple[int, int], *, limit: int = LIMIT) -> int:
    """The largest batch of ``size`` (width, height) images ``method`` scores under ``model`` on its
    device without running out of memory: cached, else searched (see the module's docs)."""
    if on_cpu(method):
        default = method.Options.defaults().get("batch_size")
        return default if isinstance(default, int) else CPU_BATCH
    key = cache_key(method, model, size)
    found = _memo.get(key) or cached(key)
    if found is None:
        found = max(1, int(search(method, model, size, limit=limit) * MARGIN))
        remember(key, found)
    _memo[key] = found
    return found


def on_cpu(method: Method) -> bool:
    return torch.device(method.options.device).type == "cpu"


def search(method: Method, model: "ModelPlugin", size: tuple[int, int], *, limit: int = LIMIT) -> int:
    """The search itself, uncached, on whatever device the method is on: ``method``'s probe
    (:meth:`aedr.Method.probe`) scores ``n`` synthetic images in one batch for the n that
    :func:`largest_batch` tries; running out of memory means "does not fit", any other error
    propagates."""
    import copy
    import dataclasses

    probe = method.probe()  # quiet: its batches are not the run's, no progress for them

    def fits(n: int) -> bool:
        trial = copy.copy(probe)
        trial.options = dataclasses.replace(probe.options, batch_size=n)
        trial.max_batch_pixels = n * size[0] * size[1]  # the batch is n images, whatever their size
        try:
            trial.score(model, probe_images(n, size))
            return True
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            return False
        finally:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    return largest_batch(fits, limit=limit)
