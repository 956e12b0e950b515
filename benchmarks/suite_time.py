"""How long the test suite takes without the engine tier, as CI runs it (`scripts/test.sh`).

Goals (on the 2-core machine):
  - the fast suite (no tier: no real Prometheus, sshd, engine, image or external linter) <= 30 s;
  - the full suite without the engine tier (the fast suite, the tiers, the latency tests) <= 300 s.
It runs `XZCTL_SKIP_ENGINE=1 bash scripts/test.sh` (installs are seconds when present; ruff, mypy and
import-linter run first and are not counted) and reads pytest's own time of each of its runs. The engine tier
has no goal here: it starts a Kubernetes control plane and the Pulumi engine (benchmarks/engine_provision.py).

    python benchmarks/suite_time.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_FAST = 30.0
GOAL_TOTAL = 300.0
RUN = re.compile(r"^== pytest (?P<args>.*)$")
SUMMARY = re.compile(r"^=*\s*(?P<counts>\d+ (passed|failed).*) in (?P<seconds>[\d.]+)s")
TIMEOUT_SECONDS = 3600


def main() -> int:
    env = {**os.environ, "XZCTL_SKIP_ENGINE": "1"}
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "scripts/test.sh"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    wall = time.monotonic() - started
    runs: list[tuple[str, str, float]] = []
    args = ""
    for line in done.stdout.splitlines():
        if match := RUN.match(line):
            args = match["args"]
        elif match := SUMMARY.match(line):
            runs.append((args, match["counts"], float(match["seconds"])))
    if done.returncode != 0 or len(runs) != 3:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-2000:])
        print(f"scripts/test.sh exited {done.returncode} with {len(runs)} pytest runs read: no figures")
        return 1
    print(f"{'pytest run':<14} {'seconds':>8}  tests")
    for name, (_, counts, seconds) in zip(("fast suite", "tiers", "latency tests"), runs, strict=True):
        print(f"{name:<14} {seconds:>8.1f}  {counts}")
    fast = runs[0][2]
    total = sum(seconds for _, _, seconds in runs)
    print(f"{'all three':<14} {total:>8.1f}  (scripts/test.sh in all, with installs and linters: {wall:.0f} s)")
    print(f"goal fast suite <= {GOAL_FAST:.0f} s: {'ok' if fast <= GOAL_FAST else 'MISSED'} ({fast:.1f} s)")
    print(f"goal full suite without the engine tier <= {GOAL_TOTAL:.0f} s: ", end="")
    print(f"{'ok' if total <= GOAL_TOTAL else 'MISSED'} ({total:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
