"""Time from the onset of a regression to the rollback decision, in analysis intervals.

A real sandbox (the simulator scraped by Prometheus every second) runs a healthy asr canary on its first
edge node; after a few successful measurements the canary image regresses in the simulator (errors or
latency). The figure is the number of analysis intervals (measurements) from the onset to the rollback
decision; the wall-clock time is shown too (each interval also pays a few ms of PromQL).
Goal: median <= 2 intervals over the 8 runs (4 scenarios x 2). Run: python benchmarks/rollout_rollback.py
[--interval 2] [--runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer, thresholds_from_fleet
from xzctl.rollout.deploy import SimulatorDeployer
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import RolloutState, Settings, StateStore
from xzctl.rollout.transitions import EventSink
from xzctl.sandbox import SandboxInfo, SimulatorClient, start_sandbox, stop_sandbox
from xzctl.spec import load_fleet

GOAL_INTERVALS = 2.0
NEW = "registry.xiaozhi.example/inference/asr:1.4.0"
OLD = "registry.xiaozhi.example/inference/asr:2.2.0"
HEALTHY_BEFORE_ONSET = 3
SCENARIOS: dict[str, dict[str, float]] = {
    "error rate 5%": {"error_rate": 0.05},
    "error rate 1%": {"error_rate": 0.01},
    "latency x2": {"latency_factor": 2.0},
    "latency x1.6": {"latency_factor": 1.6},
}


def peak_load_and_wait_up(box: SandboxInfo) -> None:
    # Peak-hour load: the simulator prints counters with 3 decimals, so at the night trough a 10% canary's
    # error ratio is dominated by rounding; real integer counters do not have that problem.
    client = SimulatorClient(box.simulator_url)
    for region in load_fleet(box.fleet_path).fleet.regions:
        client.control({"action": "set_devices", "region": region, "utilization": 0.95})
    with PrometheusClient(box.prometheus_url, timeout=5, retries=0) as prom:
        for _ in range(120):
            samples = prom.query(q.nodes_up_count())
            if samples and samples[0].value == box.nodes:
                return
            time.sleep(0.5)
    raise SystemExit("Prometheus never saw every edge node up")


@contextmanager
def peak_sandbox(scrape_interval_seconds: float = 1.0) -> Iterator[SandboxInfo]:
    """A sandbox of the example fleet scraped every second (or as given), at peak load, stopped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        box = start_sandbox(None, Path(tmp) / "state", scrape_interval_seconds=scrape_interval_seconds)
        try:
            peak_load_and_wait_up(box)
            yield box
        finally:
            stop_sandbox(box.state_dir)


def make_engine(box: SandboxInfo, settings: Settings, on_event: EventSink | None = None) -> RolloutEngine:
    """An asr canary of NEW on the sandbox, judged by its Prometheus (shared with rollout_canary.py)."""
    client = SimulatorClient(box.simulator_url)
    deployer = SimulatorDeployer(client.control, client.state, box.simulator_url)
    fleet = load_fleet(box.fleet_path).fleet
    store = StateStore(box.state_dir)
    state = new_rollout(
        fleet, box.fleet_path, "asr", NEW, rollout_id=store.new_id("asr"), baseline=deployer.current(),
        settings=settings, thresholds=thresholds_from_fleet(fleet, "asr"), deployer=deployer,
        prometheus_url=box.prometheus_url,
    )  # fmt: skip
    prom = PrometheusClient(box.prometheus_url, timeout=5)
    analyzer = Analyzer(prom, "asr", state.thresholds, scrape_interval_seconds=box.scrape_interval_seconds)
    return RolloutEngine(store, state, deployer, analyzer, on_event=on_event)


def one_run(box: SandboxInfo, interval: float, profile: dict[str, float]) -> tuple[float, int, str]:
    """(seconds from onset to the rollback decision, measurements after onset, final phase)."""
    client = SimulatorClient(box.simulator_url)
    client.control({"action": "image_profile", "image": NEW, "latency_factor": 1.0, "error_rate": 0.0})
    for node in client.state()["nodes"]:  # every node back on the old image, no canary
        client.control({"action": "deploy", "node": node, "service": "asr", "track": "stable", "image": OLD})
        client.control({"action": "deploy", "node": node, "service": "asr", "track": "canary", "image": None})
    # let the previous run's regressed samples leave the rate window before judging again
    time.sleep(2 * interval + 3)
    marks: dict[str, Any] = {"successes": 0, "onset": None, "decision": None, "after": 0}

    def on_event(kind: str, _state: RolloutState, detail: dict[str, Any]) -> None:
        if kind == "analysis" and marks["onset"] is not None:
            marks["after"] += 1
        if kind == "analysis" and detail.get("result") == "success":
            marks["successes"] += 1
            if marks["successes"] == HEALTHY_BEFORE_ONSET and marks["onset"] is None:
                client.control({"action": "image_profile", "image": NEW, **profile})
                marks["onset"] = time.monotonic()
        if kind == "rolling_back" and marks["decision"] is None:
            marks["decision"] = time.monotonic()

    final = make_engine(box, Settings(interval_seconds=interval, checks=1000), on_event).start()
    if marks["onset"] is None or marks["decision"] is None:
        return float("inf"), 0, f"{final.phase}: {final.reason}"
    return marks["decision"] - marks["onset"], marks["after"], final.phase


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=2.0, help="analysis interval, seconds")
    parser.add_argument("--runs", type=int, default=2, help="runs per scenario")
    args = parser.parse_args()
    with peak_sandbox() as box:
        print(f"sandbox: {box.nodes} edge nodes, scrape 1 s, analysis interval {args.interval:g} s")
        print(f"{'scenario':<16} {'intervals to rollback (each run)':<34} {'seconds':<22} phase")
        counted: list[int] = []
        early = 0
        for name, profile in SCENARIOS.items():
            results = [one_run(box, args.interval, profile) for _ in range(args.runs)]
            failed = [r for r in results if r[0] == float("inf")]
            counted += [r[1] for r in results if r not in failed]
            early += len(failed)
            counts = ", ".join(str(r[1]) for r in results)
            seconds = ", ".join(f"{r[0]:.2f}" for r in results)
            print(f"{name:<16} {counts:<34} {seconds:<22} {results[-1][2]}")
            for r in failed:
                print(f"  a run ended before the regression started: {r[2]}")
        median = statistics.median(counted) if counted else float("inf")
        verdict = "OK" if median <= GOAL_INTERVALS and not early else "MISSED"
        print(
            f"median of {len(counted)} runs: {median:g} analysis intervals (worst {max(counted, default=0)}); "
            f"goal <= {GOAL_INTERVALS:g}: {verdict}"
        )
        if early:
            print(f"{early} run(s) rolled back a healthy canary before the regression")


if __name__ == "__main__":
    main()
