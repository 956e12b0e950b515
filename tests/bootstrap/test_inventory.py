"""The inventory built from the fleet spec; the sample inventories in ansible/inventory/ are its golden files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from xzctl.bootstrap.inventory import build_inventory, check_limit, host_vars, inventory_yaml
from xzctl.errors import NotFoundError
from xzctl.spec import Fleet
from xzctl.spec.sinks import read_ansible_yaml

SAMPLES = Path(__file__).resolve().parents[2] / "ansible" / "inventory"


@pytest.mark.parametrize("region", ["beijing", "shanghai", "guangzhou"])
def test_sample_inventories_are_what_xzctl_builds(example_fleet: Fleet, region: str) -> None:
    golden = SAMPLES / f"{region}.yml"
    text = inventory_yaml(example_fleet, region)
    if os.environ.get("XZCTL_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert golden.read_text(encoding="utf-8") == text


def test_first_node_is_the_server_and_the_others_agents(example_fleet: Fleet) -> None:
    groups = build_inventory(example_fleet, "beijing")["all"]["children"]["k3s_cluster"]["children"]
    assert list(groups["server"]["hosts"]) == ["bj-edge-01"]
    assert list(groups["agent"]["hosts"]) == ["bj-edge-02", "bj-edge-03"]
    region_vars = build_inventory(example_fleet, "shanghai")["all"]["vars"]
    assert region_vars == {"xzctl_fleet": "xiaozhi-1000", "xzctl_region": "shanghai"}


def test_host_vars_come_from_the_spec(example_fleet: Fleet) -> None:
    node = example_fleet.node("gz-edge-02")
    assert host_vars(node) == {
        "ansible_host": "gz-edge-02.mgmt.xiaozhi.example",
        "ansible_user": "xzops",
        "ansible_port": 22,
        "ansible_become": True,
        "xzctl_edge_node": "gz-edge-02",
        "xzctl_gpu_count": 2,
        "xzctl_gpu_model": "RTX 4090",
        "xzctl_gpu_time_slicing_replicas": 8,
    }


def test_root_login_with_a_key_needs_no_become(example_fleet: Fleet) -> None:
    node = example_fleet.node("bj-edge-01")
    node = node.model_copy(
        update={"host": node.host.model_copy(update={"ssh_user": "root", "ssh_port": 2222, "ssh_key": "~/.ssh/edge"})}
    )
    hv = host_vars(node)
    assert "ansible_become" not in hv
    assert (hv["ansible_port"], hv["ansible_ssh_private_key_file"]) == (2222, "~/.ssh/edge")


def test_the_join_token_is_never_in_the_inventory(example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K3S_TOKEN", "secret-value-that-must-not-leak")
    text = inventory_yaml(example_fleet, "beijing")
    assert "secret-value-that-must-not-leak" not in text
    assert "token" not in json.dumps(read_ansible_yaml(text))  # no token variable either, only the header says why


def test_unknown_region_and_node_are_refused(example_fleet: Fleet) -> None:
    with pytest.raises(NotFoundError) as region:
        build_inventory(example_fleet, "tianjin")
    assert region.value.one_line() == "no region 'tianjin' in the fleet spec (regions: beijing, guangzhou, shanghai)"
    with pytest.raises(NotFoundError) as node:
        check_limit(example_fleet, "beijing", ["bj-edge-01", "sh-edge-01"])
    assert node.value.one_line() == (
        "no edge node 'sh-edge-01' in region 'beijing' (nodes: bj-edge-01, bj-edge-02, bj-edge-03)"
    )
    check_limit(example_fleet, "beijing", ["bj-edge-02"])  # a node of the region is fine
