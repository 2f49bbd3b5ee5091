"""The image sets a benchmark runs on.

Each model's generated images are made once and cached as PNG under
``<out>/images/<model>/<fingerprint>/`` (the model's weights fingerprint, :meth:`aedr.ModelPlugin.fingerprint`:
a model retrained under the same name generates anew), one file per generator seed, with a manifest
of content hashes so that a rerun neither regenerates nor re-hashes them. As in the paper, a model's images are one run of seeds, ``seed + i`` for
i < n_cal + n_eval: the first n_cal are the calibration split, the rest the evaluation split. Scores
are keyed by image content, not by split, so changing either budget reuses every image and score
already there. Real images come from a folder or a registered dataset; unreadable files are
recorded as skips.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import TYPE_CHECKING, Callable, Literal, Sequence

import numpy as np
from PIL import Image

from ..datasets import take_turns
from ..files import safe_name, write_atomic, write_text_atomic
from ..images import ImageLoadError, LoadedImage, list_image_files, load_image
from ..kernel import load_source
from ..models import ModelPlugin
from ..scoring import Skip
from ..text import markup, safe_str
from .config import BenchConfig, ConfigError
from .progress import PlanProgress
from .records import RunStats

if TYPE_CHECKING:
    from ..perturbations import Chain

MANIFEST = "manifest.json"
GENERATE_BATCH = 16
REAL = "real"

Split = Literal["cal", "eval"]
SourceKind = Literal["model", "real"]


@dataclass
class ImageRef:
    """One image of the plan: where it comes from, its split and its content hash (the score key).

    File-backed images are read again when they are scored, so a large plan never holds every
    image in memory; in-memory images (from a dataset plugin) keep their pixels in ``image``.

    A perturbed image (``perturbation``: the perturbation's id; "" for a clean image) keeps the clean
    image's ``id``, split and cluster; ``content_hash`` is the hash of the perturbed pixels (what is
    scored, the store's key) and ``clean_hash`` the clean image's. Its pixels are made again from the
    clean image (``parent``) when it is scored: the perturbation is deterministic (``seed``).
    """

    source: str
    kind: SourceKind
    split: Split
    id: str
    content_hash: str
    path: Path | None = None
    format: str | None = None
    width: int = 0
    height: int = 0
    image: LoadedImage | None = field(default=None, repr=False, compare=False)
    # Images of one cluster are not independent (crops of one photograph): the bootstrap resamples
    # clusters. None: the image is its own cluster.
    cluster: str | None = None
    perturbation: str = ""
    clean_hash: str = ""
    parent: "ImageRef | None" = field(default=None, repr=False, compare=False)
    chain: "Chain | None" = field(default=None, repr=False, compare=False)
    seed: int = 0

    @property
    def base_hash(self) -> str:
        """The clean image's content hash (the image's own for a clean image)."""
        return self.clean_hash or self.content_hash

    @property
    def key(self) -> str:
        """What names its pixels when a chunk's images are loaded once (:mod:`aedr.kernel`)."""
        return self.content_hash

    def load(self, memo: "dict | None" = None) -> LoadedImage:
        """The image's pixels; a perturbed image's clean one comes from ``memo`` when it holds them
        (and is kept there)."""
        if self.image is not None:
            return self.image
        if self.parent is not None and self.chain is not None:
            from ..perturbations import perturb_image

            parent = load_source(self.parent, memo) if memo is not None else self.parent.load()
            loaded = perturb_image(self.chain, parent, self.seed)
            if loaded.content_hash != self.content_hash:
                raise ImageLoadError(self.parent.path, f"perturbation {self.perturbation} gave other pixels than when the plan was made")
            return loaded
        if self.path is None:
            raise ImageLoadError(None, f"{self.id}: no pixels and no file")
        loaded = load_image(self.path)
        if loaded.content_hash != self.content_hash:
            raise ImageLoadError(self.path, "file changed since the plan was made")
        return loaded


@dataclass
class SourceImages:
    """A source of images: a model (its generated images) or the real images."""

    name: str
    kind: SourceKind
    origin: str
    cal: list[ImageRef] = field(default_factory=list)
    eval: list[ImageRef] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def split(self, split: Split) -> list[ImageRef]:
        return self.cal if split == "cal" else self.eval

    def describe(self) -> dict:
        """Counts, formats and sizes of the set (formats matter: PNG vs JPEG can be told apart)."""
        refs = self.cal + self.eval
        return {
            "name": self.name,
            "kind": self.kind,
            "origin": self.origin,
            "n_cal": len(self.cal),
            "n_eval": len(self.eval),
            "formats": dict(Counter(r.format or "in-memory" for r in refs)),
            "sizes": dict(Counter(f"{r.width}x{r.height}" for r in refs).most_common(5)),
            "skipped": [{"id": s.id, "error": s.error} for s in self.skipped],
            "clusters": len({r.cluster for r in refs if r.cluster is not None}),
        }

    def clusters(self) -> dict[str, str]:
        """image hash -> cluster, for the images that belong to one (see :attr:`ImageRef.cluster`)."""
        return {r.content_hash: f"{self.name}/{r.cluster}" for r in self.cal + self.eval if r.cluster is not None}


