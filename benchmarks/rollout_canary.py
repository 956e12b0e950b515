"""A healthy canary on the 7-node example fleet: wall-clock time against the sum of its analysis intervals.

A real sandbox (the simulator scraped by Prometheus every 500 ms) runs an asr canary with `--interval 1s
--checks 2` through its 4 steps and the promote. The sum of its analysis intervals is steps x checks x
interval (8 s); the figure is the wall-clock time from start to promoted, which also pays each step's deploy
and the PromQL. Each step's first measurement still uses only samples taken after its deploy; it comes once
the window holds two scrapes (a rate needs them): 1 s at a 500 ms scrape interval, 2 s at 1 s (the figure
printed for comparison with --scrape 1). Goal: <= 1.5x the sum.
Run: python benchmarks/rollout_canary.py [--runs 3] [--scrape 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rollout_rollback import OLD, make_engine, peak_sandbox

from xzctl.rollout.state import Settings
from xzctl.sandbox import SimulatorClient

GOAL_FACTOR = 1.5
INTERVAL, CHECKS = 1.0, 2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="rollouts to time")
    parser.add_argument("--scrape", type=float, default=0.5, help="the sandbox's scrape interval, seconds")
    args = parser.parse_args()
    with peak_sandbox(args.scrape) as box:
        print(f"sandbox: {box.nodes} edge nodes, scrape {args.scrape:g} s; canary --interval 1s --checks {CHECKS}")
        client = SimulatorClient(box.simulator_url)
        times: list[float] = []
        for run in range(args.runs):
            for node in client.state()["nodes"]:  # every node back on the old image
                client.control({"action": "deploy", "node": node, "service": "asr", "track": "stable", "image": OLD})
            engine = make_engine(box, Settings(interval_seconds=INTERVAL, checks=CHECKS, window_seconds=4.0))
            began = time.monotonic()
            final = engine.start()
            took = time.monotonic() - began
            budget = len(final.steps) * CHECKS * INTERVAL
            errors = sum(m.result == "error" for m in final.analysis)
            first = [
                m.at - (final.steps[m.step].deployed_at or m.at)
                for i, m in enumerate(final.analysis)
                if i == 0 or final.analysis[i - 1].step != m.step
            ]
            print(
                f"run {run + 1}: {final.phase} on {len(final.nodes)} nodes in {took:.2f} s "
                f"({took / budget:.2f}x the {budget:g} s of analysis intervals; {errors} measurement errors; "
                f"first measurement of a step {statistics.mean(first):.2f} s after its deploy)"
            )
            if final.phase == "promoted":
                times.append(took / budget)
        median = statistics.median(times) if times else float("inf")
        verdict = "OK" if median <= GOAL_FACTOR and len(times) == args.runs else "MISSED"
        print(f"median {median:.2f}x the sum of analysis intervals; goal <= {GOAL_FACTOR:g}x: {verdict}")


if __name__ == "__main__":
    main()
