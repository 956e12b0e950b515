"""`fleet validate` and `fleet plan` on a generated 10,000-node spec vs a bare YAML load of the same file.

Goal (issue 26): each within 2x a bare YAML load (libyaml's CSafeLoader, what the spec loader composes with).
Each run is a whole process, the three taken in turn so that the machine's drift hits them alike; the figure is
CPU seconds (user + sys, from the kernel's accounting of the reaped child), which a loaded machine inflates less
than wall time; wall time is printed beside it. Prints medians and the median of the per-round ratios.

    python benchmarks/spec_scale.py [--nodes 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from xzctl.spec.generate import generate_fleet_document

GOAL = 2.0
BARE = "import sys, yaml; yaml.load(open(sys.argv[1], encoding='utf-8'), Loader=yaml.CSafeLoader)"


def timed(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one whole process; its output is discarded, a failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):  # 1: the plan judged a row failing, still a full run
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "fleet.yaml"
        spec.write_text(yaml.safe_dump(generate_fleet_document(args.nodes), sort_keys=False), encoding="utf-8")
        commands = {
            "bare YAML load": [sys.executable, "-c", BARE, str(spec)],
            "fleet validate": [sys.executable, "-m", "xzctl", "fleet", "validate", "-f", str(spec), "-o", "json"],
            "fleet plan": [sys.executable, "-m", "xzctl", "fleet", "plan", "-f", str(spec), "-o", "json"],
        }
        rounds = [{name: timed(argv) for name, argv in commands.items()} for _ in range(args.runs)]
    print(f"spec: {args.nodes:,} edge nodes; {args.runs} rounds")
    print(f"{'command':<16} {'cpu s':>7} {'wall s':>7} {'x bare':>7}")
    missed = []
    for name in commands:
        cpu = statistics.median(r[name][0] for r in rounds)
        wall = statistics.median(r[name][1] for r in rounds)
        ratio = statistics.median(r[name][0] / r["bare YAML load"][0] for r in rounds)
        verdict = "" if name == "bare YAML load" else ("met" if ratio <= GOAL else "MISSED")
        if verdict == "MISSED":
            missed.append(name)
        print(f"{name:<16} {cpu:7.2f} {wall:7.2f} {ratio:6.2f}x {verdict}")
    print(f"goal: each within {GOAL:.1f}x the bare load (CPU, median of per-round ratios)")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
