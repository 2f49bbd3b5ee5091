"""What a person reads at a terminal: tables that fit 80 and 100 columns (rich consoles of that width,
recorded), names folded at sensible points, and leaderboards merged from several runs that keep each
run's figures honest."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from aedr.bench.leaderboard import LeaderboardError, merge_runs, read_run
from aedr.bench.render.console import print_table
from aedr.bench.render.format import fmt
from aedr.bench.tables import Estimate, MethodSummary, Table, leaderboard_table
from aedr.text import fold_name

WIDTHS = (80, 100)


def rendered(table: Table, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    print_table(console, table)
    return console.export_text()


def assert_fits(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"{len(too_wide)} line(s) wider than {width}:\n" + "\n".join(too_wide)


@pytest.mark.parametrize(
    "name, width, lines",
    [
        ("zoo-kl-a", 20, ["zoo-kl-a"]),
        ("zoo-kl-a", 5, ["zoo-", "kl-a"]),
        ("aeroblade-ssim(seed=3)", 20, ["aeroblade-ssim", "(seed=3)"]),
        ("stable-diffusion-xl-base-1.0", 27, ["stable-diffusion-xl-base-", "1.0"]),  # never inside a version number
        ("ronan(lr=0.1, iterations=20)", 12, ["ronan", "(lr=0.1,", "iterations=", "20)"]),  # never inside a number
        ("suspect.png", 8, ["suspect.", "png"]),
        ("averyveryverylongname", 8, ["averyver", "yverylon", "gname"]),  # no separator: split where it must
    ],
)
def test_names_fold_after_separators(name, width, lines):
    assert fold_name(name, width).splitlines() == lines


def summary(label: str, acc: float, rank: str, versus: bool) -> MethodSummary:
    s = MethodSummary(label, "h" + label, label, {"accuracy": acc, "auc": 0.9, "tpr_at_1pct_fpr": 0.5}, {"accuracy": acc - 0.01, "auc": 0.8},
                      0.0123, 56, 8, 8, 400)
    s.intervals = {"pair:accuracy": (acc - 0.05, min(1.0, acc + 0.05)), "real:accuracy": (acc - 0.06, acc), "pair:auc": (0.85, 0.95), "real:auc": (0.7, 0.9)}
    s.rank = rank
    if versus:
        s.versus_leader = {f"pair:{m}": {"difference": -0.031, "low": -0.052, "high": -0.004, "p_value": 0.02, "p_holm": 0.04, "tied": False}
                           for m in ("accuracy", "auc")}
    return s


LABELS = ("aedr", "aeroblade-lpips(layer=2)", "latenttracer", "ronan(iterations=50)")


def figures(table: Table) -> list[str]:
    return [fmt(v.value if isinstance(v, Estimate) else v, f) for row in table.rows for v, f in zip(row, table.formats)
            if f != "text" and not (isinstance(v, float) and math.isnan(v))]


@pytest.mark.parametrize("width", WIDTHS)
def test_the_leaderboard_fits_and_keeps_every_figure_shown(width):
    table = leaderboard_table([summary(x, 0.9 - 0.05 * i, "1" if i == 0 else f"{i + 1}", i > 0) for i, x in enumerate(LABELS)])
    text = rendered(table, width)
    assert_fits(text, width)
    for figure in figures(dataclass_without(table, table.secondary)):
        assert figure in text
    for piece in ("aedr", "aeroblade-lpips", "(layer=2)", "ronan", "(iterations=50)"):
        assert piece in text  # names fold at their separators, never mid-word
    assert f"Not shown at {width} columns" in text and "ms / image" in text.split("Not shown")[1]


def dataclass_without(table: Table, columns) -> Table:
    keep = [i for i, c in enumerate(table.columns) if c not in columns]
    return Table(table.key, table.title, [table.columns[i] for i in keep], [table.formats[i] for i in keep], [[r[i] for i in keep] for r in table.rows])


def per_target_table(n_targets: int) -> Table:
    targets = [f"zoo-model-{i}" for i in range(n_targets)]
    rows = [[label, *[Estimate(0.5 + 0.01 * j, 0.4, 0.6 + 0.01 * j) for j in range(n_targets)], Estimate(0.7, 0.65, 0.75)] for label in LABELS]
    return Table("table1", "Table 1 · Attribution accuracy (%) between models: target T against every other model S", ["method", *targets, "mean"],
                 ["text", *["pct"] * (n_targets + 1)], rows, "Column T: mean over sources S ≠ T.")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("n_targets", [2, 8, 14])
def test_per_target_tables_fit_stacking_intervals_or_splitting_columns(width, n_targets):
    table = per_target_table(n_targets)
    text = rendered(table, width)
    assert_fits(text, width)
    for figure in figures(table):
        assert figure in text
    for target in table.columns[1:]:
        assert target in text
    if n_targets == 2:  # room for every interval, on the figure's line or the next
        assert "[40.0, 60.0]" in text and "Not shown" not in text
    else:
        assert "Not shown" in text and "intervals" in text.split("Not shown")[1]


def test_a_wide_table_keeps_one_line_per_row_where_there_is_room():
    table = per_target_table(2)
    text = rendered(table, 200)
    assert "50.0 [40.0, 60.0]" in text and "Not shown" not in text


# -- merged leaderboards -------------------------------------------------------------------------
MODELS = ("zoo-a", "zoo-b")


def write_run(folder: Path, methods: dict[str, tuple[float, str]], *, finished: str, seed: int = 0, fmt_: str = "aedr-bench/1", **config) -> Path:
    """A run's metrics.json: per method its mean pair accuracy and its rank in the run, with intervals."""
    pairs, timings, summaries = [], [], []
    leader = next(iter(methods))
    for label, (acc, rank) in methods.items():
        for t in MODELS:
            for s in MODELS:
                if s != t:
                    pairs.append({"method": label, "options_hash": "h" + label, "label": label, "target": t, "target_family": "kl", "source": s,
                                  "pair_kind": "model", "perturbation": "", "threshold": 1.0, "alpha": 0.05, "n_target": 4, "n_source": 4,
                                  "accuracy": acc, "accuracy_low": acc - 0.1, "accuracy_high": acc + 0.1, "auc": 0.9})
            timings.append({"method": label, "options_hash": "h" + label, "label": label, "target": t, "images": 8, "seconds": 0.8})
        versus = {} if label == leader else {"pair:accuracy": {"difference": acc - methods[leader][0], "low": -0.2, "high": 0.1, "p_value": 0.3,
                                                               "p_holm": 0.3, "tied": True}}
        summaries.append({"method": label, "options_hash": "h" + label, "rank": rank, "versus_leader": versus,
                          "intervals": {"pair:accuracy": [acc - 0.04, acc + 0.03]}})
    doc = {"format": fmt_, "finished": finished, "config": {"name": "t", "n_cal": 8, "n_eval": 4, "alpha": 0.05, "seed": seed, **config},
           "models": [{"name": m} for m in MODELS], "pairs": pairs, "timings": timings, "summaries": summaries}
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(doc))
    return folder


