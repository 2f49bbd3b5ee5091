"""The README's Python snippet runs as pasted, in a fresh folder, and says what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("The same from Python:", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_the_readme_python_snippet_runs_as_pasted(tmp_path):
    proc = subprocess.run([sys.executable, "-c", python_snippet()], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"zoo-kl-a: score [0-9.]+, threshold [0-9.]+, belongs: True", lines[0]), proc.stdout
    assert lines[1] == "verdict: zoo-kl-a"
    assert 0 < float(lines[2]) <= 1 and float(lines[3]) > 0
    assert (tmp_path / "aedr-tour" / "cards" / "python.json").is_file()


def test_the_tour_writes_under_folders_git_ignores():
    ignored = (ROOT / ".gitignore").read_text().split()
    tour = (ROOT / "README.md").read_text(encoding="utf-8").split("## A short tour", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    outputs = re.findall(r"--out (\S+)", tour) + re.findall(r"\.save\(\"([^\"]+)\"", python_snippet())
    assert outputs
    for path in outputs:
        assert path.split("/")[0] + "/" in ignored, f"{path}: not under a folder git ignores"
