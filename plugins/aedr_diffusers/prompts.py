"""Prompt files in the original's format (one ``NNN: prompt`` per line), generated images written as
``NNN.png``, and prompt extraction from real images with CLIP Interrogator (optional extra
``interrogate``), in the original's mode: ``ViT-H-14/laion2b_s32b_b79k``, ``classic``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from PIL import Image

PROMPT_FILE_ENV = "AEDR_PROMPT_FILE"
INTERROGATOR_CLIP = "ViT-H-14/laion2b_s32b_b79k"
INTERROGATOR_MODE = "classic"
_LINE = re.compile(r"^\s*(\d+)\s*:\s(.*)$")


@dataclass(frozen=True)
class Prompt:
    """One line of a prompt file: ``number`` as written, zero-padded to 3 digits as the original does."""

    number: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.number}.png"


def parse_prompts(text: str, *, origin: str = "<prompts>") -> list[Prompt]:
    """Parse ``NNN: prompt`` lines (split at the first ``": "``; blank lines skipped). A non-blank line
    in another form is an error naming its line number, rather than silently dropped."""
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.rstrip())
        if m is None:
            raise ValueError(f"{origin}:{lineno}: expected 'NNN: prompt', got {line.strip()[:60]!r}")
        number = m.group(1).zfill(3)
        if number in seen:
            raise ValueError(f"{origin}:{lineno}: prompt number {number} appears twice")
        seen.add(number)
        prompts.append(Prompt(number, m.group(2).strip()))
    return prompts


def read_prompt_file(path: str | os.PathLike) -> list[Prompt]:
    path = Path(path)
    prompts = parse_prompts(path.read_text(encoding="utf-8"), origin=str(path))
    if not prompts:
        raise ValueError(f"{path}: no prompts (expected lines 'NNN: prompt')")
    return prompts


def format_prompts(prompts: Iterable[Prompt]) -> str:
    return "".join(f"{p.number}: {' '.join(p.text.split())}\n" for p in prompts)


def write_prompt_file(path: str | os.PathLike, prompts: Iterable[Prompt]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_prompts(prompts), encoding="utf-8")
    return path


def resolve_prompts(prompts: Sequence[str] | None) -> list[str]:
    """The prompt texts to generate from: the given ones, else the file named by ``AEDR_PROMPT_FILE``."""
    if prompts is not None:
        texts = list(prompts)
        if not texts:
            raise ValueError("prompts is empty")
        return texts
    path = os.environ.get(PROMPT_FILE_ENV, "").strip()
    if not path:
        raise ValueError(
            "no prompts given: pass prompts, or set AEDR_PROMPT_FILE to a file of 'NNN: prompt' lines "
            "(e.g. made from real images with `aedr prompts REAL_DIR --out Prompt.txt`)"
        )
    return [p.text for p in read_prompt_file(path)]


def generate_to_folder(
    generate_one: Callable[[str, int], Image.Image],
    prompts: Sequence[Prompt],
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[Prompt, Path], None] | None = None,
) -> list[Path]:
    """Write one ``NNN.png`` per prompt; prompt ``i`` of the file uses seed ``seed + i``. Existing files
    are kept (so an interrupted run resumes) unless ``overwrite``. Files appear atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, prompt in enumerate(prompts):
        target = out / prompt.filename
        if target.exists() and not overwrite:
            written.append(target)
            continue
        image = generate_one(prompt.text, seed + i)
        tmp = target.with_suffix(".png.part")
        image.save(tmp, format="PNG")
        tmp.replace(target)
        written.append(target)
        if progress is not None:
            progress(prompt, target)
    return written


def _numbers_in(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def interrogate_folder(
    folder: str | os.PathLike,
    *,
    clip_model: str = INTERROGATOR_CLIP,
    mode: str = INTERROGATOR_MODE,
    device: str = "cuda",
    low_vram: bool = False,
) -> list[Prompt]:
    """One prompt per image of ``folder`` (sorted by the numbers in their names, as the original sorts),
    numbered by the files' stems when they are all distinct numbers, else by position (1-based)."""
    try:
        from clip_interrogator import Config, Interrogator
    except ImportError as exc:
        raise RuntimeError(
            "prompt extraction needs CLIP Interrogator: pip install 'aedr[interrogate]' (or clip-interrogator)"
        ) from exc
    from aedr.images import list_image_files

    files = sorted(list_image_files([folder]), key=lambda p: (_numbers_in(p.name), p.name))
    if not files:
        raise ValueError(f"{folder}: no images")
    config = Config(device=device, clip_model_name=clip_model, quiet=True)
    if low_vram:
        config.apply_low_vram_defaults()
    ci = Interrogator(config)
    run = {"classic": ci.interrogate_classic, "fast": ci.interrogate_fast, "best": ci.interrogate}.get(mode)
    if run is None:
        raise ValueError(f"mode must be classic, fast or best, got {mode!r}")
    by_stem = all(p.stem.isdigit() for p in files) and len({int(p.stem) for p in files}) == len(files)
    prompts = []
    for i, path in enumerate(files, 1):
        number = path.stem.zfill(3) if by_stem else f"{i:03d}"
        with Image.open(path) as im:
            prompts.append(Prompt(number, run(im.convert("RGB"))))
    return prompts
