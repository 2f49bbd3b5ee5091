"""Exact agreement with the data published with the original AEDR implementation."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import aedr
from aedr import compat
from aedr.cli import build_app

from conftest import REFERENCE

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference data not found at {REFERENCE}")

SD15 = (REFERENCE / "Result" / "SD1.5_SD1.5_l2.txt", REFERENCE / "GLCM" / "SD1.5.txt")
SD21 = (REFERENCE / "Result" / "SD1.5_SD2.1_l2.txt", REFERENCE / "GLCM" / "SD2.1.txt")
FIVE_IMAGE_SETS = ["FLUX", "KD2.1", "Real", "SD2base", "SD3.5", "SDXL", "VQDM"]
THRESHOLD = 1.0364583773111364


def test_threshold_is_exactly_the_originals():
    assert aedr.kde_threshold(compat.scores_from_files(*SD15), 0.05) == THRESHOLD


def test_accuracy_counts():
    assert compat.accuracy_from_files(*SD21, THRESHOLD) == (8, 492)
    assert compat.accuracy_from_files(*SD15, THRESHOLD) == (477, 23)


def test_papers_alpha_for_sd15():
    t = compat.threshold_from_files(*SD15, alpha=0.015)
    assert compat.accuracy_from_files(*SD15, t)[0] == 493


@pytest.mark.parametrize("name", FIVE_IMAGE_SETS)
def test_homogeneity_of_reference_images(name):
    expected = compat.read_glcm(REFERENCE / "GLCM" / f"{name}.txt")
    files = sorted((REFERENCE / "Imgs" / name).iterdir())
    assert len(files) == len(expected) == 5
    for path, value in zip(files, expected):
        assert abs(aedr.homogeneity(path) - value) < 5e-7, path


def test_cli_compat_commands_print_the_originals_lines():
    runner = CliRunner()
    app = build_app()
    r = runner.invoke(app, ["compat", "threshold", "--loss-ratio", str(SD15[0]), "--glcm", str(SD15[1]), "--alpha", "0.05"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == f"threshold = {THRESHOLD}"
    r = runner.invoke(app, ["compat", "accuracy", "--loss-ratio", str(SD21[0]), "--glcm", str(SD21[1]), "--threshold", str(THRESHOLD)])
    assert r.output.strip() == "belonging, non_belonging = 8 492"
    r = runner.invoke(app, ["compat", "threshold", "--loss-ratio", str(SD15[0]), "--glcm", str(SD15[1]), "--alpha", "0.015"])
    t = float(r.output.split("=")[1])
    r = runner.invoke(app, ["compat", "accuracy", "--loss-ratio", str(SD15[0]), "--glcm", str(SD15[1]), "--threshold", repr(t)])
    assert r.output.strip().endswith("= 493 7")


@pytest.mark.parametrize("name", ["Real", "VQDM"])
def test_cli_compat_glcm_writes_the_original_file(tmp_path, name):
    out = tmp_path / f"{name}.txt"
    r = CliRunner().invoke(build_app(), ["compat", "glcm", "--images", str(REFERENCE / "Imgs" / name), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text() == (REFERENCE / "GLCM" / f"{name}.txt").read_text()
