"""Alertmanager configuration: route by severity, then region; inhibit a down node's other alerts.

Receivers are webhooks named `<severity>-<region>` (plus a fleet-wide fallback per severity) on an
alert router the operator runs; `webhook_base_url` points at it. Critical alerts page, warnings go
to tickets, both grouped per region so a region-wide problem is one notification, not a thousand.
"""

from __future__ import annotations

from typing import Any

from xzctl.alerts.rules import NODE_ALERTS
from xzctl.metrics import contract as c
from xzctl.spec.models import Fleet

DEFAULT_WEBHOOK_BASE = "http://xiaozhi-alert-router.xiaozhi-cloud.svc:8080/hooks"
SEVERITIES = {"critical": "pager", "warning": "tickets"}
FALLBACK_RECEIVER = "tickets-fleet"


def receiver_name(severity: str, region: str | None) -> str:
    return f"{SEVERITIES[severity]}-{region or 'fleet'}"


def alertmanager_config(fleet: Fleet, *, webhook_base_url: str = DEFAULT_WEBHOOK_BASE) -> dict[str, Any]:
    base = webhook_base_url.rstrip("/")
    names = [receiver_name(sev, region) for sev in SEVERITIES for region in (*sorted(fleet.regions), None)]
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
        "receivers": [
            {"name": name, "webhook_configs": [{"url": f"{base}/{name}", "send_resolved": True}]} for name in names
        ],
    }