def generation_seeds(seed: int, n_cal: int, n_eval: int) -> dict[str, list[int]]:
    """Generator seeds of each split: one contiguous run, calibration first."""
    return {"cal": list(range(seed, seed + n_cal)), "eval": list(range(seed + n_cal, seed + n_cal + n_eval))}


class GeneratedImageCache:
    """PNG files of a model's generated images, one per generator seed, plus a hash manifest; one
folder per model and weights fingerprint."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, model: ModelPlugin) -> Path:
        return self.root / safe_name(model.name) / model.fingerprint()

    @staticmethod
    def file_name(seed: int) -> str:
        return f"seed-{seed:09d}.png"

    def _manifest(self, folder: Path) -> dict[str, dict]:
        try:
            return json.loads((folder / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError):
            return {}

    def _save_manifest(self, folder: Path, model: ModelPlugin, files: dict[str, dict]) -> None:
        data = {"model": model.name, "family": model.family, "fingerprint": model.fingerprint(), "files": dict(sorted(files.items()))}
        write_text_atomic(folder / MANIFEST, json.dumps(data, indent=1))

    def missing(self, model: ModelPlugin, seeds: Sequence[int]) -> list[int]:
        folder = self.folder(model)
        return [s for s in seeds if not (folder / self.file_name(s)).is_file()]

    def ensure(
        self,
        model: ModelPlugin,
        seeds: Sequence[int],
        *,
        device: str = "cpu",
        advance: Callable[[int], None] | None = None,
    ) -> dict[int, dict]:
        """Generate the images not on disk yet; returns seed -> manifest entry for every seed."""
        folder = self.folder(model)
        folder.mkdir(parents=True, exist_ok=True)
        files = self._manifest(folder)
        todo = self.missing(model, seeds)
        for start, count in _runs(todo, GENERATE_BATCH):
            images = model.generate(count, seed=start, device=device)
            if len(images) != count:
                raise RuntimeError(f"model {model.name!r}: generate({count}) returned {len(images)} images")
            for offset, pil in enumerate(images):
                seed = start + offset
                rgb = np.asarray(pil.convert("RGB"), dtype=np.uint8)
                target = folder / self.file_name(seed)
                write_atomic(target, lambda tmp, rgb=rgb: Image.fromarray(rgb, "RGB").save(tmp, format="PNG"))
                im = LoadedImage.from_array(rgb, target.name)
                files[target.name] = {"seed": seed, "sha256": im.content_hash, "width": im.width, "height": im.height}
            self._save_manifest(folder, model, files)
            if advance is not None:
                advance(count)
        changed = False
        out: dict[int, dict] = {}
        for seed in seeds:
            fname = self.file_name(seed)
            entry = files.get(fname)
            if entry is None:  # file written but manifest lost (killed in between): hash it now
                im = load_image(folder / fname)
                entry = {"seed": seed, "sha256": im.content_hash, "width": im.width, "height": im.height}
                files[fname] = entry
                changed = True
            out[seed] = entry
        if changed:
            self._save_manifest(folder, model, files)
        return out


def _runs(seeds: Sequence[int], max_len: int) -> list[tuple[int, int]]:
    """Contiguous runs of sorted seeds, each at most ``max_len`` long: [(start, count), ...]."""
    runs: list[tuple[int, int]] = []
    for s in sorted(seeds):
        if runs and runs[-1][0] + runs[-1][1] == s and runs[-1][1] < max_len:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    return runs


def model_source(
    model: ModelPlugin,
    cache: GeneratedImageCache,
    *,
    n_cal: int,
    n_eval: int,
    seed: int,
    device: str = "cpu",
    advance: Callable[[int], None] | None = None,
) -> SourceImages:
    """A model's calibration and evaluation images: generated (cached), or from its image folder."""
    if not model.can_generate:
        folder = model.calibration.folder
        if folder is None:
            raise ValueError(f"model {model.name!r} has no generator and no image folder; it cannot take part in a bench")
        files = folder_files(Path(folder))
        src = SourceImages(model.name, "model", f"folder {folder}")
        refs = _file_refs(files, model.name, "model", "cal", src.skipped, limit=n_cal + n_eval, root=Path(folder))
        for i, ref in enumerate(refs):
            ref.split = "cal" if i < n_cal else "eval"
        src.cal, src.eval = refs[:n_cal], refs[n_cal:]
        return src
    seeds = generation_seeds(seed, n_cal, n_eval)
    src = SourceImages(
        model.name, "model",
        f"generated by {model.name}: seeds {seed}..{seed + n_cal - 1} calibration, {seed + n_cal}..{seed + n_cal + n_eval - 1} evaluation",
    )
    folder = cache.folder(model)
    entries = cache.ensure(model, seeds["cal"] + seeds["eval"], device=device, advance=advance)
    for split in ("cal", "eval"):
        refs = src.split(split)  # type: ignore[arg-type]
        for s in seeds[split]:
            e = entries[s]
            refs.append(
                ImageRef(model.name, "model", split, f"{model.name}/seed-{s}", e["sha256"], folder / cache.file_name(s), "PNG", e["width"], e["height"])  # type: ignore[arg-type]
            )
    return src


