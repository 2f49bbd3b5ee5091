"""Interrupted benchmarks resume: a run stopped part-way (Ctrl-C, or kill -9 of the process) keeps
every finished chunk; the rerun computes only what is missing and ends with the same results as an
uninterrupted run; a finished configuration reruns without computing anything."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import aedr
from aedr.bench import BenchInterrupted, load_config, run_bench
from aedr.bench.store import ScoreStore
from test_bench_support import BenchModels, make_models

# Tiny models: one torch thread is many times faster than two on a busy two-core machine.
pytestmark = pytest.mark.usefixtures("single_thread")

TESTS = Path(__file__).resolve().parent
SETTINGS = dict(models=["tiny-*"], methods=["aedr"], real="none", n_cal=4, n_eval=3, chunk_size=2, report=False)
# per target: 4 calibration + 3 evaluation images of each of the 2 models, in chunks of 2
TOTAL = 2 * (4 + 3 * 2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, single_thread):  # the reference run under the module's thread count
    base = tmp_path_factory.mktemp("bench-resume")
    models = make_models(base / "models")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(models)])
    reference = run_bench(load_config("default", out=str(base / "reference"), **SETTINGS), plugins=plugins, progress=False)
    assert reference.stats.scored == TOTAL
    return base, plugins, reference


def _sorted_scores(out: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out / "scores.parquet")
    return frame.sort_values(["target", "source", "split", "image_hash"]).reset_index(drop=True)


def _same_results(out: Path, reference_out: Path) -> None:
    mine, ref = _sorted_scores(out), _sorted_scores(reference_out)
    cols = ["method", "options_hash", "target", "source", "split", "image_id", "image_hash", "status"]
    pd.testing.assert_frame_equal(mine[cols], ref[cols])
    np.testing.assert_array_equal(mine["score"].to_numpy(), ref["score"].to_numpy())
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), pd.read_csv(reference_out / "metrics.csv"))


def test_ctrl_c_part_way_then_resume(setup):
    base, plugins, reference = setup
    cfg = load_config("default", out=str(base / "interrupted"), **SETTINGS)
    seen = []

    def stop_after_seven(event):
        seen.append(event.images)
        if sum(seen) >= 7:
            raise KeyboardInterrupt

    with pytest.raises(BenchInterrupted) as info:
        run_bench(cfg, plugins=plugins, progress=False, callback=stop_after_seven)
    saved = info.value.stats.scored
    # chunks of 2 images: the interrupt comes with the fourth chunk scored but not saved, so 6
    # scores in 3 part files survive
    assert saved == 6 and info.value.stats.chunks_written == 3
    assert len(ScoreStore(cfg.out).load()) == saved
    assert not (Path(cfg.out) / "metrics.json").exists()

    resumed = run_bench(cfg, plugins=plugins, progress=False)
    assert resumed.stats.already_saved == saved
    assert resumed.stats.scored == TOTAL - saved  # nothing saved was computed again
    assert resumed.stats.generated == 0  # the images were cached by the first attempt
    _same_results(Path(cfg.out), Path(reference.config.out))

    again = run_bench(cfg, plugins=plugins, progress=False)
    assert (again.stats.scored, again.stats.generated, again.stats.already_saved) == (0, 0, TOTAL)
    _same_results(Path(cfg.out), Path(reference.config.out))


@pytest.mark.slow
def test_kill_9_part_way_then_resume(setup, tmp_path):
    base, plugins, reference = setup
    out = base / "killed"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(TESTS)!r})
        import torch
        import aedr
        from aedr.bench import load_config, run_bench
        from test_bench_support import BenchModels, make_models
        torch.set_num_threads({torch.get_num_threads()})  # as the reference run (after conftest's): the same bits
        plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(make_models(Path({str(base / 'models')!r})))])
        done = []
        def kill(event):
            done.append(event.images)
            if sum(done) >= 9:
                os.kill(os.getpid(), signal.SIGKILL)
        run_bench(load_config("default", out={str(out)!r}, **{SETTINGS!r}), plugins=plugins, progress=False, callback=kill)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=TESTS.parent)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    parts = ScoreStore(out).part_files()
    saved = len(ScoreStore(out).load())
    # chunks of 2 under the first target; the kill comes when the fifth chunk's images are scored
    # but not yet saved: 4 chunks (8 scores) in 4 part files survive
    assert saved == 8 and len(parts) == 4
    resumed = run_bench(load_config("default", out=str(out), **SETTINGS), plugins=plugins, progress=False)
    assert resumed.stats.already_saved == saved and resumed.stats.scored == TOTAL - saved
    assert not ScoreStore(out).part_files()  # folded into the store
    _same_results(out, Path(reference.config.out))
    assert not (out / "report.html").exists()  # report=False
