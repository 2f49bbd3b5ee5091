"""benchmarks/gpu.py in its smoke mode (the CPU, tiny sizes), so that the GPU benchmark never rots.

The two smoke tests are slow: each runs the script in a new process (importing torch and diffusers
there), the LatentTracer part starts one more process per image, and the Ray part starts Ray and an
actor. The fast tests call the script's functions in this process: a batch that runs out of memory
and a run out of time are rows, not crashes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import aedr
from conftest import TAESD_WEIGHTS, tiny_kl_vae

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"


def run_smoke(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "gpu-bench.json"
    env = dict(os.environ)
    if (TAESD_WEIGHTS / "taef2_encoder.pth").is_file():
        env["AEDR_MODEL_TAEF2"] = str(TAESD_WEIGHTS)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| part | model |" in proc.stdout  # the table
    return json.loads(out.read_text())


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def grid_keys(part: str, model: str, dtypes, batches) -> set:
    return {(part, model, d, b) for d in dtypes for b in batches}


@pytest.mark.slow
def test_gpu_benchmark_smoke(tmp_path):
    data = run_smoke(tmp_path)
    assert data["smoke"] is True and data["device"] == "cpu" and data["torch"] and data["date"]
    rows = data["rows"]
    by_part: dict[str, list[dict]] = {}
    for r in rows:
        by_part.setdefault(r["part"], []).append(r)
    assert list(by_part) == ["sd-vae", "latenttracer", "ray", "zoo", "flux-vae", "taef2"]  # every part, in order

    # The floor-vs-AEDR grid: every dtype at every fixed batch size, and bf16 at the auto batch.
    dtypes = ("bfloat16", "float16", "float32")
    for part, model in (("sd-vae", "sd-vae"), ("flux-vae", "flux-vae"), ("zoo", "zoo-kl-a"), ("taef2", "taef2")):
        got = by_part[part]
        if part == "taef2" and got[0]["status"].startswith("skipped"):
            assert "taef2" in got[0]["status"]  # weights absent: one row saying so
            continue
        grid_dtypes = dtypes if part in ("sd-vae", "flux-vae") else ("bfloat16",)
        fixed = {(r["part"], r["model"], r["dtype"], r["batch"]) for r in got if not r["batch_auto"]}
        assert fixed == grid_keys(part, model, grid_dtypes, (1, 2))
        auto = [r for r in got if r["batch_auto"]]
        assert [r["dtype"] for r in auto] == ["bfloat16"] and auto[0]["batch"] == 8  # on the CPU: AEDR's default
        for r in got:
            assert r["status"] == "ok", r
            assert positive(r["floor_images_per_s"]) and positive(r["aedr_images_per_s"]) and positive(r["ratio_to_floor"])
            assert r["images_timed"] >= r["batch"] and r["peak_mib"] is None  # no device memory on the CPU
            assert "not finite" not in r["note"]

    batched, per_process = by_part["latenttracer"]
    assert batched["status"] == per_process["status"] == "ok"
    assert positive(batched["images_per_s"]) and positive(per_process["images_per_s"])
    assert positive(per_process["extra"]["batched_speedup"])
    assert per_process["extra"]["largest_relative_score_difference"] < 1e-3  # the same inversion, either way

    (ray,) = by_part["ray"]
    assert ray["status"].startswith("skipped: Ray's start-up")


@pytest.mark.slow
def test_gpu_benchmark_smoke_ray(tmp_path):
    rows = run_smoke(tmp_path, "--only", "ray")["rows"]
    assert [r["extra"]["executor"] for r in rows] == ["local", "ray"]
    for r in rows:
        assert r["status"] == "ok", r
        assert positive(r["images_per_s"]) and positive(r["extra"]["scoring_s"])
    assert rows[0]["images_timed"] == rows[1]["images_timed"] > 0  # the same plan on both executors


@pytest.fixture(scope="module")
def gpu_bench(single_thread):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu

        yield gpu
    finally:
        sys.path.remove(str(SCRIPT.parent))


class OutOfMemoryAutoencoder(aedr.DiffusersAutoencoder):
    """Runs out of "device memory" on batches of more than two images, as CUDA says it."""

    def encode(self, x):
        if x.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().encode(x)


class OutOfMemoryModel(aedr.ModelPlugin):
    name, family = "oom-kl", "kl"

    def load_autoencoder(self, device, dtype):
        return OutOfMemoryAutoencoder(tiny_kl_vae().to(device=device, dtype=dtype or torch.float32), size_policy=aedr.SizePolicy(multiple=4))


def test_out_of_memory_is_a_row(gpu_bench, tmp_path):
    settings = gpu_bench.settings_from(gpu_bench.parse_args(["--smoke"]), tmp_path)
    model, pool = OutOfMemoryModel(), gpu_bench.probe_images(2, (16, 16))
    fits = gpu_bench.measure_config(settings, "oom", model, 16, "float32", 2, pool)
    assert fits.status == "ok" and fits.floor_images_per_s > 0 and fits.aedr_images_per_s > 0
    too_big = gpu_bench.measure_config(settings, "oom", model, 16, "float32", 4, pool)
    assert too_big.status == "out of memory" and too_big.floor_images_per_s is None and too_big.ratio is None


def test_rows_past_the_budget_are_skipped(gpu_bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AEDR_CACHE_DIR", str(tmp_path / "cache"))  # the script points it at its own folder
    out = tmp_path / "gpu.json"
    gpu_bench.main(["--smoke", "--only", "sd-vae", "ray", "--budget-s", "0", "--out", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [r["part"] for r in rows] == ["sd-vae", "ray"]
    assert all(r["status"] == "skipped: over the 0 s budget" for r in rows)
    assert "| sd-vae | - |" in capsys.readouterr().out
