"""Alert rules, Alertmanager config and dashboards generated from the spec and the metrics contract."""

from __future__ import annotations

import json

import yaml

from xzctl.alerts.alertmanager import alertmanager_config
from xzctl.alerts.dashboard import dashboard
from xzctl.alerts.rules import ALERT_NAMES, alert_names, prometheus_rule, rule_groups, rules_file
from xzctl.spec.models import Fleet

__all__ = [
    "ALERT_NAMES",
    "alert_bundle",
    "alert_names",
    "alertmanager_config",
    "dashboard",
    "prometheus_rule",
    "rule_groups",
    "rules_file",
]


def _yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=1000)


def alert_bundle(fleet: Fleet, *, namespace: str = "monitoring") -> dict[str, str]:
    """File name -> text of everything `xzctl render alerts` writes."""
    return {
        "rules.yml": _yaml(rules_file(fleet)),
        "prometheusrule.yaml": _yaml(prometheus_rule(fleet, namespace)),
        "alertmanager.yml": _yaml(alertmanager_config(fleet)),
        "dashboard.json": json.dumps(dashboard(fleet), indent=2) + "\n",
    }
