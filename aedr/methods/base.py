"""The method-plugin interface: ``score(model, images)`` -> one float per image, lower = belonging."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

import numpy as np

from ..autoencoder import Autoencoder
from ..devices import check_device
from ..fieldtypes import FieldTypeError, check_fields, field_types, parse_text
from ..images import LoadedImage
from ..models import ModelPlugin
from ..preprocess import MAX_BATCH_PIXELS, group_by_size, image_seed, split_batches, to_model_tensor
from ..reconstruction import ReconstructionCache
from ..lazy import lazy_import

if TYPE_CHECKING:
    import torch
else:
    torch = lazy_import("torch")

DTYPES = ("float32", "float16", "bfloat16")
"""The ``dtype`` option's values: names of torch dtypes."""


@dataclass
class MethodOptions:
    """Options every method has. Subclass it (as a dataclass) to add a method's own options.

    ``dtype=None`` runs the autoencoder in the model's own dtype; ``seed`` is the run seed from
    which each image's own seed is derived (see :func:`aedr.preprocess.image_seed`).
    """

    device: str = "cpu"
    dtype: str | None = None
    batch_size: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        # Every value against its declared type, however the options were given (keyword arguments,
        # a config table, dataclasses.replace): "false" is not a bool, true is not an int.
        check_fields(self)

    @classmethod
    def names(cls) -> list[str]:
        """The option names, in declaration order."""
        return list(field_types(cls))

    @classmethod
    def parse(cls, key: str, raw: str) -> Any:
        """Command-line text for option ``key`` parsed to the option's declared type
        (``calibrate=false``, ``dtype=none``, ``detection_models=a,b``)."""
        types_ = field_types(cls)
        if key not in types_:
            raise FieldTypeError(key, f"is not an option; options: {', '.join(sorted(types_))}")
        return parse_text(key, raw, types_[key])

    def validate(self) -> None:
        check_device(self.device)
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)} or None, got {self.dtype!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


# Options that change how fast a score is computed, never its value: left out of the options hash.
RUNTIME_OPTIONS = ("device", "batch_size")


@dataclass(frozen=True)
class CostHint:
    """Rough cost per image, for planning: forward passes and optimisation iterations."""

    encoder_passes: int = 0
    decoder_passes: int = 0
    iterations: int = 0
    relative: float = 1.0  # AEDR = 1

    def describe(self) -> str:
        parts = [f"{self.encoder_passes} enc + {self.decoder_passes} dec"]
        if self.iterations:
            parts.append(f"{self.iterations} grad steps")
        return ", ".join(parts) + f" (~{self.relative:g}x AEDR)"


@dataclass
class ScoreContext:
    """What a batch is scored with: the model's autoencoder, the images, their seeds and cache keys."""

    model: ModelPlugin
    autoencoder: Autoencoder
    images: Sequence[LoadedImage]
    seeds: list[int]
    keys: list[tuple]
    cache: ReconstructionCache | None = None
    extra: dict = field(default_factory=dict)


# Called with (images, target size) before every batch that :meth:`Method.map_batches` runs, so that
# a progress display can say which (possibly huge) image is being worked on. See watch_batches().
BatchListener = Callable[[Sequence[LoadedImage], tuple[int, int]], None]
_batch_listener: ContextVar[BatchListener | None] = ContextVar("aedr_batch_listener", default=None)


@contextmanager
def watch_batches(listener: BatchListener) -> Iterator[None]:
    """Within the block, ``listener(images, size)`` is called as each batch of any method starts."""
    token = _batch_listener.set(listener)
    try:
        yield
    finally:
        _batch_listener.reset(token)


class Method(ABC):
    """Subclass, set ``name``, ``description``, ``Options``, ``needs_grad`` and ``cost``, implement
    :meth:`score_batch`, then register the class::

        @aedr.hookimpl
        def register_methods(register):
            register(MyMethod)

    :meth:`score` groups images by their target size (never padding different sizes together),
    batches them, derives a per-image seed and calls :meth:`score_batch` with x0 in [-1, 1].
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    needs_grad: ClassVar[bool] = False
    cost: ClassVar[CostHint] = CostHint()
    score_direction: ClassVar[str] = "lower score = belonging"
    max_batch_pixels: ClassVar[int] = MAX_BATCH_PIXELS  # a batch holds at most this many pixels

    def __init__(self, options: MethodOptions | None = None, **overrides: Any):
        base = options if options is not None else self.Options()
        if not isinstance(base, self.Options):
            raise TypeError(f"{self.name}: options must be {self.Options.__name__}, got {type(base).__name__}")
        known = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"{self.name}: unknown option(s) {unknown}; known options: {sorted(known)}")
        self.options = dataclasses.replace(base, **overrides)  # a new object: __post_init__ type-checks it
        check_fields(self.options)  # (also for a plugin's Options whose own __post_init__ skips super's)
        self.options.validate()

    # -- what plugins implement -------------------------------------------------------------
    @abstractmethod
    def score_batch(self, ctx: ScoreContext, x0: torch.Tensor) -> np.ndarray:
        """Scores for one batch of same-size images, ``x0`` float32 NCHW in [-1, 1]."""

    # -- provided ---------------------------------------------------------------------------
    def options_dict(self, *, include_runtime: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self.options)
        if not include_runtime:
            for k in RUNTIME_OPTIONS:
                d.pop(k, None)
        return d

    def options_hash(self) -> str:
        """Identifies the options that change a score (not device or batch size)."""
        blob = json.dumps({"method": self.name, **self.options_dict(include_runtime=False)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """The method's name plus every option that differs from its default, for tables."""
        defaults = dataclasses.asdict(self.Options())
        changed = {k: v for k, v in self.options_dict(include_runtime=False).items() if defaults.get(k) != v}
        return self.name if not changed else f"{self.name}(" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"

    def torch_dtype(self) -> torch.dtype | None:
        return None if self.options.dtype is None else getattr(torch, self.options.dtype)

    def autoencoder(self, model: ModelPlugin) -> Autoencoder:
        return model.autoencoder(self.options.device, self.torch_dtype())

    def score(
        self,
        model: ModelPlugin,
        images: Sequence[LoadedImage],
        *,
        cache: ReconstructionCache | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """One float per image (same order), lower meaning "made by ``model``"."""
        return self.map_batches(model, images, self.score_batch, cache=cache, progress=progress)[:, 0]

    def map_batches(
        self,
        model: ModelPlugin,
        images: Sequence[LoadedImage],
        fn: Callable[[ScoreContext, torch.Tensor], Any],
        *,
        cache: ReconstructionCache | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Run ``fn(ctx, x0)`` over same-size batches; returns an (n_images, k) float64 array.

        Images are grouped by target size (never padded together), batched by ``batch_size`` and
        by ``max_batch_pixels`` (large images go a few at a time), and each gets a seed derived from
        its pixels, so results do not depend on batching.
        """
        if not images:
            return np.full((0, 1), np.nan)
        ae = self.autoencoder(model)
        out: np.ndarray | None = None
        listener = _batch_listener.get()
        for size, indices in group_by_size(images, ae.size_policy).items():
            for idx in split_batches(indices, size, self.options.batch_size, self.max_batch_pixels):
                batch = [images[i] for i in idx]
                if listener is not None:
                    listener(batch, size)
                ctx = ScoreContext(
                    model=model,
                    autoencoder=ae,
                    images=batch,
                    seeds=[image_seed(im, self.options.seed) for im in batch],
                    keys=[(model.name, str(ae.dtype), im.content_hash, size) for im in batch],
                    cache=cache,
                )
                values = np.asarray(fn(ctx, to_model_tensor(batch, size)), dtype=np.float64)
                if values.ndim == 1:
                    values = values[:, None]
                if values.ndim != 2 or values.shape[0] != len(idx):
                    raise RuntimeError(f"{self.name}: got {values.shape} values for a batch of {len(idx)} images")
                if out is None:
                    out = np.full((len(images), values.shape[1]), np.nan)
                out[idx] = values
                if progress is not None:
                    progress(len(idx))
        assert out is not None
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"
