"""`xzctl loadtest run` against a second client measuring the same node at the same time: the turn probe.

Goal (issue 23): with the sandbox's real node up (`xzctl sandbox up --real-node bj-edge-01 --xiaozhi-source DIR`),
`xzctl loadtest run --devices 4 --duration 90s -o json` answers every turn and its stt and first-audio p50/p95 are
within 2x of what the node's probe measured over the same window. The probe is another process with its own
session and its own pace (a turn every 15 s), scraped by the sandbox's Prometheus: its figures are the contract's
turn histograms read back through PromQL (bucket interpolation), the loadtest's are Locust's own stats. Both use
the device client of `xzctl.loadtest.device`, so this checks the load generator's pacing, stats and export path,
not the client's clock.

    python benchmarks/loadtest_vs_probe.py --state-dir /tmp/box [--devices 4] [--duration 90]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.sandbox import sandbox_status

MEASURES = (("stt_seconds", c.TURN_STT_SECONDS), ("first_audio_seconds", c.TURN_FIRST_AUDIO_SECONDS))
GOAL_RATIO = 2.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--duration", type=int, default=90)
    args = parser.parse_args()
    info = sandbox_status(args.state_dir)
    if info is None or not info.real_node:
        print(f"no sandbox with a real node in {args.state_dir}", file=sys.stderr)
        return 2
    node = str(info.real_node["node"])
    argv = [sys.executable, "-m", "xzctl", "loadtest", "run", "--devices", str(args.devices)]
    argv += ["--duration", f"{args.duration}s", "--state-dir", str(args.state_dir), "-o", "json"]
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 300, check=False)
    end = time.time()
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    load = json.loads(done.stdout)
    time.sleep(2 * info.scrape_interval_seconds)  # the probe's last turns of the window reach Prometheus
    window = f"{math.ceil(end - start)}s"
    filters = {c.NODE: node, c.TRACK: "stable"}
    prom = PrometheusClient(info.prometheus_url, timeout=10)

    def value(promql: str) -> float | None:
        samples = prom.query(promql, at=end)
        return samples[0].value if samples and not samples[0].is_nan else None

    probe_turns = value(f"sum(increase({c.TURNS.name}{{{c.NODE}='{node}'}}[{window}]))")
    probe_failed = value(q.turn_failure_ratio(window=window, by=(), filters=filters))
    print(f"loadtest: {load['devices']} devices, {load['turns']} turns, {load['failed']} failed {load['failures']}")
    print(f"probe (same {window}): {probe_turns or 0:.0f} turns, failed ratio {probe_failed}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'measure':<26}{'loadtest':>10}{'probe':>10}{'ratio':>8}  within {GOAL_RATIO:g}x")
    met = load["failed"] == 0 and load["turns"] > 0
    for key, metric in MEASURES:
        for quantile in ("p50", "p95"):
            ours = load[key][quantile]
            theirs = value(
                q.turn_latency_quantile(metric, quantile=int(quantile[1:]) / 100, window=window, by=(), filters=filters)
            )
            if ours is None or theirs is None or min(ours, theirs) <= 0:
                print(f"{key + ' ' + quantile:<26}{ours!s:>10}{theirs!s:>10}{'-':>8}  no figure")
                met = False
                continue
            ratio = max(ours, theirs) / min(ours, theirs)
            met = met and ratio <= GOAL_RATIO
            print(
                f"{key + ' ' + quantile:<26}{ours:>9.2f}s{theirs:>9.2f}s{ratio:>7.2f}x  {'yes' if ratio <= GOAL_RATIO else 'no'}"
            )
    print(f"goal (every turn answered, each figure within {GOAL_RATIO:g}x of the probe): {'met' if met else 'missed'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
