"""Helpers for rollouts against a real sandbox (Prometheus scraping the simulator every second)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fixtures.sandbox import wait_for_query
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer, thresholds_from_fleet
from xzctl.rollout.deploy import SimulatorDeployer
from xzctl.rollout.engine import RolloutEngine, new_rollout
from xzctl.rollout.state import RolloutState, Settings, StateStore
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import load_fleet

OLD_ASR = "registry.xiaozhi.example/inference/asr:1.0.0"
NEW_ASR = "registry.xiaozhi.example/inference/asr:1.2.0"

WINDOW = 4.0  # seconds: four 1 s scrapes per rate, whatever the analysis interval
Events = list[tuple[str, dict[str, Any]]]


def ready(box: SandboxInfo) -> None:
    """Peak-hour load on every node, every node scraped.

    The simulator counts requests as fractions and prints counters with 3 decimals; at the night-time
    trough a 10% canary track serves ~0.15 req/s, so one 0.001 step of its error counter reads as a 0.3%
    error ratio. At peak load the same step stays under the 0.1% KPI, as real integer counters would.
    """
    client = SimulatorClient(box.simulator_url)
    for region in load_fleet(box.fleet_path).fleet.regions:
        client.control({"action": "set_devices", "region": region, "utilization": 0.95})
    wait_all_up(box)


def wait_all_up(box: SandboxInfo, up: int | None = None) -> None:
    expected = box.nodes if up is None else up
    wait_for_query(box.prometheus_url, q.nodes_up_count(), lambda s: bool(s) and s[0].value == expected, 60)


def asr_images(box: SandboxInfo) -> dict[str, dict[str, str | None]]:
    nodes = SimulatorClient(box.simulator_url).state()["nodes"]
    return {node: data["images"]["asr"] for node, data in nodes.items()}


def make_engine(
    box: SandboxInfo,
    image: str = NEW_ASR,
    *,
    settings: Settings | None = None,
    on_event: Callable[[str, RolloutState, dict[str, Any]], None] | None = None,
) -> tuple[RolloutEngine, Events]:
    fleet = load_fleet(box.fleet_path).fleet
    client = SimulatorClient(box.simulator_url)
    deployer = SimulatorDeployer(client.control, client.state, box.simulator_url)
    store = StateStore(box.state_dir)
    state = new_rollout(
        fleet,
        box.fleet_path,
        "asr",
        image,
        rollout_id=store.new_id("asr"),
        baseline=deployer.current(),
        settings=settings or Settings(interval_seconds=1.0, checks=2, window_seconds=WINDOW),
        thresholds=thresholds_from_fleet(fleet, "asr"),
        deployer=deployer,
        prometheus_url=box.prometheus_url,
    )
    analyzer = Analyzer(PrometheusClient(box.prometheus_url, timeout=5), "asr", state.thresholds)
    events: Events = []

    def sink(kind: str, s: RolloutState, detail: dict[str, Any]) -> None:
        events.append((kind, detail))
        if on_event is not None:
            on_event(kind, s, detail)

    return RolloutEngine(store, state, deployer, analyzer, on_event=sink), events
