"""Server processes per edge node: the default from the node's cores, a count given in the spec, and the warning
when there are more processes than cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.spec import bundled_example_path, load_fleet
from xzctl.spec.edge import default_server_processes

SMALL_PODS = {"cpu_request": "100m", "cpu_limit": "1", "memory_request": "256Mi", "memory_limit": "1Gi"}


@pytest.mark.parametrize(
    ("cores", "processes"),
    [(1, 1), (2, 1), (4, 1), (7, 1), (8, 2), (16, 4), (32, 8), (64, 16), (256, 16)],
)
def test_the_default_is_one_process_per_four_cores_within_bounds(cores: int, processes: int) -> None:
    assert default_server_processes(cores) == processes


def _example_with(tmp_path: Path, cores: int, server: dict[str, Any]) -> Path:
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    profile = doc["node_profiles"]["edge-standard"]
    profile["capacity"]["cpu_cores"] = cores
    profile["services"]["xiaozhi_server"].update(server)
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return spec


@pytest.mark.parametrize(
    ("cores", "server", "runs", "warned"),
    [
        (16, {}, 4, False),  # the example: derived from its 16 cores
        (32, {}, 8, False),
        (16, {"processes": 2}, 2, False),  # the spec's count wins
        (16, {"processes": 1}, 1, False),
        (16, {"processes": 16, "resources": SMALL_PODS}, 16, False),  # one per core: no warning
        (14, {"processes": 16, "resources": SMALL_PODS}, 16, True),  # more than cores: said, not refused
    ],
)
def test_the_node_runs_the_given_count_or_the_default(
    tmp_path: Path, cores: int, server: dict[str, Any], runs: int, warned: bool
) -> None:
    loaded = load_fleet(_example_with(tmp_path, cores, server))
    assert {n.server_processes for n in loaded.fleet.edge_nodes()} == {runs}
    said = [w for w in loaded.warnings if "xiaozhi server processes on" in w.message]
    assert bool(said) is warned
    if warned:
        assert said[0].path.endswith("services.xiaozhi_server.processes") and "at most one per core" in said[0].fix
