"""Spec values reach Ansible as data: a lookup in any host variable is never evaluated on the controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl.bootstrap import HostStatus, bootstrap_region
from xzctl.spec import Fleet


def _hostile(fleet: Fleet, marks: Path) -> Fleet:
    # model_copy skips validation (fleet validate refuses these values): the inventory alone must hold.
    region = fleet.regions["beijing"]
    node = region.edge_nodes[0]
    pipe = "{{{{ lookup('pipe', 'touch {}') }}}}"
    host = node.host.model_copy(
        update={
            "address": pipe.format(marks / "address") + "127.0.0.1",
            "ssh_user": pipe.format(marks / "user") + "root",
            "ssh_key": pipe.format(marks / "key"),
        }
    )
    gpu = node.capacity.gpu.model_copy(update={"model": pipe.format(marks / "gpu")})
    node = node.model_copy(update={"host": host, "capacity": node.capacity.model_copy(update={"gpu": gpu})})
    edge_nodes = [node, *region.edge_nodes[1:]]
    return fleet.model_copy(
        update={"regions": {**fleet.regions, "beijing": region.model_copy(update={"edge_nodes": edge_nodes})}}
    )


@pytest.mark.ssh
@pytest.mark.usefixtures("ansible_env")
def test_lookups_in_spec_values_never_run(loopback_fleet: Fleet, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    result = bootstrap_region(_hostile(loopback_fleet, marks), "beijing", check=True, limit=["bj-edge-01"])
    assert list(marks.iterdir()) == []  # no lookup ran
    (host,) = result.hosts
    # The address is taken literally: not a reachable host, and the literal text is what ssh was given.
    assert host.status is HostStatus.UNREACHABLE
    assert "lookup" in host.message
