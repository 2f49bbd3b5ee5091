"""Scoring files end to end: load, check, score, and record every unusable image instead of crashing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .files import save_results, write_frame
from .images import ImageLoadError, LoadedImage, PathLike, as_loaded_image, image_inputs, input_id, load_image
from .kernel import ImageResult, Perturbed, Pixels, WorkItem, score_item
from .methods.base import Method
from .models import ModelPlugin
from .progress import api_progress
from .preprocess import target_size
from .reconstruction import ReconstructionCache
from .text import safe_str

if TYPE_CHECKING:
    from .images import ImageInput
    from .perturbations import Chain


@dataclass
class Skip:
    """An input that could not be scored, and why."""

    id: str
    error: str

    def __post_init__(self) -> None:  # ids and messages may hold undecodable file names
        self.id, self.error = safe_str(self.id), safe_str(self.error)


@dataclass
class LoadResult:
    images: list[LoadedImage] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def load_images(paths: "Iterable[ImageInput] | ImageInput", **load_options) -> LoadResult:
    """Load every path; unreadable, empty, truncated, huge or odd files become :class:`Skip` records.

    ``load_options`` go to :func:`aedr.images.load_image` (e.g. ``pixel_budget``, ``max_side``).
    Images given as pixels (PIL images, arrays, :class:`LoadedImage`) are taken as they are
    (:func:`aedr.images.as_loaded_image`); anything else is a ``TypeError``.
    """
    result = LoadResult()
    for i, item in enumerate(image_inputs(paths)):
        try:
            is_file = isinstance(item, (str, os.PathLike))
            result.images.append(load_image(item, **load_options) if is_file else as_loaded_image(item, i))
        except ImageLoadError as exc:
            result.skipped.append(Skip(input_id(item, i), str(exc)))
    return result


def usable_for(model: ModelPlugin, method: Method, images: Sequence[LoadedImage]) -> tuple[list[LoadedImage], list[Skip]]:
    """Split images into those the model's autoencoder accepts and skips (e.g. too small)."""
    policy = method.autoencoder(model).size_policy
    ok, skipped = [], []
    for im in images:
        try:
            target_size(im, policy)
            ok.append(im)
        except ImageLoadError as exc:
            skipped.append(Skip(im.id, str(exc)))
    return ok, skipped


@dataclass
class ScoreTable:
    """Per-image scores (lower = belonging) plus the inputs that were skipped."""

    rows: pd.DataFrame
    skipped: list[Skip]

    # ``downscaled_from``: the original "WxH" of an image that ``--max-side`` downscaled, else empty;
    # tables of perturbed copies (``score_images(..., perturbations=...)``) add ``perturbation``, and
    # their ``content_hash`` is the clean image's
    COLUMNS = ("image", "content_hash", "model", "method", "options_hash", "score", "downscaled_from")

    def to_file(self, path: PathLike) -> Path:
        """CSV or Parquet by suffix; skipped inputs are kept as rows with an ``error`` and no score.

        Written atomically; if the write fails the scores are kept in a fallback file and
        :class:`aedr.files.OutputError` says where.
        """
        p = Path(path)
        if p.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"{safe_str(p)}: output must end in .csv or .parquet")
        frame = self.with_skips()
        return save_results(p, lambda tmp: write_frame(frame, tmp, p.suffix), what=f"{len(self.rows)} scores")

    def with_skips(self) -> pd.DataFrame:
        skips = pd.DataFrame({"image": [s.id for s in self.skipped], "error": [s.error for s in self.skipped]})
        frame = self.rows.assign(error=None)
        return pd.concat([frame, skips], ignore_index=True) if len(skips) else frame


