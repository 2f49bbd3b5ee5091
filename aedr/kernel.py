"""The scoring kernel: one unit of work, what became of it, and the one function that does it.

Every way aedr scores images (the bench's plan, ``aedr score`` over folders, in this process or on
Ray) hands the same :class:`WorkItem` to an executor and gets the same :class:`Outcome` back;
:func:`score_item` is the one place that loads an item's images, checks them against the model's
size policy, scores them and turns every failure into a recorded result: an image that cannot be
read or used, a non-finite score, or the method itself failing. The drivers (the bench's
:mod:`aedr.bench.execute`, the stream's :mod:`aedr.stream`) turn outcomes into their rows.

An item's images are :class:`ImageSource` objects: anything with an ``id`` that names its row, a
``key`` that names its pixels and ``load(memo)``. A perturbed source loads its clean image through
``memo`` (so a file is read once for all its perturbed copies) and perturbs it, seeded by its clean
image's content: perturbations are part of the work item, whichever driver made it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Literal, Protocol, Sequence

import numpy as np

from .images import ImageLoadError, LoadedImage, load_image
from .methods.base import Method
from .models import ModelPlugin
from .preprocess import target_size
from .reconstruction import ReconstructionCache
from .text import safe_str

MethodKey = tuple[str, str]  # (method name, options hash)


class ImageSource(Protocol):
    """One image of a work item: ``id`` names its row, ``key`` its pixels (equal keys: equal
    pixels, loaded once per group of items), ``load(memo)`` gives them or raises
    :class:`~aedr.images.ImageLoadError`."""

    id: str

    @property
    def key(self) -> Hashable: ...

    def load(self, memo: dict[Hashable, LoadedImage]) -> LoadedImage: ...


def load_source(source: ImageSource, memo: dict[Hashable, LoadedImage]) -> LoadedImage:
    """``source``'s pixels, from ``memo`` when they were loaded before (and kept there)."""
    key = source.key
    if key not in memo:
        memo[key] = source.load(memo)
    return memo[key]


@dataclass(frozen=True)
class ImageFile:
    """An image file, read with ``load_options`` (:func:`aedr.images.load_image`: ``max_side``,
    ``pixel_budget``, ...)."""

    path: str
    load_options: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return safe_str(self.path)

    @property
    def key(self) -> Hashable:
        return ("file", self.path, self.load_options)

    def load(self, memo: dict[Hashable, LoadedImage]) -> LoadedImage:
        return load_image(self.path, **dict(self.load_options))


@dataclass(frozen=True)
class Pixels:
    """An image already in memory."""

    image: LoadedImage

    @property
    def id(self) -> str:
        return self.image.id

    @property
    def key(self) -> Hashable:
        return ("pixels", self.image.id, self.image.content_hash)

    def load(self, memo: dict[Hashable, LoadedImage]) -> LoadedImage:
        return self.image


@dataclass(frozen=True)
class Perturbed:
    """The perturbed copy of another source's image (:func:`aedr.perturbations.perturb_image`: seeded
    by ``seed`` and the clean image's content; a copy over the image's pixel budget is refused with
    an :class:`~aedr.images.ImageLoadError`). The clean image is loaded through the memo."""

    clean: Any  # ImageSource
    chain: Any  # aedr.perturbations.Chain
    seed: int = 0

    @property
    def id(self) -> str:
        return self.clean.id

    @property
    def key(self) -> Hashable:
        return ("perturbed", self.clean.key, self.chain.id, self.seed)

    def load(self, memo: dict[Hashable, LoadedImage]) -> LoadedImage:
        from .perturbations import perturb_image

        return perturb_image(self.chain, load_source(self.clean, memo), self.seed)


@dataclass
class WorkItem:
    """Images to score under one target model with one method. ``index``: the item's place in its
    driver's books; ``group``: items of one group share loaded images and first reconstructions
    (an executor keeps them while consecutive items share a group)."""

    index: int
    target: str
    method: MethodKey
    sources: list[Any]  # ImageSource
    group: Hashable = 0


@dataclass
class ImageResult:
    """One image of an item: its score (lower = belonging), or why it has none (``error``).
    ``content_hash``: the pixels scored; ``clean_hash``: the clean image's (the same for a clean
    image); ``downscaled_from``: the original "WxH" of an image ``max_side`` downscaled."""

    id: str
    score: float = math.nan
    seconds: float = 0.0
    error: str = ""
    content_hash: str = ""
    clean_hash: str = ""
    downscaled_from: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


OutcomeStatus = Literal["done", "failed", "dropped", "lost"]


@dataclass
class Outcome:
    """What became of a :class:`WorkItem`. ``done``: ``results`` holds one result per source, in
    order (``unusable``: how many had an error before reaching the method). ``failed``: the method
    raised (``error``; ``scored``: images it had reported as done); nothing is saved, the driver
    drops the method's remaining work under the target. ``dropped``: not tried, as the method had
    already failed under the target. ``lost``: the executor could not run it (``error`` says why);
    a rerun computes it."""

    index: int
    status: OutcomeStatus = "done"
    results: list[ImageResult] = field(default_factory=list)
    error: str = ""
    scored: int = 0
    unusable: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    cause: BaseException | None = field(default=None, repr=False, compare=False)  # in process only; never sent

    def __getstate__(self) -> dict:  # an exception may not pickle: its text is in ``error``
        return {**self.__dict__, "cause": None}


