"""`xzctl --help` start-up vs the floor of any Typer + rich CLI, `python -c "import typer, rich"`.

Goal: at most 1.25x. Each command runs as a fresh process, alternately, several times; medians side by side.

    python benchmarks/cli_help.py [--runs 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

GOAL = 1.25


def run_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=60)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    script = shutil.which("xzctl")
    xzctl = [script, "--help"] if script else [sys.executable, "-m", "xzctl", "--help"]
    floor = [sys.executable, "-c", "import typer, rich"]
    run_seconds(xzctl)  # warm the bytecode and file caches for both
    run_seconds(floor)
    # Interleaved, so that load from other processes hits both sides alike.
    pairs = [(run_seconds(xzctl), run_seconds(floor)) for _ in range(args.runs)]
    t_help = statistics.median(p[0] for p in pairs)
    t_floor = statistics.median(p[1] for p in pairs)
    ratio = t_help / t_floor
    print(f"median of {args.runs} runs:")
    print(f"  {' '.join(xzctl):<45} {t_help * 1000:7.1f} ms")
    print(f"  {' '.join(floor):<45} {t_floor * 1000:7.1f} ms")
    print(f"ratio = {ratio:.2f}x (goal <= {GOAL:.2f}x): {'met' if ratio <= GOAL else 'MISSED'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
