"""`xzctl --help` start-up vs the floor of any Typer + rich CLI, `python -c "import typer, rich"`.

Goal: at most 1.25x. Each command runs as a fresh process, alternately, several times. Medians of
wall time and of CPU time (user + system of the child) side by side; the goal is judged on CPU time,
which other processes on a busy machine do not inflate, and wall time is shown beside it.

    python benchmarks/cli_help.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOAL = 1.25


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def xzctl_command() -> list[str]:
    # The console script beside this interpreter: a version manager's shim on PATH would add its own start-up.
    beside = Path(sys.executable).parent / "xzctl"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside), "--help"]
    found = shutil.which("xzctl")
    return [found, "--help"] if found else [sys.executable, "-m", "xzctl", "--help"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    xzctl = xzctl_command()
    floor = [sys.executable, "-c", "import typer, rich"]
    run_once(xzctl)  # warm the bytecode and file caches for both
    run_once(floor)
    # Interleaved, so that load from other processes hits both sides alike.
    pairs = [(run_once(xzctl), run_once(floor)) for _ in range(args.runs)]
    help_wall, help_cpu = (statistics.median(p[0][i] for p in pairs) for i in (0, 1))
    floor_wall, floor_cpu = (statistics.median(p[1][i] for p in pairs) for i in (0, 1))
    ratio = help_cpu / floor_cpu
    print(f"median of {args.runs} runs (wall / CPU):")
    print(f"  {' '.join(xzctl):<50} {help_wall * 1000:7.1f} ms / {help_cpu * 1000:6.1f} ms")
    print(f"  {' '.join(floor):<50} {floor_wall * 1000:7.1f} ms / {floor_cpu * 1000:6.1f} ms")
    print(f"ratio wall = {help_wall / floor_wall:.2f}x")
    print(f"ratio CPU  = {ratio:.2f}x (goal <= {GOAL:.2f}x): {'met' if ratio <= GOAL else 'MISSED'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
