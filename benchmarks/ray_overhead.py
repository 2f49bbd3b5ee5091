"""What the ray executor costs against the local one, and what a second actor buys, on one plan.

    python benchmarks/ray_overhead.py                       # zoo-kl-a and zoo-vq, aedr + latenttracer
    python benchmarks/ray_overhead.py --models zoo-kl-a --methods aedr --n-eval 16
    python benchmarks/ray_overhead.py --runs local ray:1x2 ray:1x1 ray:2x1 --cpus 2

The images are generated once (by the first run) and copied into every other run's folder, so each
run scores exactly the same plan from scratch. Ray is started once by this script (``--cpus``
CPUs) and its start-up is timed on its own; every Ray run then starts its own actors (one pool per
target model), which is part of its scoring time. ``ray:AxC`` is A actors of C CPUs each (C torch
threads); the local executor uses ``--threads`` torch threads. Prints one table: scoring seconds
(the executor's wall time), time to the first saved score, seconds spent inside the methods (the
sum of the saved per-image times, over all actors), scores per second and the ratio to the local
run; then checks that every run saved the same scores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import aedr
from aedr.bench import load_config, run_bench

KEY = ["method", "options_hash", "target", "image_hash"]


def plugin_set():
    return aedr.load_plugins()  # the built-in bench plugin registers the ray executor


def parse_run(spec: str) -> tuple[str, int, float]:
    if spec == "local":
        return "local", 0, 0.0
    kind, _, shape = spec.partition(":")
    actors, _, cpus = shape.partition("x")
    if kind != "ray" or not actors.isdigit():
        raise SystemExit(f"--runs: expected local or ray:AxC (e.g. ray:2x1), got {spec!r}")
    return "ray", int(actors), float(cpus or 1)


def timed_run(cfg, plugins):
    """``run_bench(cfg)`` without a progress display; returns the result and the seconds from the start
    of scoring (after any image generation) to the first saved score."""
    first: list[float] = []
    t0 = time.perf_counter()

    def note(event):
        if not first:
            first.append(time.perf_counter() - t0)

    result = run_bench(cfg, plugins=plugins, progress=False, callback=note)
    return result, (first[0] - result.stats.generation_seconds if first else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["zoo-kl-a", "zoo-vq"])
    ap.add_argument("--methods", nargs="+", default=["aedr", "latenttracer"])
    ap.add_argument("--n-cal", type=int, default=8)
    ap.add_argument("--n-eval", type=int, default=8)
    ap.add_argument("--chunk-size", type=int, default=8)
    ap.add_argument("--runs", nargs="+", default=["local", "ray:1x2", "ray:1x1", "ray:2x1"])
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the local executor")
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = ap.parse_args()

    import ray
    import torch

    torch.set_num_threads(args.threads)
    plugins = plugin_set()
    root = args.out or Path(tempfile.mkdtemp(prefix="aedr-ray-overhead-"))
    load_start = os.getloadavg()
    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t

    rows, frames, images = [], {}, None
    for spec in args.runs:
        kind, actors, cpus = parse_run(spec)
        out = root / spec.replace(":", "-")
        shutil.rmtree(out, ignore_errors=True)
        if images is not None:
            shutil.copytree(images, out / "images")
        cfg = load_config("default", models=args.models, methods=args.methods, n_cal=args.n_cal, n_eval=args.n_eval,
                          chunk_size=args.chunk_size, real="none", report=False, bootstrap=0, out=str(out), executor=kind)
        if kind == "ray":
            cfg.executor_options["ray"] = {"actors": actors, "num_cpus": cpus}
        result, to_first = timed_run(cfg, plugins)
        st = result.stats
        if images is None:
            images = out / "images"
        scoring = st.scoring_seconds
        frames[spec] = pd.read_parquet(out / "scores.parquet").sort_values(KEY).reset_index(drop=True)
        compute = float(frames[spec].loc[frames[spec]["status"] == "ok", "seconds"].sum())  # inside the methods
        rows.append((spec, scoring, to_first, compute, st.scored, st.scored / scoring if scoring else float("nan")))
        if result.failures:
            print(f"{spec}: failures: {result.failures}", file=sys.stderr)
    ray.shutdown()
    load_end = os.getloadavg()

    base = dict((r[0], r) for r in rows).get("local")
    print(f"plan: models {', '.join(args.models)}; methods {', '.join(args.methods)}; n_cal {args.n_cal}, n_eval {args.n_eval}, "
          f"chunk {args.chunk_size}; {rows[0][4]} scores per run")
    print(f"machine: {os.cpu_count()} CPUs; Ray {ray.__version__} on {args.cpus} CPUs, started in {ray_start:.1f} s (not counted below); "
          f"load average {load_start[0]:.2f} before, {load_end[0]:.2f} after")
    print()
    print("| run | scoring s | first score after s | in the methods s | scores | scores / s | time vs local |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for spec, scoring, to_first, compute, scored, rate in rows:
        ratio = f"{scoring / base[1]:.2f}x" if base else "-"
        print(f"| {spec} | {scoring:.1f} | {to_first:.1f} | {compute:.1f} | {scored} | {rate:.2f} | {ratio} |")
    ref_spec, ref = next(iter(frames.items()))
    for spec, frame in frames.items():
        same = frame[KEY + ["status"]].equals(ref[KEY + ["status"]])
        diff = float(np.nanmax(np.abs(frame["score"].to_numpy(float) - ref["score"].to_numpy(float)))) if len(frame) else 0.0
        print(f"{spec}: same rows as {ref_spec}: {same}; largest score difference {diff:.2e}")
    if args.out is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
