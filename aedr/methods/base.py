"""The method-plugin interface: ``score(model, images)`` -> one float per image, lower = belonging."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Literal, Mapping, Sequence

import numpy as np

from ..autoencoder import Autoencoder
from ..devices import check_device
from ..fieldtypes import FieldTypeError, check_fields, field_types, parse_text
from ..glcm import HomogeneityFormula, homogeneity_of_gray
from ..images import ImageLoadError, LoadedImage, UnusableImageWarning, as_loaded_image, image_inputs
from ..models import ModelLookup, ModelPlugin
from ..preprocess import MAX_BATCH_PIXELS, image_seed, split_batches, target_size, to_model_tensor
from ..reconstruction import ReconstructionCache, cache_keys
from ..lazy import lazy_import

if TYPE_CHECKING:
    import torch

    from ..images import ImageInput
else:
    torch = lazy_import("torch")

DTYPES = ("float32", "float16", "bfloat16")
"""The ``dtype`` option's values: names of torch dtypes."""


@dataclass
class MethodOptions:
    """Options every method has. Subclass it (as a dataclass) to add a method's own options.

    ``dtype=None`` runs the autoencoder in the model's own dtype (losses are computed in float32
    whatever it is); ``batch_size``: images per forward batch, or ``"auto"`` for the largest batch
    that fits on the device (:mod:`aedr.batching`); ``seed`` is the run seed from which each image's
    own seed is derived (see :func:`aedr.preprocess.image_seed`).
    """

    device: str = "cpu"
    dtype: str | None = None
    batch_size: int | Literal["auto"] = 8
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
    def defaults(cls) -> dict[str, Any]:
        """The default value of every option, by name, in declaration order."""
        made = cls()
        return {name: getattr(made, name) for name in cls.names()}

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
        if self.batch_size != "auto" and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or 'auto', got {self.batch_size}")


# Options that change how fast a score is computed, never its value: left out of the options hash.
RUNTIME_OPTIONS = ("device", "batch_size")


class MethodOptionsError(ValueError):
    """Options a method does not have, or values it does not accept: a mistake in what was asked,
    not something this machine lacks. ``method`` names the method; ``option`` the option at fault,
    where one is."""

    def __init__(self, message: str, *, method: str = "", option: str | None = None):
        super().__init__(message)
        self.method, self.option = method, option


def unknown_options(cls: type["Method"], names: Sequence[str]) -> MethodOptionsError | None:
    """The error for the names in ``names`` that are not options of ``cls`` (with close matches), or
    None when every one is."""
    known = cls.Options.names()
    unknown = [n for n in names if n not in known]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return MethodOptionsError(
        f"method {cls.name!r}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; "
        f"known options: {', '.join(sorted(known))}",
        method=cls.name,
        option=str(unknown[0]),
    )


def _option_named_in(message: str, names: Sequence[str]) -> str | None:
    """The option a validation message is about: the one it starts with ("lr must be > 0")."""
    for name in sorted(names, key=len, reverse=True):
        if re.match(rf"{re.escape(name)}\b", message):
            return name
    return None


