"""The drill's verdict agrees with the simulation of the same loss (a fake Prometheus, no sleeps).

`check failover --drill bj-edge-03` used to say "ok" while the failover row for losing bj-edge-03 was crit:
the drill timed the devices the simulation could place and ignored the ones it said would be dropped.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from xzctl.checks.capacity import Capacity, CapacityReport
from xzctl.checks.failover import FailoverReport, FailureVerdict, drill
from xzctl.prom import PrometheusClient
from xzctl.prom.client import Sample
from xzctl.spec import Fleet
from xzctl.status import Status

NODE = "bj-edge-03"
BEFORE = 994


class FakePrometheus:
    """Answers the drill's two queries: the node's devices (gone at once) and the fleet total (`back`)."""

    url = "http://fake"

    def __init__(self, back: int) -> None:
        self.back = back
        self.calls = 0

    def query(self, promql: str, **_: Any) -> list[Sample]:
        self.calls += 1
        if NODE in promql:
            return []
        return [Sample({}, float(BEFORE if self.calls == 1 else self.back), 0.0)]


def _reports(verdict: FailureVerdict) -> tuple[CapacityReport, FailoverReport]:
    node = Capacity(NODE, Status.WARN, [], 142, 150, 8, "max_devices", region="beijing")
    fleet = Capacity("fleet", Status.WARN, [], BEFORE, 1050, 56, "max_devices")
    capacity = CapacityReport(Status.WARN, fleet, {}, {NODE: node}, 12, 0.0, "http://fake")
    return capacity, FailoverReport(verdict.status, [verdict], 0.0)


CASES = [
    # (simulated verdict, devices back, drill status, words in the reason)
    (FailureVerdict(NODE, "node", 142, Status.OK, "survives"), BEFORE - 2, Status.OK, "142 devices served elsewhere"),
    (
        FailureVerdict(NODE, "node", 142, Status.CRIT, "drops devices", unserved=94, reason="94 devices left"),
        BEFORE - 94,
        Status.CRIT,
        "48 devices served elsewhere after",
    ),
    (
        FailureVerdict(NODE, "node", 142, Status.CRIT, "overloads", reason="overloads bj-edge-01 by 5 devices"),
        BEFORE,
        Status.CRIT,
        "the simulation of this loss is crit: overloads bj-edge-01",
    ),
]


@pytest.mark.parametrize(("verdict", "back", "status", "words"), CASES)
def test_the_drill_is_never_better_than_its_simulation(
    example_fleet: Fleet, verdict: FailureVerdict, back: int, status: Status, words: str
) -> None:
    capacity, failover = _reports(verdict)
    client = cast(PrometheusClient, FakePrometheus(back))
    events: list[str] = []
    result = drill(
        client,
        example_fleet,
        capacity,
        failover,
        NODE,
        stop=lambda: events.append("stop"),
        restore=lambda: events.append("restore"),
        timeout_seconds=5,
        poll_seconds=0.0,
    )
    assert events == ["stop", "restore"]
    assert result.status is status, result.reason
    assert words in result.reason
    assert result.simulated_status is verdict.status and result.simulated_unserved == verdict.unserved
    assert result.seconds is not None and result.seconds <= result.kpi_seconds
    assert result.to_dict()["simulated_status"] == str(verdict.status)