def score_images(
    model: ModelPlugin,
    method: Method,
    images: "Sequence[ImageInput] | ImageInput",
    *,
    cache: ReconstructionCache | None = None,
    progress: "bool | Callable[[int], None] | None" = None,
    perturbations: Sequence["Chain"] = (),
    seed: int | None = None,
) -> ScoreTable:
    """One score per usable image (lower = belonging); unusable images are skips.

    With ``perturbations``, the images' perturbed copies are scored instead: one row per image and
    perturbation, with a ``perturbation`` column (the perturbation's id) and the clean image's
    ``content_hash``; each copy is seeded by :func:`aedr.perturbations.perturbation_seed` from
    ``seed`` (default: the method's seed) and the clean image's hash. A copy the model cannot take
    (too small after a crop) or that would pass the image's pixel budget (``load_image(...,
    pixel_budget=...)``; refused before it is made) is a skip named ``<image> (<perturbation>)``.

    ``images`` as :meth:`aedr.Method.score` takes them; a file that cannot be read is a skip too.
    ``progress`` as for :func:`aedr.calibrate` (a bar where a person watches, by default)."""
    loaded = load_images(images)
    total = len(loaded.images) * max(1, len(perturbations))
    with api_progress(progress, f"{method.label} under {model.name}", total) as advance:
        if perturbations:
            seed = method.options.seed if seed is None else seed
            table = _score_perturbed(model, method, loaded.images, perturbations, seed, cache, advance)
        else:
            table = _score_clean(model, method, loaded.images, cache, advance)
    table.skipped = loaded.skipped + table.skipped
    return table


def _score_clean(model, method, images: Sequence[LoadedImage], cache, progress) -> ScoreTable:
    return _score_sources(model, method, [Pixels(im) for im in images], cache, progress)


def score_results(model: ModelPlugin, method: Method, sources: Sequence, *, cache: ReconstructionCache | None = None,
                  progress: Callable[[int], None] | None = None) -> list[ImageResult]:
    """One :class:`aedr.kernel.ImageResult` per source, in order (its score, or why it has none),
    from the kernel (:func:`aedr.kernel.score_item`); images that get no score count as done for
    ``progress``. A failing method raises, as it would called directly."""
    item = WorkItem(0, model.name, (method.name, method.options_hash()), list(sources))
    outcome = score_item(item, model, method, cache=cache, progress=(lambda _, n, __: progress(n)) if progress else None)
    if outcome.status == "failed":
        raise outcome.cause if outcome.cause is not None else RuntimeError(outcome.error)
    unscored = sum(not r.ok for r in outcome.results)
    if unscored and progress is not None:
        progress(unscored)
    return outcome.results


def _score_sources(model, method, sources: Sequence, cache, progress) -> ScoreTable:
    """The kernel's results as a table of scores and skips."""
    results = score_results(model, method, sources, cache=cache, progress=progress)
    ok = [r for r in results if r.ok]
    rows = pd.DataFrame(
        {
            "image": [r.id for r in ok],
            "content_hash": [r.content_hash for r in ok],
            "model": model.name,
            "method": method.label,
            "options_hash": method.options_hash(),
            "score": np.array([r.score for r in ok], dtype=float),
            "downscaled_from": [r.downscaled_from for r in ok],
        },
        columns=list(ScoreTable.COLUMNS),
    )
    return ScoreTable(rows, [Skip(r.id, r.error) for r in results if not r.ok])


def _score_perturbed(model, method, images, chains, seed: int, cache, progress) -> ScoreTable:
    cache = cache if cache is not None else ReconstructionCache()
    frames, skipped = [], []
    clean = {im.id: im.content_hash for im in images}  # a copy's row names its clean image
    for chain in chains:
        table = _score_sources(model, method, [Perturbed(Pixels(im), chain, seed) for im in images], cache, progress)
        frames.append(table.rows.assign(perturbation=chain.id, content_hash=table.rows["image"].map(clean)))
        skipped += [Skip(f"{s.id} ({chain.id})", s.error) for s in table.skipped]
    columns = [*ScoreTable.COLUMNS, "perturbation"]
    rows = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    return ScoreTable(rows, skipped)


def score_files(
    paths: Sequence[PathLike],
    model: ModelPlugin,
    method: Method,
    *,
    progress: Callable[[int], None] | None = None,
    **load_options,
) -> ScoreTable:
    """Load (``load_options`` as for :func:`load_images`) and score files; bad files become skips."""
    loaded = load_images(paths, **load_options)
    table = score_images(model, method, loaded.images, progress=progress)
    table.skipped = loaded.skipped + table.skipped
    return table
