"""Sandbox scenarios shared by the checks and CLI tests: pinned device counts, a fleet with relaxed latency KPIs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.fixtures.sandbox import wait_for_query
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import Fleet, bundled_example_path, load_fleet

WINDOW_SECONDS = 5
ALL_95 = {"beijing": 0.95, "shanghai": 0.95, "guangzhou": 0.95}


def relaxed_fleet(tmp_path: Path) -> tuple[Path, Fleet]:
    """The bundled example with every latency KPI x10: max_devices becomes the first limit."""
    doc = yaml.safe_load(bundled_example_path().read_text())
    doc["kpis"]["latency"] = {k: v * 10 for k, v in doc["kpis"]["latency"].items()}
    path = tmp_path / "relaxed.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, load_fleet(path).fleet


def pinned_sandbox(
    factory: Callable[..., SandboxInfo], utilization: dict[str, float], fleet_path: Path | None = None
) -> SandboxInfo:
    """A sandbox whose regions run at the given share of max_devices, with a full rate window of that load."""
    box = factory(fleet_path)
    sim = SimulatorClient(box.simulator_url)
    for region, share in utilization.items():
        sim.control({"action": "set_devices", "region": region, "utilization": share})
    expected = sum(round(share * 150) * {"beijing": 3}.get(r, 2) for r, share in utilization.items())
    wait_for_query(box.prometheus_url, 'count(up{job="xiaozhi-edge"} == 1)', lambda s: bool(s) and s[0].value == 7)
    wait_for_query(box.prometheus_url, "sum(xiaozhi_active_devices)", lambda s: bool(s) and s[0].value == expected)
    time.sleep(WINDOW_SECONDS + 1)  # rates over the window now see only the pinned load
    return box