def board(*folders: Path):
    merged = merge_runs([read_run(f) for f in folders])
    return merged, {s.label: s for s in merged.summaries}


def test_a_run_alone_keeps_its_ranks_intervals_and_comparison(tmp_path):
    run = write_run(tmp_path / "run", {"aedr": (0.9, "1"), "aeroblade": (0.85, "1=")}, finished="2026-01-01")
    merged, rows = board(run)
    assert rows["aeroblade"].rank == "1=" and rows["aeroblade"].intervals["pair:accuracy"] == pytest.approx((0.81, 0.88))
    table = merged.table()
    assert table.columns[0] == "rank" and any(c.startswith("Δ") for c in table.columns) and "Δ:" in table.note


def test_runs_with_the_same_folder_name_keep_their_intervals_and_ranks(tmp_path):
    """Reliability defect 6: runs were keyed by their folder's name, so x/run and y/run collided."""
    x = write_run(tmp_path / "x" / "run", {"aedr": (0.9, "1"), "aeroblade": (0.85, "1=")}, finished="2026-01-01")
    y = write_run(tmp_path / "y" / "run", {"ronan": (0.7, "1"), "latenttracer": (0.6, "2")}, finished="2026-01-02")
    merged, rows = board(x, y)
    assert [r.name for r in merged.runs] == ["x/run", "y/run"]
    assert {label: s.rank for label, s in rows.items()} == {"aedr": "1", "aeroblade": "1=", "ronan": "1", "latenttracer": "2"}
    assert all(s.intervals["pair:accuracy"] for s in rows.values())
    assert merged.runs_by_method[("latenttracer", "hlatenttracer")] == "y/run"