def build_method(cls: type["Method"], options: Mapping[str, Any] | None = None, **runtime: Any) -> "Method":
    """``cls`` built with ``options`` (a mapping of option values, e.g. a config table or a card's
    options) and ``runtime`` (more options as keywords, applied over ``options``: device, dtype,
    batch size).

    Unknown option names and values an option does not accept raise :class:`MethodOptionsError`,
    before anything is built. Whatever the method's constructor itself raises (missing weights, a
    missing optional package) propagates unchanged, so that a caller can tell "the options are
    wrong" from "this machine lacks something"."""
    given = {**(options or {}), **runtime}
    error = unknown_options(cls, list(given))
    if error is not None:
        raise error
    try:
        opts = cls.Options(**given)
        check_fields(opts)  # (also for a plugin's Options whose own __post_init__ skips super's)
        opts.validate()
    except FieldTypeError as exc:
        raise MethodOptionsError(f"method {cls.name!r}: {exc}", method=cls.name, option=exc.field) from exc
    except (TypeError, ValueError) as exc:
        option = _option_named_in(str(exc), cls.Options.names())
        raise MethodOptionsError(f"method {cls.name!r}: {exc}", method=cls.name, option=option) from exc
    return cls(opts)


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
    """What a batch is scored with: the model's autoencoder, the images, their seeds and cache keys
    (made by :func:`aedr.reconstruction.cache_keys`)."""

    model: ModelPlugin
    autoencoder: Autoencoder
    images: Sequence[LoadedImage]
    seeds: list[int]
    keys: list[tuple]
    cache: ReconstructionCache | None = None
    extra: dict = field(default_factory=dict)

    def homogeneity(self, formula: HomogeneityFormula = "squared") -> np.ndarray:
        """The GLCM homogeneity of each image of the batch (its grayscale view), float64."""
        return np.array([homogeneity_of_gray(im.gray, formula) for im in self.images])


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

    ``label_options``: options the :attr:`label` always names, even at their defaults (an
    optimisation budget, e.g. ``("iterations",)``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    label_options: ClassVar[tuple[str, ...]] = ()
    # The plugin set in which the method looks models up by name (AEROBLADE's detection models): the
    # set it was built from (set by :meth:`aedr.plugins.Plugins.method` and by cards); None for a
    # method built directly, for which the process's set (:func:`aedr.get_plugins`) applies.
    plugins: ModelLookup | None = None
    needs_grad: ClassVar[bool] = False
    cost: ClassVar[CostHint] = CostHint()
    score_direction: ClassVar[str] = "lower score = belonging"
    max_batch_pixels: ClassVar[int] = MAX_BATCH_PIXELS  # a batch holds at most this many pixels
    # Options that make a run cheap without lowering its peak memory (an inversion's iterations):
    # what ``batch_size="auto"`` probes with (:meth:`probe`).
    probe_options: ClassVar[Mapping[str, Any]] = {}
    quiet: bool = False  # True for a probe (:meth:`probe`): map_batches tells no batch listener

    def __init__(self, options: MethodOptions | None = None, **overrides: Any):
        base = options if options is not None else self.Options()
        if not isinstance(base, self.Options):
            raise TypeError(f"{self.name}: options must be {self.Options.__name__}, got {type(base).__name__}")
        error = unknown_options(type(self), list(overrides))
        if error is not None:
            raise error
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
        """The method's name for tables: with, in parentheses, the ``label_options`` (always, in that
        order), then every other option that differs from its default (in declaration order); device
        and batch size never. ``ronan(lr=0.01, iterations=2000)``, ``aedr(distance=l1)``, ``aedr``."""
        opts = self.options_dict(include_runtime=False)
        defaults = self.Options.defaults()
        shown = [k for k in self.label_options if k in opts]
        shown += [k for k, v in opts.items() if k not in shown and defaults.get(k) != v]
        if not shown:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={opts[k]}" for k in shown) + ")"

    def probe(self) -> "Method":
        """A copy with :attr:`probe_options` applied: as much memory per batch, less work."""
        import copy

        probe = copy.copy(self)
        probe.options = dataclasses.replace(self.options, **{k: v for k, v in self.probe_options.items() if hasattr(self.options, k)})
        probe.quiet = True  # its batches are not a run's: no progress listener hears them
        return probe

    def batches(self, model: ModelPlugin, size: tuple[int, int], indices: Sequence[int]) -> Iterator[list[int]]:
        """``indices`` (images of one target ``size``) in forward batches: ``batch_size`` images and
        at most ``max_batch_pixels`` pixels each, or with ``batch_size="auto"`` the largest batch that
        fits on the device (:func:`aedr.batching.auto_batch_size`, cached per model and size)."""
        if self.options.batch_size == "auto":
            from ..batching import auto_batch_size, on_cpu

            n = auto_batch_size(self, model, size)
            # on an accelerator the batch found is what fits; on the CPU the default keeps the pixel cap
            return split_batches(indices, size, n, self.max_batch_pixels if on_cpu(self) else n * size[0] * size[1])
        return split_batches(indices, size, self.options.batch_size, self.max_batch_pixels)

    def torch_dtype(self) -> torch.dtype | None:
        return None if self.options.dtype is None else getattr(torch, self.options.dtype)

    def autoencoder(self, model: ModelPlugin) -> Autoencoder:
        return model.autoencoder(self.options.device, self.torch_dtype())

    def score(
        self,
        model: ModelPlugin,
        images: "Sequence[ImageInput] | ImageInput",
        *,
        cache: ReconstructionCache | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """One float per image (same order), lower meaning "made by ``model``".

        An image is a :class:`~aedr.images.LoadedImage`, a PIL image, a path (str or Path; read by
        :func:`aedr.load_image`) or a uint8 HxWx3 numpy array; one image alone is scored as a list
        of one; anything else is a ``TypeError``. An image that cannot be scored (too small for the
        model's size policy, a file that cannot be read) gets NaN and an
        :class:`~aedr.images.UnusableImageWarning` naming it and why, and the others are scored as
        usual (:func:`aedr.score_images` records it as a skip instead); when no image at all can be
        scored, that image's :class:`~aedr.ImageLoadError` is raised."""
        return self.map_batches(model, images, self.score_batch, cache=cache, progress=progress)[:, 0]

    def map_batches(
        self,
        model: ModelPlugin,
        images: "Sequence[ImageInput] | ImageInput",
        fn: Callable[[ScoreContext, torch.Tensor], Any],
        *,
        cache: ReconstructionCache | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Run ``fn(ctx, x0)`` over same-size batches; returns an (n_images, k) float64 array.

        Images (as :meth:`score` takes them) are grouped by target size (never padded together),
        batched by ``batch_size`` and by ``max_batch_pixels`` (large images go a few at a time), and
        each gets a seed derived from its pixels, so results do not depend on batching. An image
        that cannot be scored is a row of NaN (see :meth:`score`).
        """
        images = image_inputs(images)
        if not images:
            return np.full((0, 1), np.nan)
        ae = self.autoencoder(model)
        images, groups = _usable_by_size(images, ae.size_policy)
        if progress is not None and len(images) > sum(map(len, groups.values())):
            progress(len(images) - sum(map(len, groups.values())))
        out: np.ndarray | None = None
        listener = None if self.quiet else _batch_listener.get()
        for size, indices in groups.items():
            for idx in self.batches(model, size, indices):
                batch = [images[i] for i in idx]
                if listener is not None:
                    listener(batch, size)
                ctx = ScoreContext(
                    model=model,
                    autoencoder=ae,
                    images=batch,
                    seeds=[image_seed(im, self.options.seed) for im in batch],
                    keys=cache_keys(model, ae, batch, size),
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


def _usable_by_size(items: list, policy) -> tuple[list[LoadedImage | None], dict[tuple[int, int], list[int]]]:
    """Each input as a :class:`LoadedImage` (None where it cannot be scored: an
    :class:`UnusableImageWarning` says why) and the indices of the others grouped by target size.
    Raises the first :class:`ImageLoadError` when no input can be scored."""
    images: list[LoadedImage | None] = []
    groups: dict[tuple[int, int], list[int]] = {}
    errors: list[ImageLoadError] = []
    for i, item in enumerate(items):
        try:
            image = as_loaded_image(item, i)
            groups.setdefault(target_size(image, policy), []).append(i)
            images.append(image)
        except ImageLoadError as exc:
            images.append(None)
            errors.append(exc)
    if not groups:
        raise errors[0]
    for exc in errors:
        warnings.warn(f"{exc}: its score is NaN", UnusableImageWarning, stacklevel=4)
    return images, groups
