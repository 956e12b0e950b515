"""check failover with the autoscalers: running replicas from metrics against each autoscaler's max."""

from __future__ import annotations

from tests.fixtures.sandbox import wait_for_query
from xzctl.checks.autoscaling import add_autoscaler_limits, running_replicas
from xzctl.checks.failover import FailoverReport, FailureVerdict
from xzctl.prom.client import PrometheusClient
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import Fleet
from xzctl.status import Status


def _report() -> FailoverReport:
    failures = [
        FailureVerdict("bj-edge-01", "node", 145, Status.OK, "survives"),
        FailureVerdict("bj-edge-02", "node", 100, Status.OK, "survives"),
        FailureVerdict("beijing", "region", 385, Status.CRIT, "drops devices", reason="no room"),
    ]
    return FailoverReport(Status.CRIT, failures, 0.0)


DEVICES = {"bj-edge-01": 145, "bj-edge-02": 100, "bj-edge-03": 140}


def test_replicas_already_at_max_cannot_absorb_a_neighbour(example_fleet: Fleet) -> None:
    report = _report()
    add_autoscaler_limits(example_fleet, report, {("bj-edge-02", "asr"): 7}, DEVICES)
    lost_01, lost_02, region = report.failures
    assert lost_01.status is Status.WARN and "bj-edge-02: asr needs 11 replicas" in lost_01.reason
    assert lost_02.status is Status.OK  # bj-edge-01 and 03 keep enough room below their max
    assert region.status is Status.CRIT and region.reason == "no room"  # region losses are left alone
    assert report.status is Status.CRIT


def test_no_running_replicas_no_change(example_fleet: Fleet) -> None:
    report = _report()
    add_autoscaler_limits(example_fleet, report, {}, DEVICES)
    assert [f.status for f in report.failures] == [Status.OK, Status.OK, Status.CRIT]


def test_replicas_with_room_below_max_pass(example_fleet: Fleet) -> None:
    report = _report()
    running = {(n, s): 3 if s == "asr" else 2 for n in DEVICES for s in ("asr", "tts")}
    add_autoscaler_limits(example_fleet, report, running, DEVICES)
    assert [f.status for f in report.failures[:2]] == [Status.OK, Status.OK]


def test_running_replicas_come_from_the_simulator_gauge(example_fleet: Fleet, sandbox: SandboxInfo) -> None:
    box = sandbox  # reset: the autoscaler is off, as at start
    with PrometheusClient(box.prometheus_url, timeout=5, retries=0) as client:
        assert running_replicas(client, example_fleet) == {}  # the simulator's autoscaler is off: no replicas series
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "autoscaling", "enabled": True})
    sim.control({"action": "set_devices", "node": "bj-edge-01", "devices": 1500})
    wait_for_query(
        box.prometheus_url,
        'xiaozhi_service_replicas{node="bj-edge-01",service="asr"}',
        lambda s: bool(s) and s[0].value == 7,
        60,
    )
    with PrometheusClient(box.prometheus_url, timeout=5, retries=0) as client:
        running = running_replicas(client, example_fleet)
    assert running[("bj-edge-01", "asr")] == 7  # at its autoscaler's max
    assert {n for n, _ in running} == {n.id for n in example_fleet.edge_nodes()}