def test_methods_from_different_runs_are_not_ranked_against_each_other(tmp_path):
    a = write_run(tmp_path / "small", {"aedr": (0.8, "1"), "aeroblade": (0.75, "1=")}, finished="2026-01-01")
    b = write_run(tmp_path / "bench", {"latenttracer": (0.95, "1"), "ronan": (0.5, "2")}, finished="2026-01-02")
    merged, rows = board(a, b)
    assert merged.ranked_in_pools and rows["aedr"].rank == "1" and rows["aeroblade"].rank == "1="  # as in its run, not "3"
    assert rows["aeroblade"].intervals["pair:accuracy"] == pytest.approx((0.71, 0.78))
    table = merged.table()
    assert table.columns[0] == "rank (pool)" and not any(c.startswith("Δ") for c in table.columns)
    assert "Δ" not in table.note and "no rank, spans two pools" in table.note  # the footer describes the columns shown
    doc = json.loads(json.dumps([s.record() for s in merged.summaries]))
    assert [d["rank"] for d in doc] == ["1", "1=", "1", "2"]


def test_a_method_in_both_runs_keeps_the_latest_runs_figures_intervals_and_rank(tmp_path):
    """The issue's case: aedr and aeroblade-ssim benchmarked in runs/small and again in aedr-runs/bench."""
    small = write_run(tmp_path / "runs" / "small", {"aedr": (0.8, "1="), "aeroblade-ssim": (0.82, "1")}, finished="2026-01-01")
    bench = write_run(tmp_path / "aedr-runs" / "bench", {"latenttracer": (0.97, "1"), "aedr": (0.91, "2"), "aeroblade-ssim": (0.84, "3")},
                      finished="2026-01-02")
    merged, rows = board(small, bench)
    assert not merged.ranked_in_pools  # every method's pairs come from the latest run: its own board
    assert {label: s.rank for label, s in rows.items()} == {"latenttracer": "1", "aedr": "2", "aeroblade-ssim": "3"}
    assert rows["aedr"].intervals["pair:accuracy"] == pytest.approx((0.87, 0.94)) and rows["aedr"].versus_leader
    assert any("appear in more than one run" in n for n in merged.notes)


def test_a_method_whose_pairs_span_runs_is_unranked_without_intervals(tmp_path):
    a = write_run(tmp_path / "a", {"aedr": (0.8, "1")}, finished="2026-01-01")
    b = write_run(tmp_path / "b", {"aedr": (0.9, "1"), "ronan": (0.5, "2")}, finished="2026-01-02")
    doc = json.loads((b / "metrics.json").read_text())
    doc["pairs"] = [p for p in doc["pairs"] if not (p["method"] == "aedr" and p["target"] == "zoo-a")]
    (b / "metrics.json").write_text(json.dumps(doc))
    merged, rows = board(a, b)
    assert merged.runs_by_method[("aedr", "haedr")] == "a, b"
    assert rows["aedr"].rank == "–" and not rows["aedr"].intervals


def test_an_unknown_metrics_format_is_refused(tmp_path):
    """Reliability defect 17."""
    run = write_run(tmp_path / "run", {"aedr": (0.9, "1")}, finished="2026-01-01", fmt_="aedr-bench/9")
    with pytest.raises(LeaderboardError, match="format 'aedr-bench/9' is not one this aedr reads"):
        read_run(run)


@pytest.mark.parametrize(
    "setting, a, b",
    [("perturbations", [], ["jpeg:90"]), ("calibrate_perturbed", False, True), ("real", "photos/", "other/"), ("n_cal", 8, 16)],
)
def test_the_runs_differ_note_names_what_differs(tmp_path, setting, a, b):
    """Reliability defect 18: the note looked at budgets, alpha and seed only."""
    x = write_run(tmp_path / "x", {"aedr": (0.9, "1")}, finished="2026-01-01", **{setting: a})
    y = write_run(tmp_path / "y", {"ronan": (0.7, "1")}, finished="2026-01-02", **{setting: b})
    merged, _ = board(x, y)
    assert any(f"differ in {setting}" in n for n in merged.notes), merged.notes


