"""Alertmanager configuration: route by severity, then region; inhibit a down node's other alerts.

Receivers are named `pager-<region>` / `tickets-<region>` (plus a fleet-wide fallback per severity); each
sends to what the spec's `alerts.receivers` names for its severity (critical pages, warning makes
tickets), grouped per region so a region-wide problem is one notification, not a thousand. Secrets
(Slack URLs, SMTP passwords) are files of the Kubernetes Secret `xzctl-alert-receivers`, which
kube-prometheus-stack mounts under /etc/alertmanager/secrets/ (`alertmanagerSpec.secrets`); the config
never holds them.
"""

from __future__ import annotations

from typing import Any

from xzctl.alerts.rules import NODE_ALERTS
from xzctl.metrics import contract as c
from xzctl.spec.models import Fleet, Receiver, SecretRef

SEVERITIES = {"critical": "pager", "warning": "tickets"}
FALLBACK_RECEIVER = "tickets-fleet"
SECRET_NAME = "xzctl-alert-receivers"
SECRET_DIR = f"/etc/alertmanager/secrets/{SECRET_NAME}"


def _receivers(fleet: Fleet, severity: str) -> list[Receiver]:
    return list(getattr(fleet.alerts.receivers, severity))


def unrouted_severities(fleet: Fleet) -> list[str]:
    """Severities whose alerts reach nobody: the spec names no receiver for them."""
    return [severity for severity in SEVERITIES if not _receivers(fleet, severity)]


def receiver_secrets(fleet: Fleet) -> dict[str, SecretRef]:
    """Key of the Secret `xzctl-alert-receivers` -> where its value comes from (Slack URLs, SMTP passwords);
    the bridges' robot URLs too, under `robot-...` keys, for the bridge that posts to WeChat Work or DingTalk."""
    secrets: dict[str, SecretRef] = {}
    for severity in SEVERITIES:
        for i, r in enumerate(_receivers(fleet, severity)):
            if r.slack is not None:
                secrets[f"slack-{severity}-{i}"] = r.slack.api_url
            if r.email is not None and r.email.auth_password is not None:
                secrets[f"smtp-{severity}-{i}"] = r.email.auth_password
            bridge = r.wechat_work or r.dingtalk
            if bridge is not None:
                secrets[f"robot-{severity}-{i}"] = bridge.robot_url
    return secrets


def _notifiers(fleet: Fleet, severity: str) -> dict[str, list[dict[str, Any]]]:
    """The *_configs of a receiver of this severity, from the spec's receivers."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(_receivers(fleet, severity)):
        bridge = r.wechat_work or r.dingtalk
        url = r.webhook or (bridge.bridge_url if bridge is not None else None)
        if url is not None:
            out.setdefault("webhook_configs", []).append({"url": url, "send_resolved": True})
        elif r.slack is not None:
            slack: dict[str, Any] = {"api_url_file": f"{SECRET_DIR}/slack-{severity}-{i}", "send_resolved": True}
            if r.slack.channel:
                slack["channel"] = r.slack.channel
            out.setdefault("slack_configs", []).append(slack)
        elif r.email is not None:
            mail: dict[str, Any] = {"to": r.email.to, "from": r.email.from_, "smarthost": r.email.smarthost}
            if r.email.auth_username:
                mail["auth_username"] = r.email.auth_username
            if r.email.auth_password is not None:
                mail["auth_password_file"] = f"{SECRET_DIR}/smtp-{severity}-{i}"
            out.setdefault("email_configs", []).append({**mail, "send_resolved": True})
    return out


def receiver_name(severity: str, region: str | None) -> str:
    return f"{SEVERITIES[severity]}-{region or 'fleet'}"


def alertmanager_config(fleet: Fleet) -> dict[str, Any]:
    names = [(sev, receiver_name(sev, region)) for sev in SEVERITIES for region in (*sorted(fleet.regions), None)]
    routes = [
        {
            "matchers": [f'severity="{severity}"'],
            "receiver": receiver_name(severity, None),
            "group_wait": "30s" if severity == "critical" else "2m",
            "repeat_interval": "1h" if severity == "critical" else "12h",
            "routes": [
                {"matchers": [f'{c.REGION}="{region}"'], "receiver": receiver_name(severity, region)}
                for region in sorted(fleet.regions)
            ],
        }
        for severity in SEVERITIES
    ]
    return {
        "route": {
            "receiver": FALLBACK_RECEIVER,
            "group_by": ["alertname", c.REGION],
            "group_wait": "1m",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": routes,
        },
        "inhibit_rules": [
            {
                # a node that is down explains every other alert of that node
                "source_matchers": ['alertname="EdgeNodeDown"'],
                "target_matchers": [f'alertname=~"{"|".join(NODE_ALERTS)}"'],
                "equal": [c.REGION, c.NODE],
            },
            {
                # a page already covers the ticket of the same alert in the same place
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", c.REGION, c.NODE],
            },
        ],
        # A severity without receivers keeps its receivers empty: Alertmanager drops those alerts, and
        # `render alerts` says so rather than sending them to an address nobody runs.
        "receivers": [{"name": name, **_notifiers(fleet, severity)} for severity, name in names],
    }
