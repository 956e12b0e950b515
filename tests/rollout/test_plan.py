"""Rollout steps, the pins of each step, and the verdict rules of one measurement."""

from __future__ import annotations

import pytest

from xzctl.errors import BadInputError, NotFoundError
from xzctl.manifests.pins import ServicePin, spec_pins
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer
from xzctl.rollout.plan import canary_nodes, normalise_service, plan_steps, promoted_pins, step_pins
from xzctl.rollout.state import Result, Thresholds
from xzctl.spec import Fleet

SUCCESS, FAILURE, INCONCLUSIVE = Result.SUCCESS, Result.FAILURE, Result.INCONCLUSIVE

NEW = "registry.xiaozhi.example/inference/asr:1.4.0"
OLD = "registry.xiaozhi.example/inference/asr:2.2.0"


def test_steps_go_one_node_then_its_region_then_each_other_region(example_fleet: Fleet) -> None:
    steps = plan_steps(example_fleet, "asr")
    assert [(s.name, s.nodes) for s in steps] == [
        ("canary node bj-edge-01", ["bj-edge-01"]),
        ("rest of beijing", ["bj-edge-02", "bj-edge-03"]),
        ("region shanghai", ["sh-edge-01", "sh-edge-02"]),
        ("region guangzhou", ["gz-edge-01", "gz-edge-02"]),
    ]
    first = plan_steps(example_fleet, "asr", "guangzhou")
    assert [s.region for s in first] == ["guangzhou", "guangzhou", "beijing", "shanghai"]
    assert first[0].nodes == ["gz-edge-01"]


def test_unknown_region_and_service_are_bad_input(example_fleet: Fleet) -> None:
    with pytest.raises(NotFoundError, match="no region 'hangzhou'"):
        plan_steps(example_fleet, "asr", "hangzhou")
    with pytest.raises(BadInputError, match="not a service a rollout can change"):
        normalise_service("redis")
    assert normalise_service("xiaozhi-server") == "xiaozhi_server"
    assert normalise_service("edge-coordinator") == "coordinator"


def test_each_step_adds_a_canary_track_and_promotion_replaces_stable(example_fleet: Fleet) -> None:
    baseline = spec_pins(example_fleet)
    steps = plan_steps(example_fleet, "asr")
    second = step_pins(baseline, "asr", NEW, canary_nodes(steps, 1))
    assert second.get("bj-edge-02", "asr") == ServicePin(stable=OLD, canary=NEW)
    assert second.get("sh-edge-01", "asr") == ServicePin(stable=OLD, canary=None)
    assert second.get("bj-edge-01", "tts") == baseline.get("bj-edge-01", "tts")
    final = promoted_pins(baseline, "asr", NEW, canary_nodes(steps, len(steps) - 1))
    assert {final.get(n.id, "asr") for n in example_fleet.edge_nodes()} == {ServicePin(stable=NEW)}
    assert baseline.get("bj-edge-01", "asr") == ServicePin(stable=OLD)  # pins are values


def _judge(canary: dict[str, float], stable: dict[str, float]) -> tuple[str, str]:
    analyzer = Analyzer(
        PrometheusClient("http://127.0.0.1:9"),  # never contacted: judge() is pure
        "asr",
        Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001),
    )
    metrics = {name: {"canary": canary[name], "stable": stable[name]} for name in canary}
    return analyzer.judge(metrics)


HEALTHY = {"error_ratio": 0.0002, "inference_error_ratio": 0.0002, "p95_seconds": 0.28}


@pytest.mark.parametrize(
    ("canary", "stable", "result", "needle"),
    [
        (HEALTHY, HEALTHY, SUCCESS, "p95 canary 280 ms"),
        ({**HEALTHY, "error_ratio": 0.05}, HEALTHY, FAILURE, "error ratio canary 5.00% vs stable 0.02% (KPI 0.10%)"),
        ({**HEALTHY, "p95_seconds": 0.6}, HEALTHY, FAILURE, "p95 canary 600 ms vs stable 280 ms (KPI 500 ms)"),
        ({**HEALTHY, "p95_seconds": 0.45}, HEALTHY, FAILURE, "over 1.5x stable"),
        ({**HEALTHY, "inference_error_ratio": 0.01}, HEALTHY, FAILURE, "inference error ratio canary 1.00%"),
        ({**HEALTHY, "p95_seconds": 0.62}, {**HEALTHY, "p95_seconds": 0.6}, INCONCLUSIVE, "stable breaches"),
    ],
)
def test_verdict_against_kpi_and_stable(
    canary: dict[str, float], stable: dict[str, float], result: str, needle: str
) -> None:
    verdict, reason = _judge(canary, stable)
    assert verdict == result
    assert needle in reason