def test_the_runs_differ_note_names_different_models(tmp_path):
    x = write_run(tmp_path / "x", {"aedr": (0.9, "1")}, finished="2026-01-01")
    y = write_run(tmp_path / "y", {"ronan": (0.7, "1")}, finished="2026-01-02")
    doc = json.loads((y / "metrics.json").read_text())
    doc["models"] = [{"name": "zoo-a"}, {"name": "zoo-c"}]
    (y / "metrics.json").write_text(json.dumps(doc))
    assert any("differ in models" in n for n in board(x, y)[0].notes)
    same = write_run(tmp_path / "z", {"aeroblade": (0.7, "1")}, finished="2026-01-03")
    assert not any("differ" in n for n in board(x, same)[0].notes)


@pytest.mark.parametrize("width", WIDTHS)
def test_aedr_leaderboard_fits_the_terminal(tmp_path, monkeypatch, width):
    from typer.testing import CliRunner

    from aedr.cli import build_app, out

    x = write_run(tmp_path / "x" / "run", {"aedr": (0.9, "1"), "aeroblade-lpips(layer=2)": (0.85, "1=")}, finished="2026-01-01")
    y = write_run(tmp_path / "y" / "run", {"ronan(iterations=50)": (0.7, "1"), "latenttracer": (0.6, "2")}, finished="2026-01-02")
    monkeypatch.setattr(out, "_width", width)
    res = CliRunner().invoke(build_app(), ["leaderboard", str(x), str(y), "--out", str(tmp_path / "board")])
    assert res.exit_code == 0, res.output
    table, written = res.output.split("written to ")
    assert_fits(table, width)  # the folder written to is kept whole (a path to copy), on its own line
    assert "x/run" in table and "y/run" in table and "Rank (pool)" in table


# -- progress ------------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_the_bench_progress_keeps_its_bar_and_figures_at_the_width(width):
    from aedr.bench.progress import PlanProgress

    console = Console(width=width, file=io.StringIO(), record=True, force_terminal=True, color_system=None)
    with PlanProgress(console) as bar:
        bar.start_generation(24)
        bar.generated(24)
        bar.start_scoring(80, {"aedr": 80}, {})
        bar.unit("aedr · zoo-kl-a ← zoo-kl-a (cal), zoo-kl-b (eval), zoo-kl16 (eval), zoo-tiny (eval), real (eval)", "zoo-kl-a")
        bar.scored("aedr", 60, 6.0)
        assert [t.description for t in bar._progress.tasks] == ["scoring · aedr · zoo-kl-a ← zoo-kl-a (cal), zoo-kl-b (eval), zoo-kl16 (eval), "
                                                                  "zoo-tiny (eval), real (eval)"]  # the generation line gave way
    text = console.export_text()
    last = "scoring · " + text.rsplit("scoring · ", 1)[1].splitlines()[0]  # the display's last frame
    assert len(last) <= width and "━" in last and "60/80" in last and "0:00:" in last and "ETA 0:02" in last, text
    assert "generated 24 images in" in text


def test_cli_progress_is_one_line_per_stage_off_a_terminal(tmp_path, monkeypatch):
    from aedr.cli import progress_bar

    import sys

    captured = io.StringIO()  # the console writes to whatever sys.stderr is (setting its file would outlive the test)
    monkeypatch.setattr(sys, "stderr", captured)
    with progress_bar("scoring 3 photographs", 3) as advance:
        advance(3)
    lines = captured.getvalue().splitlines()
    assert lines[0] == "scoring 3 photographs (3) ..." and lines[1].startswith("scoring 3 photographs: done in ") and len(lines) == 2


