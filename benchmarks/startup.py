"""How long the quick commands take to start, and which heavy modules they import.

    python benchmarks/startup.py                 # aedr --help, aedr models, aedr methods; 7 runs each
    python benchmarks/startup.py --runs 11 --json

Each command runs in a fresh Python process, as a user's shell runs it, with output discarded; the
table gives the median and the range of the wall-clock times. The heavy modules column says which of
torch, diffusers, scipy and pandas the command imported (from ``sys.modules`` at exit, in a separate
run), since those dominate a start-up: none of them is needed to list commands, models or methods.
The target is at most 1.0 s per command. Machine load changes the numbers; the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["models"], ["methods"])
HEAVY = ("torch", "diffusers", "scipy", "pandas")
TARGET_S = 1.0

# Runs the CLI in-process, then reports which heavy modules are loaded, on stderr.
PROBE = """
import sys
from aedr.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = [m for m in {heavy!r} if m in sys.modules]
sys.stderr.write("HEAVY=" + ",".join(heavy) + "\\n")
"""


def aedr_command() -> list[str]:
    """The installed ``aedr`` script next to this Python, else the same entry point through ``-c``."""
    script = Path(sys.executable).parent / "aedr"
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from aedr.cli import main; main()"]


def time_command(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([*aedr_command(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return times


def heavy_imports(args: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True
    )
    line = next(l for l in proc.stderr.splitlines() if l.startswith("HEAVY="))
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (default 7)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    time_command(["--help"], 1)  # warm the file-system cache once; not counted
    rows = []
    for command in COMMANDS:
        times = time_command(command, args.runs)
        rows.append({
            "command": "aedr " + " ".join(command),
            "median_s": round(statistics.median(times), 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "runs": args.runs,
            "heavy_imports": heavy_imports(command),
        })
    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }
    if args.json:
        print(json.dumps({"machine": machine, "target_s": TARGET_S, "commands": rows}, indent=2))
        return
    print(f"Python {machine['python']}, {machine['cpus']} CPUs, load average {machine['load_average']} ({machine['platform']})")
    print(f"{'command':<16} {'median s':>9} {'min-max s':>13}  {'<= 1.0 s':<9} heavy modules imported")
    for r in rows:
        ok = "yes" if r["median_s"] <= TARGET_S else "NO"
        span = f"{r['min_s']:.2f}-{r['max_s']:.2f}"
        print(f"{r['command']:<16} {r['median_s']:>9.2f} {span:>13}  {ok:<9} {', '.join(r['heavy_imports']) or 'none'}")


if __name__ == "__main__":
    main()
