"""Prompt files in the original's ``NNN: prompt`` format, ``NNN.png`` outputs, and the optional
CLIP Interrogator step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image

from aedr_diffusers.prompts import (
    Prompt,
    format_prompts,
    generate_to_folder,
    interrogate_folder,
    parse_prompts,
    read_prompt_file,
    resolve_prompts,
    write_prompt_file,
)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "aedr-seed"


def test_parse_the_original_format():
    prompts = parse_prompts("001: a cat\n\n2: a watch, blue: 0.25, detailed\n 010 : spaced\n")
    assert prompts == [Prompt("001", "a cat"), Prompt("002", "a watch, blue: 0.25, detailed"), Prompt("010", "spaced")]
    assert [p.filename for p in prompts] == ["001.png", "002.png", "010.png"]


@pytest.mark.parametrize("text, message", [
    ("001: a\nno number here\n", ":2: expected 'NNN: prompt'"),
    ("001:missing space\n", ":1: expected"),
    ("001: a\n1: b\n", "appears twice"),
])
def test_bad_lines_are_errors_with_line_numbers(text, message):
    with pytest.raises(ValueError, match=message):
        parse_prompts(text)


def test_round_trip(tmp_path):
    prompts = [Prompt("001", "a  photo\nof a dog"), Prompt("002", "x: y")]
    path = write_prompt_file(tmp_path / "p" / "Prompt.txt", prompts)
    assert path.read_text() == "001: a photo of a dog\n002: x: y\n"
    assert read_prompt_file(path) == [Prompt("001", "a photo of a dog"), Prompt("002", "x: y")]
    assert format_prompts(read_prompt_file(path)) == path.read_text()


@pytest.mark.skipif(not (REFERENCE / "Prompt-500.txt").is_file(), reason=f"reference prompts not found in {REFERENCE}")
def test_reference_prompt_files():
    prompts = read_prompt_file(REFERENCE / "Prompt-500.txt")
    assert [p.number for p in prompts] == [f"{i:03d}" for i in range(1, 501)]
    assert prompts[1].text.startswith("a close up of a watch with a blue strap") and "blue: 0.25" in prompts[1].text
    assert len(read_prompt_file(REFERENCE / "Prompt.txt")) == 5


def test_resolve_prompts(monkeypatch, tmp_path):
    assert resolve_prompts(["a", "b"]) == ["a", "b"]
    monkeypatch.delenv("AEDR_PROMPT_FILE", raising=False)
    with pytest.raises(ValueError, match="AEDR_PROMPT_FILE"):
        resolve_prompts(None)
    write_prompt_file(tmp_path / "P.txt", [Prompt("001", "one"), Prompt("002", "two")])
    monkeypatch.setenv("AEDR_PROMPT_FILE", str(tmp_path / "P.txt"))
    assert resolve_prompts(None) == ["one", "two"]


def test_generate_to_folder_names_seeds_and_resumes(tmp_path):
    calls: list[tuple[str, int]] = []

    def fake_generator(text: str, seed: int) -> Image.Image:
        calls.append((text, seed))
        return Image.new("RGB", (8, 8), (seed % 256, len(text), 0))

    prompts = [Prompt("001", "a"), Prompt("002", "bb"), Prompt("007", "ccc")]
    paths = generate_to_folder(fake_generator, prompts, tmp_path, seed=10)
    assert [p.name for p in paths] == ["001.png", "002.png", "007.png"]
    assert calls == [("a", 10), ("bb", 11), ("ccc", 12)]
    assert Image.open(tmp_path / "007.png").getpixel((0, 0)) == (12, 3, 0)
    (tmp_path / "002.png").unlink()
    generate_to_folder(fake_generator, prompts, tmp_path, seed=10)
    assert calls[3:] == [("bb", 11)]  # only the missing image is made again, with its own seed
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.skipif(importlib.util.find_spec("clip_interrogator") is not None, reason="clip-interrogator is installed")
def test_interrogation_without_the_extra_says_what_to_install(tmp_path):
    with pytest.raises(RuntimeError, match=r"aedr\[interrogate\]"):
        interrogate_folder(tmp_path)