@pytest.mark.parametrize("offline", ["1", "0"])
def test_weights_missing_with_the_hub_offline_or_unreachable_fail_at_once(tmp_path, offline):
    """No download retries to sit through: HF_HUB_OFFLINE=1, or a hub endpoint that refuses connections."""
    import os
    import subprocess
    import sys
    import time

    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (64, 64), (120, 30, 200)).save(image)
    env = {**os.environ, "HF_HUB_OFFLINE": offline, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    env.pop("HF_HUB_CACHE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from aedr.cli import main; main()", "score", str(image), "--model", "SD1.5"], env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr
    assert "Cannot load the autoencoder of model 'SD1.5'" in proc.stderr and "not in the local cache" in proc.stderr
    assert ("HF_HUB_OFFLINE is set" if offline == "1" else "http://127.0.0.1:9 cannot be reached") in proc.stderr
    assert "Retrying" not in proc.stderr and seconds < 30  # start-up included, on a loaded machine


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", ["models", "methods", "plugins"])
def test_listings_fit_without_cutting_a_cell(monkeypatch, width, command):
    from typer.testing import CliRunner

    from aedr.cli import build_app, out

    monkeypatch.setattr(out, "_width", width)
    res = CliRunner().invoke(build_app(), [command])
    assert res.exit_code == 0, res.output
    assert_fits(res.output, width)
    assert "…" not in res.output  # no name, option list or description cut short
    if command == "methods":  # every option and its default is shown
        assert "halve_every=50" in res.output


def test_python_api_calls_show_progress_where_a_person_watches(tmp_path, monkeypatch):
    """aedr.calibrate, aedr.attribute and aedr.score_images: a bar where a person watches (a terminal, a
    notebook), nothing in a script's pipe, a callable called with counts, and a clear error otherwise."""
    import sys

    import aedr.progress

    from conftest import calibrated_tiny_model, photo_crops

    plugins, tiny_model, method, card, _, _ = calibrated_tiny_model(tmp_path)
    images = photo_crops(4, seed=7)
    captured = io.StringIO()
    monkeypatch.setattr(sys, "stderr", captured)
    aedr.calibrate(tiny_model, method, images)  # not watched: silent
    assert captured.getvalue() == ""
    monkeypatch.setattr(aedr.progress, "watched", lambda: True)  # off a terminal the bar is a line per stage
    aedr.attribute(images[:2], [card], plugins=plugins)
    aedr.score_images(tiny_model, method, images[:3])
    lines = captured.getvalue().splitlines()
    assert lines[0] == "attributing (2) ..." and lines[1].startswith("attributing: done in ")
    assert lines[2] == f"{method.label} under {tiny_model.name} (3) ..." and len(lines) == 4
    counts: list[int] = []
    aedr.calibrate(tiny_model, method, images, progress=counts.append)
    assert sum(counts) == 4 and len(captured.getvalue().splitlines()) == 4  # a callable replaces the bar
    with pytest.raises(TypeError, match="progress must be True, False, None or a callable"):
        aedr.score_images(tiny_model, method, images, progress="yes")


def test_a_reason_two_methods_share_is_printed_in_full_once():
    """Two methods missing the same weights: the long notice once, then its first and last lines."""
    from types import SimpleNamespace

    from rich.console import Console

    from aedr.bench.runner import print_method_errors

    reason = "LPIPSWeightsMissing: needs two files; missing here:\n- vgg16.pth\n  fix: copy it\nWithout them: {alt}."
    methods = [SimpleNamespace(name=n, error=reason.format(alt=alt) if alt else None)
               for n, alt in (("aeroblade", "aeroblade-mse"), ("aedr", ""), ("hfi", "hfi-mse"))]
    console = Console(width=200, record=True, file=io.StringIO())
    print_method_errors(methods, console)
    lines = console.export_text().splitlines()
    assert len(lines) == 5 and lines[2] == "  fix: copy it" and lines[4].startswith("warning: method hfi cannot run here")
    assert lines[4].endswith("needs two files; missing here: (as above) ... Without them: hfi-mse.")


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory):
    """Four real bench runs: aedr and a second method together, the same two apart on the same images,
    and the second on other images (another seed)."""
    import aedr
    from aedr.bench import load_config, run_bench
    from aedr.methods.aedr_method import AEDR
    from test_bench_support import BenchModels, make_models

    class Flipped(AEDR):
        """AEDR's score negated: a second method that ranks apart from AEDR."""

        name = "flipped"

        def score_batch(self, ctx, x0):
            return -super().score_batch(ctx, x0)

    base = tmp_path_factory.mktemp("merge-runs")
    plugins = aedr.load_plugins(entry_points=False, extra=[BenchModels(make_models(base / "models", n=2), methods=[Flipped])])

    def bench(name: str, methods: list[str], seed: int = 0) -> Path:
        cfg = load_config("default", models=["tiny-*"], methods=methods, out=str(base / name), n_cal=6, n_eval=6, chunk_size=6,
                          real="none", bootstrap=200, seed=seed)
        run_bench(cfg, plugins=plugins, progress=False)
        return base / name

    return {"both": bench("both", ["aedr", "flipped"]), "aedr": bench("aedr", ["aedr"]), "flipped": bench("flipped", ["flipped"]),
            "other": bench("other", ["flipped"], seed=1)}


