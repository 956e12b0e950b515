"""Rendered alert files of the bundled example fleet, compared with reviewed golden copies.

Regenerate after an intended change with: XZCTL_UPDATE_GOLDEN=1 python -m pytest tests/alerts/test_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xzctl.alerts import alert_bundle
from xzctl.spec import Fleet

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["rules.yml", "prometheusrule.yaml", "alertmanager.yml", "dashboard.json"])
def test_rendered_file_matches_golden(example_fleet: Fleet, name: str) -> None:
    rendered = alert_bundle(example_fleet)[name]
    path = GOLDEN / name
    if os.environ.get("XZCTL_UPDATE_GOLDEN"):
        path.write_text(rendered, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == rendered, f"regenerate with XZCTL_UPDATE_GOLDEN=1 if intended: {path}"
