"""Perturbations: what happens to an image between the generator and the analyst (re-compression,
resizing, cropping, blur, noise), as plugins.

A perturbation kind is a :class:`Perturbation` subclass with one strength parameter, registered
through the ``register_perturbations`` hook (the built-ins below register the same way). One spec
syntax serves the command line, config files and Python:

- ``jpeg:90`` one kind at one level; its :attr:`Step.id` is the stable id the score store uses;
- ``jpeg:90,70,50`` one kind at several levels: three perturbations;
- ``jpeg:75+resize:0.5`` a chain, applied left to right: one perturbation.

Every perturbation is deterministic: noise and any other randomness come from the seed given to
:meth:`Chain.apply` (one per image), so a perturbed image is the same on every run and machine.
:func:`perturbation_seed` is the rule every command uses for that seed (the run seed and the clean
image's content hash, nothing else), and :func:`perturb_image` applies a chain to a loaded image.

>>> import aedr
>>> chain = aedr.get_perturbation("jpeg:75+resize:0.5")   # parsed against the registered kinds
>>> small = chain.apply(image, seed=0)                     # a PIL image
"""

from __future__ import annotations

import math
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence


if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from .images import LoadedImage
    from .registry import Registry


class PerturbationError(ValueError):
    """A perturbation spec that cannot be parsed, names an unknown kind or gives a bad level."""


