"""Named image collections that plugins provide (e.g. real photographs to evaluate against)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, Iterable, TypeVar

from .images import LoadedImage, list_image_files, load_image

T = TypeVar("T")


def take_turns(items: Iterable[T], group: Callable[[T], Hashable]) -> list[T]:
    """``items`` reordered so that their groups take turns (the first of each group in order of first
    appearance, then the second of each, ...), each group keeping its own order: the first n items
    then draw on every group, e.g. on every photograph of a set of crops."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(group(item), []).append(item)
    queues = list(groups.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


@dataclass
class ImageSet:
    """A named, lazily loaded list of images. ``kind`` says what they are (``real`` or ``generated``)."""

    name: str
    description: str
    load: Callable[[], list[LoadedImage]]
    kind: str = "real"

    def images(self) -> list[LoadedImage]:
        return self.load()

    @classmethod
    def from_folder(cls, name: str, folder: str | Path, description: str = "", kind: str = "real") -> "ImageSet":
        folder = Path(folder)
        return cls(name, description or f"images in {folder}", lambda: [load_image(p) for p in list_image_files([folder])], kind)
