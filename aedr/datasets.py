"""Named image collections that plugins provide (e.g. real photographs to evaluate against)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .images import LoadedImage, list_image_files, load_image


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
