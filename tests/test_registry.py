"""Plugin discovery through entry points, isolation of broken plugins, name errors."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import aedr
from aedr.plugins import load_plugins
from aedr.registry import DuplicateNameError, Registry, UnknownNameError

GOOD = '''
import aedr

class TinyModel(aedr.ModelPlugin):
    family = "kl"
    description = "from an entry point"
    def __init__(self, name):
        super().__init__()
        self.name = name
    def load_autoencoder(self, device, dtype):
        raise RuntimeError("not needed here")

@aedr.hookimpl
def register_models(register):
    for name in {models!r}:
        register(TinyModel(name))
'''

HOOK_RAISES = '''
import aedr

@aedr.hookimpl
def register_models(register):
    raise RuntimeError("this plugin is broken inside its hook")
'''


def make_distribution(root: Path, dist: str, plugins: dict[str, str]) -> None:
    """An installed distribution (module files + dist-info with entry points) under ``root``."""
    info = root / f"{dist}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = ["[aedr]"]
    for ep_name, source in plugins.items():
        module = f"{dist}_{ep_name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        lines.append(f"{ep_name} = {module}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        "thirdparty",
        {
            "good": GOOD.format(models=["third-party-model", "shared-name"]),
            "import_fails": "raise ImportError('missing dependency: frobnicate')\n",
            "hook_raises": HOOK_RAISES,
            "dupe": GOOD.format(models=["shared-name"]),
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("AEDR_PLUGINS", raising=False)
    monkeypatch.delenv("AEDR_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield
    for name in [m for m in sys.modules if m.startswith("thirdparty_")]:
        del sys.modules[name]


def test_entry_point_plugin_is_found_and_broken_ones_are_isolated(third_party):
    p = load_plugins()
    assert p.models.entry("third-party-model").plugin == "good"
    assert p.info["good"].version == "1.2.3"
    assert "register_models" in p.info["good"].hooks
    assert "missing dependency: frobnicate" in " ".join(p.info["import_fails"].errors)
    assert "broken inside its hook" in " ".join(p.info["hook_raises"].errors)
    assert "aedr" in p.methods  # the built-in method loads through the same hooks


def test_duplicate_names_name_both_plugins(third_party):
    p = load_plugins()
    with pytest.raises(DuplicateNameError) as info:
        p.model("shared-name")
    assert "'dupe'" in str(info.value) and "'good'" in str(info.value)
    assert any("registered by two plugins" in e for e in p.info["dupe"].errors + p.info["good"].errors)


def test_environment_restricts_and_disables_autoload(third_party, monkeypatch):
    monkeypatch.setenv("AEDR_PLUGINS", "good")
    p = load_plugins()
    assert p.model("third-party-model").description == "from an entry point"
    assert "import_fails" not in p.info
    monkeypatch.setenv("AEDR_DISABLE_PLUGIN_AUTOLOAD", "1")
    p = load_plugins()
    assert "third-party-model" not in p.models and "good" not in p.info
    assert "aedr" in p.methods  # built-ins still load


def test_aedr_plugins_command_reports_broken_plugins(third_party, monkeypatch):
    monkeypatch.setattr(aedr.plugins, "_default", load_plugins())
    from aedr.cli import build_app

    result = CliRunner().invoke(build_app(), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert "missing dependency: frobnicate" in result.output
    assert "broken inside its hook" in result.output


def test_unknown_names_suggest_close_matches():
    r: Registry[int] = Registry("model")
    for name in ("SD1.5", "SD2.1", "SDXL", "FLUX"):
        r.add(name, 1, "p")
    with pytest.raises(UnknownNameError, match=r"Did you mean: SD2\.1"):
        r.get("sd21")
    assert r.get("sdxl") == 1  # case-insensitive match
    with pytest.raises(UnknownNameError, match="Known models: FLUX, SD1.5, SD2.1, SDXL"):
        r.get("dalle")


def test_unknown_method_option_is_a_clear_error():
    with pytest.raises(aedr.MethodOptionsError, match="unknown option 'distanse' .did you mean distance.*known options") as err:
        aedr.get_method("aedr", distanse="l1")
    assert err.value.method == "aedr" and err.value.option == "distanse"
    with pytest.raises(ValueError, match="distance must be one of"):
        aedr.get_method("aedr", distance="l3")


class Picky(aedr.Method):
    """A method whose constructor fails the way a machine without something makes it fail."""

    name = "picky"
    description = "test"

    def __init__(self, options=None, **overrides):
        super().__init__(options, **overrides)
        if self.options.seed == 13:
            raise ImportError("picky needs the frobnicate package")

    def score_batch(self, ctx, x0):
        return np.zeros(x0.shape[0])


def test_build_method_tells_wrong_options_from_what_the_machine_lacks():
    from aedr.methods.aedr_method import AEDR

    method = aedr.build_method(AEDR, {"distance": "l1", "seed": 3}, batch_size=2, seed=4)
    assert (method.options.distance, method.options.seed, method.options.batch_size) == ("l1", 4, 2)
    assert aedr.build_method(AEDR).options == AEDR().options
    cases = [
        ({"calibrat": False}, "calibrat", "unknown option 'calibrat' (did you mean calibrate?)"),
        ({"a": 1, "b": 2}, "a", "unknown options 'a', 'b'; known options: batch_size, calibrate"),
        ({"calibrate": "false"}, "calibrate", "calibrate must be true or false, got 'false' (a string)"),
        ({"batch_size": 0}, "batch_size", "batch_size must be >= 1 or 'auto', got 0"),
        ({"homogeneity_formula": "cubed"}, "homogeneity_formula", "homogeneity_formula must be one of"),
    ]
    for options, option, fragment in cases:
        with pytest.raises(aedr.MethodOptionsError) as err:
            aedr.build_method(AEDR, options)
        assert str(err.value).startswith("method 'aedr': ") and fragment in str(err.value), str(err.value)
        assert err.value.option == option and err.value.method == "aedr"
    assert aedr.build_method(Picky, {"seed": 1}).options.seed == 1
    with pytest.raises(ImportError, match="frobnicate"):  # the constructor's own error, unchanged
        aedr.build_method(Picky, {"seed": 13})
    with pytest.raises(aedr.MethodOptionsError, match="unknown option 'sed'"):  # checked before building
        aedr.build_method(Picky, {"sed": 13})


def test_option_defaults():
    from aedr.methods.aedr_method import AEDROptions

    defaults = AEDROptions.defaults()
    assert list(defaults) == AEDROptions.names()
    assert defaults == {"device": "cpu", "dtype": None, "batch_size": 8, "seed": 0, "distance": "l2", "calibrate": True,
                        "homogeneity_formula": "squared", "latent": "sample"}
    methods = load_plugins().methods
    for entry in methods:  # every option, at the value a default-built options object holds
        assert entry.obj.Options.defaults() == dataclasses.asdict(entry.obj.Options()), entry.name
    aeroblade = methods.get("aeroblade-mse").Options
    first, second = aeroblade.defaults(), aeroblade.defaults()
    assert first["detection_models"] == [] and first["detection_models"] is not second["detection_models"]


def test_a_method_looks_models_up_in_the_set_it_was_built_from():
    plugins = load_plugins()
    assert plugins.method("aedr").plugins is plugins
    assert aedr.get_method("aedr").plugins is aedr.get_plugins()
    from aedr.methods.aedr_method import AEDR

    assert AEDR().plugins is None  # built directly: the process's set applies