def test_runs_on_the_same_images_are_ranked_together_as_one_run_would_rank_them(split_runs):
    merged, rows = board(split_runs["aedr"], split_runs["flipped"])
    _, together = board(split_runs["both"])
    assert not merged.ranked_in_pools and list(merged.rank_pools.values()) == [["aedr", "flipped"]]
    assert [s.label for s in merged.summaries] == [s.label for s in together.values()]
    for label, s in together.items():
        mine = rows[label].intervals
        assert rows[label].rank == s.rank and "pair:accuracy" in mine
        for k, interval in mine.items():  # the very intervals of the one run (which records no interval of NaNs)
            if all(math.isfinite(v) for v in interval):
                assert tuple(interval) == pytest.approx(tuple(s.intervals[k]))
        pair = {k: v for k, v in s.versus_leader.items() if k.startswith("pair:")}  # a merged board has no open-set figures
        assert {k for k in rows[label].versus_leader if k.startswith("pair:")} == pair.keys()
        for k, v in pair.items():
            assert rows[label].versus_leader[k]["p_holm"] == pytest.approx(v["p_holm"])
    assert any(c.startswith("Δ") for c in merged.table().columns)


def test_runs_on_different_images_are_ranked_apart_in_pools(split_runs):
    merged, rows = board(split_runs["aedr"], split_runs["flipped"], split_runs["other"])
    assert merged.ranked_in_pools and list(merged.rank_pools.values()) == [["aedr", "flipped"], ["other"]]
    table = merged.table()
    assert [row[0] for row in table.rows] == ["1 A", "2 A", "1 B"]  # the seed-1 run's method is first of its own pool, not third
    assert not any(c.startswith("Δ") for c in table.columns) and "A: aedr, flipped; B: other" in table.note
    for s in merged.summaries:
        assert s.intervals  # every method keeps intervals


def test_a_run_without_its_score_file_keeps_its_own_ranks(split_runs, tmp_path):
    import shutil

    copy = tmp_path / "flipped"
    shutil.copytree(split_runs["flipped"], copy)
    (copy / "scores.parquet").unlink()
    merged, rows = board(split_runs["aedr"], copy)
    assert merged.ranked_in_pools and len(merged.rank_pools) == 2


@pytest.mark.parametrize("width", WIDTHS)
def test_an_attribution_with_stability_fits_and_never_cuts_its_verdict(tmp_path, monkeypatch, width):
    from aedr.cli import out
    from conftest import calibrated_tiny_model, cli_runner

    plugins, _, _, card, image, _ = calibrated_tiny_model(tmp_path / "model")
    card.save(tmp_path / "card.json")
    folder = tmp_path / "images-of-a-rather-long-folder-name"
    folder.mkdir()
    image.to_pil().save(folder / "suspect-image.png")
    monkeypatch.setattr(out, "_width", width)
    res = cli_runner(plugins, monkeypatch)("attribute", folder / "suspect-image.png", "--card", tmp_path / "card.json", "--stability")
    table = "\n".join(line for line in res.output.splitlines() if any(c in line for c in "│┃┏┗┡└"))
    assert_fits(table, width)
    assert "…" not in res.output and any(word in table for word in ("uncertain", "none", "attributed"))