def folder_files(folder: Path) -> list[Path]:
    """A folder's images in the order a bench takes them: sorted by name; with sub-folders (searched
    recursively, hidden ones left out; each is one cluster), one image from each sub-folder in turn,
    so that the first n images draw on every sub-folder rather than on the first one alone."""
    return take_turns(list_image_files([folder], recursive=True), lambda f: f.parent)


def _file_refs(
    files: Sequence[Path], source: str, kind: SourceKind, split: Split, skipped: list[Skip], *, limit: int, root: Path
) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for p in files:
        if len(refs) >= limit:
            break
        try:
            im = load_image(p)
        except ImageLoadError as exc:
            skipped.append(Skip(str(p), f"{exc.reason} ({exc.detail})" if exc.detail else exc.reason))
            continue
        inside = p.relative_to(root) if p.is_relative_to(root) else None
        rel = safe_str(inside if inside is not None else p)  # UTF-8 safe: ids are stored
        # Images in one sub-folder (e.g. crops of one photograph) are one cluster.
        cluster = safe_str(inside.parent) if inside is not None and inside.parent != Path(".") else None
        refs.append(ImageRef(source, kind, split, f"{source}/{rel}", im.content_hash, p, im.format, im.width, im.height, cluster=cluster))
    return refs


def _cluster_of(image: LoadedImage) -> str | None:
    """A dataset image's cluster: ``meta["cluster"]`` (e.g. the photograph a crop was cut from)."""
    cluster = image.meta.get("cluster")
    return None if cluster is None else str(cluster)


