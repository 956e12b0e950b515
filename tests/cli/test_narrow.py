"""Every read command at 80 columns: no node, region, image or ID is cut, no line is wider than the terminal.

Runs against a sandbox of a generated fleet (long IDs such as guangzhou-edge-0003), with the CLI's console at
80 columns as in an 80-column terminal (rich's console, as COLUMNS=80 sets it)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import pytest

from tests.fixtures.sandbox import wait_scraped_since
from xzctl.checks.window import MIN_SCRAPES
from xzctl.cli import _common, run
from xzctl.images import load_catalog
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.sandbox.ready import wait_scraped
from xzctl.spec import bundled_example_path, load_fleet

pytestmark = pytest.mark.live


def _whole(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def test_read_commands_at_80_columns(
    sandbox_factory: Callable[..., SandboxInfo], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_common.stdout, "width", 80)
    box = sandbox_factory(scale=9)
    fleet = load_fleet(box.fleet_path).fleet
    ids, regions = [n.id for n in fleet.edge_nodes()], list(fleet.regions)
    assert max(len(i) for i in ids) >= 19  # guangzhou-edge-0001: as long as generated IDs get
    state = ["--state-dir", str(box.state_dir)]
    example = ["--fleet", str(bundled_example_path())]
    catalog = load_catalog(None)
    images = sorted(catalog.images)
    asr = catalog.get("asr")
    commands: list[tuple[list[str], list[str]]] = [
        (["capacity", "report", *state, "--window", "5s"], ids + regions),
        (["check", "failover", *state, "--window", "5s"], regions),
        (["check", "all", "-o", "table", *state, "--window", "5s"], ids + regions),
        (["sandbox", "status", *state], ids + regions),
        (["fleet", "plan", *example], ["beijing", "shanghai", "guangzhou"]),
        (["images", "list"], images),
        (["images", "show", "asr"], [asr.pinned(r) for r in asr.releases]),
        (["images", "verify", *example], []),
        (["config", "get-contexts"], []),
    ]
    for _ in range(50):  # Prometheus adds the static targets on its first discovery tick
        run(["sandbox", "status", "-o", "json", *state])
        if len(json.loads(capsys.readouterr().out)["targets"]) == len(ids):
            break
        time.sleep(0.2)
    assert wait_scraped(box, MIN_SCRAPES, timeout=30)  # what `sandbox up` waits for: live verdicts, not warming up
    # Every region near its max: failovers fail, so `check failover` has rows to fit (a healthy fleet prints none).
    for region in regions:
        SimulatorClient(box.simulator_url).control({"action": "set_devices", "region": region, "utilization": 0.95})
    wait_scraped_since(box, time.time())
    for argv, names in commands:
        run(argv)
        out = capsys.readouterr().out
        assert "…" not in out, f"xzctl {' '.join(argv)} cut a cell:\n{out}"
        # Only a token that cannot be broken (a path, a pinned reference) may run past the edge.
        too_wide = [line for line in out.splitlines() if len(line) > 80 and max(map(len, line.split())) < 40]
        assert not too_wide, f"xzctl {' '.join(argv)} is wider than 80 columns:\n" + "\n".join(too_wide)
        missing = [name for name in names if not _whole(name, out)]
        assert not missing, f"xzctl {' '.join(argv)} does not show {missing} whole:\n{out}"
