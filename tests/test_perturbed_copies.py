"""Perturbed copies: levels that are not finite numbers, the pixel budget every copy obeys (in
`aedr score --perturb`, the bench's perturbation axis, `aedr attribute --stability` and Python), and a
stability check that has no perturbed copy to go on."""

from __future__ import annotations


import pytest

import aedr
from aedr.perturbations import BUILTIN, PerturbationError, parse_perturbations
from conftest import ModelsPlugin, cli_runner, photo_folder

pytestmark = pytest.mark.usefixtures("single_thread")

PLUGINS = aedr.load_plugins(entry_points=False)


# -- levels that are not finite numbers -------------------------------------------------------------
@pytest.mark.parametrize("kind", [k.name for k in BUILTIN])
@pytest.mark.parametrize("level", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_a_level_that_is_not_finite_is_a_perturbation_error_naming_the_spec(kind, level):
    spec = f"{kind}:{level}"
    for text, named in ((spec, spec), (f"{kind}:1,{level}", f"{kind}:1,{level}"), (f"jpeg:75+{spec}", spec)):
        with pytest.raises(PerturbationError, match="must be a finite number") as info:
            parse_perturbations(text, PLUGINS.perturbations)
        assert repr(named) in str(info.value) and repr(level) in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "jpeg:nan"], "error: --perturb jpeg:nan: 'jpeg:nan': the quality must be a finite number"),
        (["score", "{photo}", "--model", "tiny-kl", "--perturb", "resize:inf"], "error: --perturb resize:inf: 'resize:inf': the scale must be a finite number"),
        (["attribute", "{photo}", "--card", "{card}", "--stability", "--stability-perturb", "crop:-inf"], "error: --stability-perturb crop:-inf: 'crop:-inf'"),
        (["bench", "--models", "tiny-kl", "--methods", "aedr", "--perturb", "noise:nan", "--dry-run"], "'noise:nan': the sigma must be a finite number"),
    ],
)
def test_a_level_that_is_not_finite_is_one_line_on_the_command_line(tiny_model, monkeypatch, tmp_path, args, message):
    plugins = aedr.load_plugins(entry_points=False, extra=[ModelsPlugin(tiny_model)])
    photo = photo_folder(tmp_path / "photos", 1) / "000.png"
    card = tmp_path / "card.json"
    card.write_text("{}")  # never read: the spec is refused first
    args = [a.format(photo=photo, card=card) for a in args]
    result = cli_runner(plugins, monkeypatch)(*args, ok=False)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