def real_refs(spec: str, split: Split, limit: int, datasets, skipped: list[Skip]) -> tuple[list[ImageRef], str]:
    """Real images from a folder (:func:`folder_files`) or a registered dataset; returns (refs, origin)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = folder_files(path)
        return _file_refs(files, REAL, "real", split, skipped, limit=limit, root=path), f"folder {path}"
    if spec in datasets:
        refs: list[ImageRef] = []
        for im in datasets.get(spec).images():
            if len(refs) >= limit:
                break
            refs.append(
                ImageRef(REAL, "real", split, f"{REAL}/{im.id}", im.content_hash, im.path, im.format or ("file" if im.path else None),
                         im.width, im.height, image=im, cluster=_cluster_of(im))
            )
        return refs, f"dataset {spec}"
    known = ", ".join(sorted(datasets.names())) or "none registered"
    raise ValueError(f"real images {spec!r}: not a folder and not a registered dataset (datasets: {known})")


def real_source(real: str | None, real_cal: str | None, *, n_eval: int, n_cal: int, datasets) -> SourceImages | None:
    """The real images: ``n_eval`` for evaluation and, when ``real_cal`` is set, ``n_cal`` for estimation."""
    if real is None:
        return None
    src = SourceImages(REAL, "real", "")
    src.eval, origin = real_refs(real, "eval", n_eval, datasets, src.skipped)
    src.origin = f"eval: {origin}"
    if real_cal is not None and n_cal > 0:
        src.cal, cal_origin = real_refs(real_cal, "cal", n_cal, datasets, src.skipped)
        src.origin += f"; estimation: {cal_origin}"
    if not src.eval:
        raise ValueError(f"real images {real!r}: no usable image")
    return src


def perturbed_sources(
    sources: dict[str, SourceImages], chains: Sequence["Chain"], *, splits: Sequence[Split], seed: int,
) -> dict[str, dict[str, SourceImages]]:
    """Every source's images of ``splits`` under every perturbation: perturbation id -> source ->
    :class:`SourceImages` holding the perturbed references. Each clean image is read once and
    perturbed with its own seed (``aedr.perturbations.perturbation_seed(seed, clean hash)``); the
    perturbed pixels are hashed now (the store's key) and made again when scored. A copy that would
    pass the clean image's pixel limit is a skip of that perturbed source, never made."""
    from ..perturbations import perturb_image

    out: dict[str, dict[str, SourceImages]] = {c.id: {} for c in chains}
    for name, src in sources.items():
        made = {c.id: SourceImages(name, src.kind, f"{src.origin}; perturbed: {c.id}") for c in chains}
        for split in splits:
            for ref in src.split(split):
                try:
                    clean = ref.load()
                except ImageLoadError as exc:
                    for target in made.values():
                        target.skipped.append(Skip(ref.id, str(exc)))
                    continue
                for chain in chains:
                    try:
                        image = perturb_image(chain, clean, seed)
                    except ImageLoadError as exc:  # a copy past the size limit, refused before it is made
                        made[chain.id].skipped.append(Skip(ref.id, str(exc)))
                        continue
                    except (KeyboardInterrupt, MemoryError):
                        raise
                    except Exception as exc:
                        raise ConfigError(f"perturbation {chain.id} failed on {ref.id}: {type(exc).__name__}: {exc}") from exc
                    made[chain.id].split(split).append(ImageRef(
                        name, ref.kind, split, ref.id, image.content_hash, None, None, image.width, image.height,
                        cluster=ref.cluster, perturbation=chain.id, clean_hash=ref.content_hash, parent=ref, chain=chain,
                        seed=seed,
                    ))
        for cid, perturbed in made.items():
            out[cid][name] = perturbed
    return out


def check_weights(models: Sequence[ModelPlugin]) -> None:
    """Fingerprint every model's weights (:meth:`aedr.ModelPlugin.fingerprint`; computed once, the
    autoencoder loaded on the CPU): what the image cache and the score store are keyed by. A model
    whose weights cannot be loaded is a :class:`ConfigError` naming it, before any generation."""
    for m in models:
        try:
            m.fingerprint()
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise model_error(m, "could not load its weights", exc) from exc


def model_error(model: ModelPlugin, what: str, exc: Exception) -> ConfigError:
    """A model's failure as one sentence, with where its weights come from when they are not local."""
    avail = model.availability()
    hint = "" if avail.local else f" ({avail.detail})"
    return ConfigError(f"model {model.name!r} {what}: {type(exc).__name__}: {exc}{hint}")


def prepare_sources(config: BenchConfig, models: list[ModelPlugin], plugins, progress: PlanProgress, stats: RunStats) -> dict[str, SourceImages]:
    """The real images, then every model's calibration and evaluation images (generated now if not cached).

    The real images are read first: that is quick, and a mistake in them (an empty folder, a misspelt
    dataset) shows before minutes of generation."""
    try:
        # Real estimation images matter only when alpha is chosen automatically.
        real_cal = config.real_cal if config.auto_alpha else None
        real = real_source(config.real, real_cal, n_eval=config.real_eval_count, n_cal=config.n_cal, datasets=plugins.datasets)
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(str(exc)) from None
    if real is not None and real.name in {m.name for m in models}:
        raise ConfigError(f"a model is named {real.name!r}, the name reserved for the real images")
    check_weights(models)
    cache = GeneratedImageCache(Path(config.out) / "images")
    wanted = [s for seeds in generation_seeds(config.seed, config.n_cal, config.n_eval).values() for s in seeds]
    progress.start_generation(sum(len(cache.missing(m, wanted)) for m in models if m.can_generate))
    t0 = time.perf_counter()

    def advance(n: int) -> None:
        stats.generated += n
        progress.generated(n)

    sources: dict[str, SourceImages] = {}
    for m in models:
        try:
            sources[m.name] = model_source(m, cache, n_cal=config.n_cal, n_eval=config.n_eval, seed=config.seed, device=config.device, advance=advance)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            raise model_error(m, "could not provide its images", exc) from exc
    stats.generation_seconds = time.perf_counter() - t0
    if real is not None:
        sources[real.name] = real
    for src in sources.values():
        for skip in src.skipped:
            progress.console.print(f"[yellow]note:[/] {src.name} image skipped: {markup(skip.id)}: {markup(skip.error)}")
    return sources
