"""Rules come from the spec (thresholds, KPIs, max_devices) and carry severity, summary and a runbook URL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.alerts import ALERT_NAMES, alert_names, prometheus_rule, rule_groups, rules_file
from xzctl.alerts.rules import BURN_WINDOWS, latency_slo_threshold
from xzctl.spec import Fleet
from xzctl.spec.generate import generate_fleet_document
from xzctl.spec.load import build_fleet


def _alerts(fleet: Fleet, name: str) -> list[dict[str, Any]]:
    return [r for g in rule_groups(fleet) for r in g["rules"] if r.get("alert") == name]


def test_every_alert_has_severity_summary_description_and_its_runbook(example_fleet: Fleet) -> None:
    assert sorted(alert_names(example_fleet)) == sorted(ALERT_NAMES)
    base = example_fleet.alerts.runbook_base_url
    for group in rule_groups(example_fleet):
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("critical", "warning")
                assert rule["annotations"]["summary"] and rule["annotations"]["description"]
                assert rule["annotations"]["runbook_url"] == f"{base}/{rule['alert']}.md"


def test_thresholds_come_from_the_alerts_section_else_the_kpis(example_fleet: Fleet) -> None:
    (high,) = _alerts(example_fleet, "HighLatency")
    assert high["expr"].endswith("> 3") and high["for"] == "2m"
    (failure,) = _alerts(example_fleet, "ModelInferenceFailure")
    assert failure["expr"].endswith("> 0.01") and failure["for"] == "1m"
    (cache,) = _alerts(example_fleet, "CacheHitRateLow")
    assert cache["expr"].endswith("< 0.8") and cache["for"] == "10m"
    (queue,) = _alerts(example_fleet, "QueueBacklog")
    assert queue["expr"].endswith("> 100")
    # Without an alerts section the KPIs decide: 0.1% errors, 85% cache hits, 3000 ms end to end.
    derived = example_fleet.model_copy(update={"alerts": type(example_fleet.alerts)()})
    assert _alerts(derived, "ModelInferenceFailure")[0]["expr"].endswith("> 0.001")
    assert _alerts(derived, "CacheHitRateLow")[0]["expr"].endswith("< 0.85")
    assert _alerts(derived, "HighLatency")[0]["expr"].endswith("> 3")


def test_device_overload_uses_each_nodes_max_devices_with_one_rule_per_capacity() -> None:
    doc = generate_fleet_document(20, devices_per_node=100)
    big = doc["node_profiles"]["edge-standard"]
    doc["node_profiles"]["edge-large"] = {**big, "capacity": {**big["capacity"], "max_devices": 300}}
    first_region = next(iter(doc["regions"].values()))
    first_region["edge_nodes"][0]["profile"] = "edge-large"
    fleet = build_fleet(doc, {}, "generated")
    rules = _alerts(fleet, "DeviceOverload")
    assert [r["expr"].rsplit(" > ", 1)[1] for r in rules] == ["150", "300"]
    large = first_region["edge_nodes"][0]["id"]
    assert large in rules[1]["expr"] and large not in rules[0]["expr"]


def test_burn_rate_alerts_use_the_four_window_pairs(example_fleet: Fleet) -> None:
    burns = _alerts(example_fleet, "AvailabilityBudgetBurn")
    assert [(r["labels"]["window"], r["labels"]["severity"]) for r in burns] == [
        ("1h/5m", "critical"),
        ("6h/30m", "critical"),
        ("1d/2h", "warning"),
        ("3d/6h", "warning"),
    ]
    assert [w.factor for w in BURN_WINDOWS] == [14.4, 6.0, 3.0, 1.0]
    assert "> 0.0144 and" in burns[0]["expr"]  # 14.4 x the 0.1% budget of 99.9% uptime
    latency = _alerts(example_fleet, "LatencyBudgetBurn")
    assert "> 0.72 and" in latency[0]["expr"]  # 14.4 x 5% slow requests
    assert latency_slo_threshold(example_fleet) == 3.0


def test_prometheusrule_object_holds_the_same_groups(example_fleet: Fleet) -> None:
    obj = prometheus_rule(example_fleet, "monitoring")
    assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
    assert obj["metadata"]["namespace"] == "monitoring"
    assert obj["spec"]["groups"] == rules_file(example_fleet)["groups"]


@pytest.mark.live
def test_promtool_check_rules_accepts_the_rule_file(example_fleet: Fleet, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules_file(example_fleet), sort_keys=False))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    count = sum(len(g["rules"]) for g in rules_file(example_fleet)["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout
