"""Spec text in Prometheus alert annotations is a literal: promtool expands it back to exactly itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.alerts import rules_file
from xzctl.spec.models import Fleet

pytestmark = pytest.mark.live
NODE = {"job": "xiaozhi-edge", "instance": "bj-edge-01", "region": "beijing", "node": "bj-edge-01"}
SERIES = "up{" + ",".join(f'{k}="{v}"' for k, v in NODE.items()) + "}"
# What the issue saw break the rules or run as a template, and the characters a Go string must escape.
HOSTILE_URLS = [
    "https://runbooks.example/{{ .Broken",
    'https://runbooks.example/{{ with query "up" }}{{ . }}{{ end }}',
    "https://runbooks.example/}}{{",
    'https://runbooks.example/"quoted"\\back{slash}',
    "https://runbooks.example/{{`raw`}}\n\u2028{{/* c */}}",
    "https://runbooks.example/plain",
]


def _rule(fleet: Fleet, url: str, index: int) -> dict[str, Any]:
    hostile = fleet.model_copy(update={"alerts": fleet.alerts.model_copy(update={"runbook_base_url": url})})
    (rule,) = [r for g in rules_file(hostile)["groups"] for r in g["rules"] if r.get("alert") == "EdgeNodeDown"]
    # Only the annotation under test; summary/description template $labels and are tested elsewhere.
    return {**rule, "alert": f"Case{index}", "annotations": {"runbook_url": rule["annotations"]["runbook_url"]}}


def test_hostile_runbook_urls_expand_to_themselves(example_fleet: Fleet, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    rules = [_rule(example_fleet, url, i) for i, url in enumerate(HOSTILE_URLS)]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "hostile", "rules": rules}]}))
    alerts = [
        {
            "alertname": f"Case{i}",
            "exp_alerts": [
                {
                    "exp_labels": {"region": "beijing", "node": "bj-edge-01", "severity": "critical"},
                    "exp_annotations": {"runbook_url": f"{url}/EdgeNodeDown.md"},
                }
            ],
        }
        for i, url in enumerate(HOSTILE_URLS)
    ]
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": SERIES, "values": "0x10"}],
                "alert_rule_test": [{"eval_time": "5m", **a} for a in alerts],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    checked = subprocess.run(
        [promtool, "test", "rules", "test.yml"], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
