"""HPAs on the contract's signals: strict Kubernetes schema, the right targets and bounds, the adapter rules."""

from __future__ import annotations

import math

from tests.fixtures.kubernetes_schema import validate_strict
from tests.fixtures.manifests import find
from tests.fixtures.sandbox import wait_for_query
from xzctl.manifests.autoscaling import BEHAVIOR, adapter_chart
from xzctl.metrics.queries import ADAPTER_SIGNALS
from xzctl.provision.objects import target_objects
from xzctl.sandbox import SandboxInfo
from xzctl.spec import Fleet

HPA = "HorizontalPodAutoscaler"


def test_one_hpa_per_node_and_autoscaled_service(example_fleet: Fleet) -> None:
    objs = target_objects(example_fleet, "beijing").objects()
    hpas = [o for o in objs if o["kind"] == HPA]
    assert sorted(h["metadata"]["name"] for h in hpas) == sorted(
        f"bj-edge-0{i}-{s}" for i in (1, 2, 3) for s in ("asr", "tts", "llm")
    )
    deployments = {o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"}
    for h in hpas:
        validate_strict(h)
        assert h["spec"]["scaleTargetRef"]["name"] in deployments


def test_targets_follow_the_spec_signals(example_fleet: Fleet) -> None:
    objs = target_objects(example_fleet, "beijing").objects()
    asr = find(objs, HPA, "bj-edge-02-asr")["spec"]
    assert (asr["minReplicas"], asr["maxReplicas"]) == (2, 7)
    metric = asr["metrics"][0]["external"]
    assert metric["metric"] == {
        "name": ADAPTER_SIGNALS["queue_depth"][0],
        "selector": {"matchLabels": {"node": "bj-edge-02", "service": "asr"}},
    }
    assert metric["target"] == {"type": "AverageValue", "averageValue": "2"}  # the API server's spelling of 2000m
    tts = find(objs, HPA, "bj-edge-02-tts")["spec"]["metrics"][0]["external"]
    # p95 held at 80 % of the 300 ms TTS KPI: 240 ms, the metric being in seconds.
    assert tts["target"] == {"type": "Value", "value": "240m"}
    assert asr["behavior"] == BEHAVIOR


def test_voice_behaviour_scales_up_at_once_and_down_slowly() -> None:
    up, down = BEHAVIOR["scaleUp"], BEHAVIOR["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0 and up["selectPolicy"] == "Max"
    assert down["stabilizationWindowSeconds"] >= 300  # longer than a session (165 s): no flapping between turns
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])


def test_cloud_models_scale_on_the_llm_stream(example_fleet: Fleet) -> None:
    objs = target_objects(example_fleet, "cloud").objects()
    for name, low, high in (("llm-qwen-72b", 2, 4), ("llm-qwen-14b", 4, 8)):
        spec = find(objs, HPA, name)["spec"]
        validate_strict(find(objs, HPA, name))
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        assert spec["metrics"][0]["external"]["metric"]["selector"] == {"matchLabels": {"service": "llm"}}


def test_adapter_serves_exactly_the_signals_in_use(example_fleet: Fleet) -> None:
    (chart,) = adapter_chart(example_fleet)
    rules = chart.values["rules"]
    assert rules["default"] is False
    assert sorted(r["name"]["as"] for r in rules["external"]) == sorted(n for n, _ in ADAPTER_SIGNALS.values())
    for rule in rules["external"]:
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and rule["resources"] == {"namespaced": False}
        assert rule["seriesQuery"].split("{")[0] in rule["metricsQuery"]


def test_no_autoscaling_no_hpa_and_no_adapter(example_fleet: Fleet) -> None:
    edge = {
        name: svc.model_copy(update={"autoscaling": None})
        for name, svc in example_fleet.regions["beijing"].edge_nodes[0].services.inference().items()
    }
    node = example_fleet.regions["beijing"].edge_nodes[0]
    services = node.services.model_copy(update=edge)
    plain_node = node.model_copy(update={"services": services})
    region = example_fleet.regions["beijing"].model_copy(update={"edge_nodes": [plain_node]})
    models = [m.model_copy(update={"autoscaling": None}) for m in example_fleet.cloud.llm_models]
    fleet = example_fleet.model_copy(
        update={
            "regions": {"beijing": region},
            "cloud": example_fleet.cloud.model_copy(update={"llm_models": models}),
        }
    )
    assert adapter_chart(fleet) == []
    assert [o for o in target_objects(fleet, "beijing").objects() if o["kind"] == HPA] == []


def test_adapter_queries_answer_one_number_from_a_real_prometheus(example_fleet: Fleet, sandbox: SandboxInfo) -> None:
    """What the adapter sends for an HPA's selector (its <<.LabelMatchers>>), asked of the sandbox's Prometheus."""
    box = sandbox
    (chart,) = adapter_chart(example_fleet)
    for rule in chart.values["rules"]["external"]:
        promql = rule["metricsQuery"].replace("<<.LabelMatchers>>", 'node="bj-edge-01",service="asr"')
        samples = wait_for_query(box.prometheus_url, promql, lambda s: len(s) == 1 and math.isfinite(s[0].value), 60)
        assert samples[0].value >= 0, rule["name"]["as"]
