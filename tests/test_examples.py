"""The plugin templates under examples/: each loads as a plugin (through ``AEDR_PLUGIN_MODULES``, and
really installed with pip, entry point and all), and passes the conformance suite of its kind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aedr
from aedr.plugins import ENV_MODULES, ENV_NO_AUTOLOAD

from conftest import photo_crops

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MODEL_DIR, MODEL_MODULE, MODEL = EXAMPLES / "model-plugin", "aedr_example_model", "example-pool"
METHOD_DIR, METHOD_MODULE, METHOD = EXAMPLES / "method-plugin", "aedr_example_method", "example-l1"

pytestmark = pytest.mark.usefixtures("single_thread")


def env_with(path_entries: list[Path], modules: list[str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path_entries), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop(ENV_MODULES, None)
    if modules:
        env[ENV_MODULES] = ",".join(modules)
    return env


@pytest.fixture
def example_plugins(monkeypatch) -> aedr.plugins.Plugins:
    """Built-ins plus the two examples, named in the environment (entry points off, so that the
    result is the same whether or not an example is also installed)."""
    monkeypatch.syspath_prepend(str(MODEL_DIR))
    monkeypatch.syspath_prepend(str(METHOD_DIR))
    monkeypatch.setenv(ENV_NO_AUTOLOAD, "1")
    monkeypatch.delenv(ENV_MODULES, raising=False)
    without = aedr.load_plugins()
    assert MODEL not in without.models and METHOD not in without.methods
    monkeypatch.setenv(ENV_MODULES, f"{MODEL_MODULE}, {METHOD_MODULE}")
    return aedr.load_plugins()


def test_examples_load_through_the_environment(example_plugins):
    assert example_plugins.models.entry(MODEL).plugin == MODEL_MODULE
    assert example_plugins.methods.entry(METHOD).plugin == METHOD_MODULE
    for name in (MODEL_MODULE, METHOD_MODULE):
        info = example_plugins.info[name]
        assert info.ok and not info.builtin, info
    assert example_plugins.info[MODEL_MODULE].models == [MODEL]
    assert example_plugins.info[METHOD_MODULE].methods == [METHOD]


def test_example_method_scores_the_example_model(example_plugins):
    model = example_plugins.model(MODEL)
    method = example_plugins.method(METHOD, batch_size=4)
    made = [aedr.LoadedImage.from_array(np.asarray(im), f"made-{i}") for i, im in enumerate(model.generate(4, seed=1))]
    natural = photo_crops(4, 32, seed=5)
    scores = method.score(model, made + natural)
    assert scores.shape == (8,) and np.all(np.isfinite(scores))
    assert scores[:4].max() < scores[4:].min(), scores  # its own images reconstruct better


def test_a_missing_module_is_reported_not_fatal(monkeypatch):
    monkeypatch.setenv(ENV_NO_AUTOLOAD, "1")
    monkeypatch.setenv(ENV_MODULES, "aedr_no_such_plugin_module")
    plugins = aedr.load_plugins()
    assert "ModuleNotFoundError" in plugins.info["aedr_no_such_plugin_module"].errors[0]
    assert "aedr" in plugins.methods


def run_pytest(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_examples_pass_the_conformance_suites():
    out = run_pytest(
        ["tests/test_model_conformance.py", "tests/test_method_conformance.py", "-k", f"{MODEL} or {METHOD}"],
        env_with([MODEL_DIR, METHOD_DIR], [MODEL_MODULE, METHOD_MODULE]),
    )
    passed = int(re.search(r"(\d+) passed", out).group(1))
    assert passed >= 15 and " skipped" not in out and "deselected" in out, out[-2000:]


@pytest.mark.slow
def test_examples_install_with_pip_and_register_through_entry_points(tmp_path):
    target = tmp_path / "site"
    sources = [shutil.copytree(d, tmp_path / d.name) for d in (MODEL_DIR, METHOD_DIR)]  # builds write there
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, sources)],
        check=True, capture_output=True, timeout=300,
    )
    check = (
        "import aedr; p = aedr.load_plugins(); "
        f"assert p.models.entry({MODEL!r}).plugin == 'example_model', p.info; "
        f"assert p.methods.entry({METHOD!r}).plugin == 'example_method', p.info; "
        f"print(p.method({METHOD!r}).score(p.model({MODEL!r}), [aedr.LoadedImage.from_array(__import__('numpy').zeros((8, 8, 3), 'uint8'), 'black')]))"
    )
    proc = subprocess.run([sys.executable, "-c", check], env=env_with([target]), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.fullmatch(r"\[[-+.e0-9 ]+\]\s*", proc.stdout), proc.stdout
