"""alertmanager.yml passes amtool and routes by severity, then region."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from xzctl.alerts import alertmanager_config
from xzctl.alerts.rules import NODE_ALERTS


@pytest.fixture
def config_file(example_fleet, tmp_path):
    if shutil.which("amtool") is None:
        pytest.skip("amtool not installed (apt-get install prometheus-alertmanager)")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(example_fleet), sort_keys=False))
    return path


def _route(config_file, *labels: str) -> str:
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config_file}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


@pytest.mark.live
def test_amtool_check_config_accepts_it(config_file) -> None:
    result = subprocess.run(["amtool", "check-config", str(config_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "2 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("alertname=EdgeNodeDown", "severity=critical", "region=beijing", "node=bj-edge-01"), "pager-beijing"),
        (("alertname=QueueBacklog", "severity=warning", "region=guangzhou"), "tickets-guangzhou"),
        (("alertname=AvailabilityBudgetBurn", "severity=critical", "region=atlantis"), "pager-fleet"),
        (("alertname=Unknown",), "tickets-fleet"),
    ],
)
@pytest.mark.live
def test_routes_by_severity_then_region(config_file, labels, receiver) -> None:
    assert _route(config_file, *labels) == receiver


def test_a_down_node_inhibits_its_other_alerts(example_fleet) -> None:
    (node_down, _) = alertmanager_config(example_fleet)["inhibit_rules"]
    assert node_down["source_matchers"] == ['alertname="EdgeNodeDown"']
    assert node_down["equal"] == ["region", "node"]
    assert node_down["target_matchers"] == [f'alertname=~"{"|".join(NODE_ALERTS)}"']
    assert "EdgeNodeDown" not in NODE_ALERTS
