"""alertmanager.yml passes amtool and routes by severity, then region."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.alerts import alertmanager_config
from xzctl.alerts.alertmanager import receiver_secrets, unrouted_severities
from xzctl.alerts.rules import NODE_ALERTS
from xzctl.spec import Fleet


@pytest.fixture
def config_file(example_fleet: Fleet, tmp_path: Path) -> Path:
    if shutil.which("amtool") is None:
        pytest.skip("amtool not installed (apt-get install prometheus-alertmanager)")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(alertmanager_config(example_fleet), sort_keys=False))
    return path


def _route(config_file: Path, *labels: str) -> str:
    result = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config_file}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip()


@pytest.mark.live
def test_amtool_check_config_accepts_it(config_file: Path) -> None:
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
def test_routes_by_severity_then_region(config_file: Path, labels: tuple[str, ...], receiver: str) -> None:
    assert _route(config_file, *labels) == receiver


def test_a_down_node_inhibits_its_other_alerts(example_fleet: Fleet) -> None:
    (node_down, _) = alertmanager_config(example_fleet)["inhibit_rules"]
    assert node_down["source_matchers"] == ['alertname="EdgeNodeDown"']
    assert node_down["equal"] == ["region", "node"]
    assert node_down["target_matchers"] == [f'alertname=~"{"|".join(NODE_ALERTS)}"']
    assert "EdgeNodeDown" not in NODE_ALERTS


def _with_receivers(fleet: Fleet, receivers: dict[str, Any]) -> Fleet:
    from xzctl.spec.models import AlertReceivers

    routed = fleet.alerts.model_copy(update={"receivers": AlertReceivers.model_validate(receivers)})
    return fleet.model_copy(update={"alerts": routed})


SLACK = {"slack": {"api_url": {"env": "SLACK_URL"}, "channel": "#pager"}}
WEBHOOK = {"webhook": "https://oncall.xiaozhi.example/hooks/xiaozhi"}
DINGTALK = {"dingtalk": {"bridge_url": "http://bridge:8060/dingtalk/ops", "robot_url": {"env": "DING"}}}
EMAIL = {
    "email": {
        "to": "ops@xiaozhi.example",
        "from": "am@xiaozhi.example",
        "smarthost": "smtp.xiaozhi.example:587",
        "auth_username": "am",
        "auth_password": {"pulumi_secret": "smtpPassword"},
    }
}


@pytest.mark.parametrize(
    ("receiver", "configs"),
    [
        (WEBHOOK, {"webhook_configs": [{"url": WEBHOOK["webhook"], "send_resolved": True}]}),
        (
            SLACK,
            {
                "slack_configs": [
                    {
                        "api_url_file": "/etc/alertmanager/secrets/xzctl-alert-receivers/slack-critical-0",
                        "send_resolved": True,
                        "channel": "#pager",
                    }
                ]
            },
        ),
        (DINGTALK, {"webhook_configs": [{"url": "http://bridge:8060/dingtalk/ops", "send_resolved": True}]}),
        (
            EMAIL,
            {
                "email_configs": [
                    {
                        "to": "ops@xiaozhi.example",
                        "from": "am@xiaozhi.example",
                        "smarthost": "smtp.xiaozhi.example:587",
                        "auth_username": "am",
                        "auth_password_file": "/etc/alertmanager/secrets/xzctl-alert-receivers/smtp-critical-0",
                        "send_resolved": True,
                    }
                ]
            },
        ),
    ],
)
def test_each_receiver_kind_becomes_its_alertmanager_config(
    example_fleet: Fleet, receiver: dict[str, Any], configs: dict[str, Any]
) -> None:
    fleet = _with_receivers(example_fleet, {"critical": [receiver]})
    by_name = {r["name"]: r for r in alertmanager_config(fleet)["receivers"]}
    assert {k: v for k, v in by_name["pager-beijing"].items() if k != "name"} == configs
    assert by_name["tickets-beijing"] == {"name": "tickets-beijing"}  # no warning receiver: nothing, said loudly
    assert unrouted_severities(fleet) == ["warning"]


def test_every_kind_passes_amtool_and_no_secret_is_in_the_config(
    example_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("amtool") is None:
        pytest.skip("amtool not installed (apt-get install prometheus-alertmanager)")
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.example/services/T0/B0/s3cr3t")
    fleet = _with_receivers(example_fleet, {"critical": [SLACK, WEBHOOK], "warning": [EMAIL, DINGTALK]})
    text = yaml.safe_dump(alertmanager_config(fleet), sort_keys=False)
    assert "s3cr3t" not in text and "smtpPassword" not in text
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(receiver_secrets(fleet)) == {"slack-critical-0", "smtp-warning-0", "robot-warning-1"}


def test_a_receiver_is_exactly_one_kind() -> None:
    from pydantic import ValidationError

    from xzctl.spec.models import Receiver

    with pytest.raises(ValidationError, match="exactly one of webhook, slack"):
        Receiver.model_validate({**WEBHOOK, **SLACK})
    with pytest.raises(ValidationError, match="literal secret is refused"):
        Receiver.model_validate({"slack": {"api_url": "https://hooks.slack.example/services/T0/B0/s3cr3t"}})


def test_the_example_routes_both_severities(example_fleet: Fleet) -> None:
    assert unrouted_severities(example_fleet) == []
    assert "xiaozhi-alert-router" not in yaml.safe_dump(alertmanager_config(example_fleet))