class Perturbation:
    """One kind of perturbation at one strength ``level``.

    Subclasses set ``name`` (the spec's kind, e.g. ``jpeg``), ``parameter`` (what the level means, e.g.
    ``quality``), ``description`` and ``levels`` (a default grid, mildest first), and implement
    :meth:`apply`; :meth:`check` rejects levels outside the kind's range. ``integer`` levels are
    written without a decimal point in ids. ``identity``: the level that leaves an image unchanged
    (JPEG quality 100 is close, crop fraction 1 exact), where figures put the clean value; ``None``
    when there is none."""

    name: ClassVar[str] = ""
    parameter: ClassVar[str] = "level"
    description: ClassVar[str] = ""
    levels: ClassVar[tuple[float, ...]] = ()
    integer: ClassVar[bool] = False
    identity: ClassVar[float | None] = None

    def __init__(self, level: float):
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not math.isfinite(level):
            raise PerturbationError(f"{self.name}: the {self.parameter} must be a finite number, got {level!r}")
        if self.integer and level != int(level):
            raise PerturbationError(f"{self.name}: the {self.parameter} must be a whole number, got {level!r}")
        self.level = int(level) if self.integer else float(level)
        self.check(self.level)

    def check(self, level: float) -> None:
        """Raise :class:`PerturbationError` when ``level`` is outside this kind's range."""

    def apply(self, image: "Image.Image", rng: "np.random.Generator") -> "Image.Image":
        """The perturbed copy of an RGB image (``rng``: this image's own random numbers)."""
        raise NotImplementedError

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the copy of an image of ``size``, known before it is made: kinds that
        change the size (resize, crop) say how, so that an oversized copy is refused unmade."""
        return size

    @property
    def id(self) -> str:
        return f"{self.name}:{self.level:g}" if not self.integer else f"{self.name}:{self.level}"

    @classmethod
    def stronger_below(cls) -> bool:
        """Whether lower levels are stronger (JPEG quality, crop fraction): the default grid, mildest
        first, decreases."""
        return len(cls.levels) > 1 and cls.levels[0] > cls.levels[-1]

    def __repr__(self) -> str:
        return f"<perturbation {self.id}>"


@dataclass(frozen=True)
class Chain:
    """Perturbations applied one after the other; the unit a spec describes."""

    steps: tuple[Perturbation, ...]

    @property
    def id(self) -> str:
        """Stable: the same spec always gives the same id (``jpeg:75+resize:0.5``)."""
        return "+".join(s.id for s in self.steps)

    @property
    def kind(self) -> str:
        """The kind (``jpeg``), or the kinds of a chain joined (``jpeg+resize``)."""
        return "+".join(s.name for s in self.steps)

    @property
    def level(self) -> float | None:
        """The level of a one-step perturbation; ``None`` for a chain."""
        return self.steps[0].level if len(self.steps) == 1 else None

    def describe(self) -> dict:
        """Id, kind, level and parameter: what results files record of a perturbation."""
        first = self.steps[0]
        single = len(self.steps) == 1
        return {
            "id": self.id, "kind": self.kind, "level": self.level,
            "parameter": first.parameter if single else None,
            "identity": type(first).identity if single else None,
            "stronger_below": type(first).stronger_below() if single else None,
        }

    def check_size(self, size: tuple[int, int], pixel_budget: int | None = None, path=None) -> None:
        """Refuse, before any pixel is made, a chain one of whose steps would make an image of more
        than ``pixel_budget`` pixels (:class:`~aedr.images.ImageOverBudgetError`) or past the
        decompression-bomb limit (:class:`~aedr.images.ImageTooLargeError`); ``size``: the input's
        (width, height), ``path``: its file, for the message."""
        from .images import DEFAULT_MAX_PIXELS, ImageOverBudgetError, ImageTooLargeError

        for i, step in enumerate(self.steps):
            size = step.output_size(size)
            w, h = size
            at = f" at step {i + 1} ({step.id})" if len(self.steps) > 1 else ""
            made = f"{self.id}{at} would make a {w}x{h} copy = {w * h} pixels"
            if pixel_budget is not None and w * h > pixel_budget:
                raise ImageOverBudgetError(path, f"{made} > budget {pixel_budget}; raise --pixel-budget, or lower --max-side "
                                                 "or the perturbation's level")
            if w * h > DEFAULT_MAX_PIXELS:
                raise ImageTooLargeError(path, f"{made} > limit {DEFAULT_MAX_PIXELS}; lower the perturbation's level")

    def apply(self, image: "Image.Image", seed: int = 0) -> "Image.Image":
        """The perturbed image; step i draws its random numbers from ``(seed, i)``. A chain whose
        output would pass the decompression-bomb limit is refused first (:meth:`check_size`)."""
        import numpy as np

        self.check_size(image.size)
        out = image.convert("RGB")
        for i, step in enumerate(self.steps):
            out = step.apply(out, np.random.default_rng([int(seed) & 0xFFFFFFFF, i]))
        return out

    def __str__(self) -> str:
        return self.id


def perturbation_seed(run_seed: int, content_hash: str) -> int:
    """The seed of one image's perturbation: a function of the run seed and the clean image's
    content hash only, so the same image is perturbed the same way by every command, in any order,
    and every level of a kind draws the same random numbers (noise 0.1 is noise 0.05 doubled
    before clipping)."""
    digest = hashlib.sha256(f"perturbation:{int(run_seed)}:{content_hash}".encode()).hexdigest()
    return int(digest[:15], 16)


def perturb_image(chain: Chain, image: "LoadedImage", run_seed: int = 0) -> "LoadedImage":
    """The perturbed copy of a loaded image, seeded by :func:`perturbation_seed`: how every command
    makes one. It keeps the image's id and pixel budget; ``meta`` records the perturbation and the
    clean image's hash. Its grayscale view is computed as for an image saved as PNG (the perturbed
    pixels are held in memory, never re-encoded).

    A copy over the image's pixel budget (or the decompression-bomb limit) is refused before it is
    made, with the :class:`~aedr.images.ImageLoadError` that a run records as a skip."""
    import dataclasses

    from .images import LoadedImage

    chain.check_size((image.width, image.height), image.pixel_budget, image.path)
    seed = perturbation_seed(run_seed, image.content_hash)
    out = chain.apply(image.to_pil(), seed)
    meta = {**image.meta, "perturbation": chain.id, "clean_hash": image.content_hash}
    return dataclasses.replace(LoadedImage.from_pil(out, image.id, **meta), pixel_budget=image.pixel_budget)


def perturb_images(chain: Chain, images: Sequence["LoadedImage"], run_seed: int = 0) -> tuple[list["LoadedImage"], dict[str, str]]:
    """:func:`perturb_image` of each image: the copies made, and image id -> why its copy could not be."""
    from .images import ImageLoadError

    copies, failed = [], {}
    for image in images:
        try:
            copies.append(perturb_image(chain, image, run_seed))
        except ImageLoadError as exc:
            failed[image.id] = str(exc)
    return copies, failed


def _number(text: str, where: str, parameter: str) -> float:
    """The level ``text`` of the step ``where``; ``nan``, ``inf`` (and what overflows to it) are refused."""
    try:
        value = float(text)
    except ValueError:
        raise PerturbationError(f"{where!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise PerturbationError(f"{where!r}: the {parameter} must be a finite number, got {text!r}")
    return int(value) if value == int(value) and "." not in text and "e" not in text.lower() else value


def _step(text: str, kinds: "Registry[type[Perturbation]]") -> list[Perturbation]:
    from .registry import RegistryError

    kind, sep, levels = text.strip().partition(":")
    try:
        cls = kinds.get(kind.strip())
    except RegistryError as exc:
        raise PerturbationError(str(exc)) from None
    if not sep or not levels.strip():
        grid = ",".join(f"{v:g}" for v in cls.levels) or "1"
        raise PerturbationError(f"{text!r}: give the {cls.parameter}, e.g. {cls.name}:{grid}")
    return [cls(_number(v.strip(), text.strip(), cls.parameter)) for v in levels.split(",") if v.strip()]


def parse_perturbations(specs: str | Sequence[str], kinds: "Registry[type[Perturbation]]") -> list[Chain]:
    """Every perturbation the specs describe, in order, without duplicates; ``kinds``: the registered
    perturbation kinds (``plugins.perturbations``; ``Plugins.perturbations_for`` passes them).

    ``"jpeg:90,70"`` gives two; ``"jpeg:75+resize:0.5"`` one chain; a list gives the union. Raises
    :class:`PerturbationError` with the reason."""
    texts = [specs] if isinstance(specs, str) else list(specs)
    out: dict[str, Chain] = {}
    for text in texts:
        for spec in text.split() if " " in text.strip() else [text]:
            parts = [p for p in spec.split("+")]
            if any(not p.strip() for p in parts):
                raise PerturbationError(f"{spec!r}: empty step in the chain")
            steps = [_step(p, kinds) for p in parts]
            if len(steps) > 1 and any(len(s) != 1 for s in steps):
                raise PerturbationError(f"{spec!r}: a chain takes one level per step (jpeg:75+resize:0.5)")
            chains = [Chain(tuple(s[0] for s in steps))] if len(steps) > 1 else [Chain((p,)) for p in steps[0]]
            for chain in chains:
                out.setdefault(chain.id, chain)
    if not out:
        raise PerturbationError("no perturbation given")
    return list(out.values())


def parse_perturbation(spec: str, kinds: "Registry[type[Perturbation]]") -> Chain:
    """Exactly one perturbation (a kind at one level, or a chain)."""
    chains = parse_perturbations(spec, kinds)
    if len(chains) != 1:
        raise PerturbationError(f"{spec!r} describes {len(chains)} perturbations; give one level")
    return chains[0]


# -- the built-in kinds -------------------------------------------------------------------------------
def _encode(image: "Image.Image", fmt: str, quality: int) -> "Image.Image":
    import io

    from PIL import Image

    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return decoded.convert("RGB")


class JPEG(Perturbation):
    name, parameter, integer = "jpeg", "quality", True
    description = "JPEG re-compression at this quality (PIL/libjpeg, 4:2:0 chroma subsampling)"
    levels = (90, 80, 70, 60, 50)
    identity = 100

    def check(self, level: float) -> None:
        if not 1 <= level <= 100:
            raise PerturbationError(f"jpeg: quality must be 1..100, got {level}")

    def apply(self, image, rng):
        return _encode(image, "JPEG", int(self.level))


class WebP(Perturbation):
    name, parameter, integer = "webp", "quality", True
    description = "lossy WebP re-compression at this quality (PIL/libwebp)"
    levels = (90, 80, 70, 60, 50)
    identity = 100

    def check(self, level: float) -> None:
        if not 1 <= level <= 100:
            raise PerturbationError(f"webp: quality must be 1..100, got {level}")

    def apply(self, image, rng):
        return _encode(image, "WEBP", int(self.level))


class Resize(Perturbation):
    name, parameter = "resize", "scale"
    description = "resize both sides by this factor (PIL bicubic, antialiased when shrinking), at least 1 pixel"
    levels = (0.9, 0.75, 0.5)
    identity = 1.0

    def check(self, level: float) -> None:
        if not 0 < level <= 8:
            raise PerturbationError(f"resize: scale must be in (0, 8], got {level}")

    def output_size(self, size):
        return max(1, round(size[0] * self.level)), max(1, round(size[1] * self.level))

    def apply(self, image, rng):
        from PIL import Image

        return image.resize(self.output_size(image.size), Image.Resampling.BICUBIC)


class Crop(Perturbation):
    name, parameter = "crop", "fraction"
    description = "centred crop keeping this fraction of each side (rounded, at least 1 pixel)"
    levels = (0.9, 0.8, 0.7, 0.6, 0.5)
    identity = 1.0

    def check(self, level: float) -> None:
        if not 0 < level <= 1:
            raise PerturbationError(f"crop: fraction must be in (0, 1], got {level}")

    def output_size(self, size):
        return max(1, round(size[0] * self.level)), max(1, round(size[1] * self.level))

    def apply(self, image, rng):
        w, h = image.size
        cw, ch = self.output_size(image.size)
        left, top = (w - cw) // 2, (h - ch) // 2
        return image.crop((left, top, left + cw, top + ch))


class Blur(Perturbation):
    name, parameter = "blur", "sigma"
    description = "Gaussian blur with this standard deviation in pixels (scipy.ndimage, reflected borders), rounded to 8 bits"
    levels = (1.0, 2.0, 3.0)
    identity = 0.0

    def check(self, level: float) -> None:
        if not 0 < level <= 50:
            raise PerturbationError(f"blur: sigma must be in (0, 50] pixels, got {level}")

    def apply(self, image, rng):
        import numpy as np
        from PIL import Image
        from scipy.ndimage import gaussian_filter

        x = np.asarray(image, dtype=np.float64)
        y = gaussian_filter(x, sigma=(self.level, self.level, 0), mode="reflect")
        return Image.fromarray(np.clip(np.rint(y), 0, 255).astype(np.uint8))


class Noise(Perturbation):
    name, parameter = "noise", "sigma"
    description = "additive Gaussian noise with this standard deviation on the [0, 1] scale, clipped and rounded to 8 bits"
    levels = (0.05, 0.1, 0.2)
    identity = 0.0

    def check(self, level: float) -> None:
        if not 0 < level <= 1:
            raise PerturbationError(f"noise: sigma must be in (0, 1], got {level}")

    def apply(self, image, rng):
        import numpy as np
        from PIL import Image

        x = np.asarray(image, dtype=np.float64) / 255.0
        y = x + rng.normal(0.0, self.level, size=x.shape)
        return Image.fromarray(np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8))


BUILTIN = (JPEG, WebP, Resize, Crop, Blur, Noise)
