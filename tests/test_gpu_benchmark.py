"""benchmarks/gpu.py in its smoke mode (the CPU, tiny sizes), so that the GPU benchmark never rots.

Both tests are slow: each runs the script in a new process (importing torch and diffusers there), the
LatentTracer part starts one more process per image, and the Ray part starts Ray and an actor.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TAESD_WEIGHTS

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