@dataclass
class Scoring:
    """What an executor needs besides the items: the target models by name and the methods by key
    (each item names one of each), whether methods share first reconstructions within a group
    (``cache_items`` of them kept), and the device the methods run on."""

    models: dict[str, ModelPlugin]
    methods: dict[MethodKey, Method]
    share_reconstructions: bool = True
    cache_items: int = 2048
    device: str = "cpu"


Progress = Callable[[WorkItem, int, float], None]  # (item, images just scored, seconds they took)


def score_item(item: WorkItem, model: ModelPlugin, method: Method, *, memo: dict[Hashable, LoadedImage] | None = None,
               cache: ReconstructionCache | None = None, progress: Progress | None = None) -> Outcome:
    """Load, check and score ``item``'s images: every image gets a result (its score, or why it has
    none); the method raising is a ``failed`` outcome, never an exception. ``memo``: pixels already
    loaded, by source key (filled with the ones loaded here); ``cache``: first reconstructions;
    ``progress``: called after each batch the method scores."""
    memo = {} if memo is None else memo
    try:
        policy = method.autoencoder(model).size_policy  # loaded once, outside the timing
    except Exception as exc:
        return failed(item, exc, 0)
    results, usable = _load_usable(item, policy, memo)
    reported, last = 0, time.perf_counter()

    def counted(n: int) -> None:
        nonlocal reported, last
        now = time.perf_counter()
        reported += n
        if progress is not None:
            progress(item, n, now - last)
        last = now

    start = time.perf_counter()
    hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
    try:
        scores = method.score(model, [im for _, im in usable], cache=cache, progress=counted) if usable else np.array([])
    except Exception as exc:
        return failed(item, exc, reported)
    seconds = time.perf_counter() - start
    for (i, image), value in zip(usable, scores):
        results[i] = _result(results[i].id, image, float(value), seconds / len(usable))
    outcome = Outcome(item.index, "done", results, scored=reported, unusable=len(results) - len(usable), seconds=seconds)
    if cache is not None:
        outcome.cache_hits, outcome.cache_misses = cache.hits - hits, cache.misses - misses
    return outcome


def _load_usable(item: WorkItem, policy: Any, memo: dict) -> tuple[list[ImageResult], list[tuple[int, LoadedImage]]]:
    """A result per source (an error for those that cannot be read or used), and the usable images
    with their place."""
    results, usable = [], []
    for i, source in enumerate(item.sources):
        try:
            image = load_source(source, memo)
            target_size(image, policy)
            usable.append((i, image))
            results.append(ImageResult(source.id))
        except ImageLoadError as exc:
            results.append(ImageResult(source.id, error=safe_str(str(exc))))
    return results, usable


def _result(id: str, image: LoadedImage, score: float, seconds: float) -> ImageResult:
    """The result of a scored image, named ``id`` (its source's)."""
    meta = image.meta
    common = dict(seconds=seconds, content_hash=image.content_hash, clean_hash=meta.get("clean_hash", image.content_hash),
                  downscaled_from=str(meta.get("downscaled_from", "")))
    if not np.isfinite(score):
        return ImageResult(id, error="method returned a non-finite score", **common)
    return ImageResult(id, score, **common)


def failed(item: WorkItem, exc: BaseException, scored: int) -> Outcome:
    """The outcome of an item whose method raised ``exc`` after reporting ``scored`` images."""
    return Outcome(item.index, "failed", error=f"{type(exc).__name__}: {exc}", scored=scored, cause=exc)


class ItemScorer:
    """Scores items one after the other with :func:`score_item`, keeping loaded images and (when
    the methods share them) first reconstructions while consecutive items share a group: what the
    local executor does in this process and what each Ray actor does."""

    def __init__(self, scoring: Scoring):
        self.scoring = scoring
        self.group: Hashable = object()
        self.memo: dict[Hashable, LoadedImage] = {}
        self.cache: ReconstructionCache | None = None

    def enter(self, group: Hashable, memo: dict[Hashable, LoadedImage] | None = None) -> None:
        """Start ``group`` (a no-op while it goes on); ``memo``: images already loaded for it."""
        if group != self.group:
            self.group, self.memo = group, {}
            self.cache = ReconstructionCache(max_items=self.scoring.cache_items) if self.scoring.share_reconstructions else None
        if memo:
            self.memo.update(memo)

    def __call__(self, item: WorkItem, progress: Progress | None = None) -> Outcome:
        self.enter(item.group)
        model, method = self.scoring.models[item.target], self.scoring.methods[item.method]
        return score_item(item, model, method, memo=self.memo, cache=self.cache, progress=progress)


def preload(items: Sequence[WorkItem]) -> dict[Hashable, LoadedImage]:
    """Every image of ``items`` loaded once (what a CPU decoding stage does before the scoring
    one); an image that cannot be loaded is left out: scoring tries it again and records why."""
    memo: dict[Hashable, LoadedImage] = {}
    for item in items:
        for source in item.sources:
            try:
                load_source(source, memo)
            except ImageLoadError:
                pass
    return memo


def scoring_threads() -> int:
    """The torch thread count every executor scores with (the driver's): a convolution's result
    depends on how many threads share its sums (in the last bits), and the rows must be the same
    whichever executor computed them."""
    import torch

    return torch.get_num_threads()


def file_sources(paths: Sequence[os.PathLike | str], load_options: dict[str, Any] | None = None,
                 chain: Any = None, seed: int = 0) -> list[Any]:
    """The files as image sources (their perturbed copies with ``chain``)."""
    options = tuple(sorted((load_options or {}).items()))
    files = [ImageFile(os.fspath(p), options) for p in paths]
    return [Perturbed(f, chain, seed) for f in files] if chain is not None else list(files)
