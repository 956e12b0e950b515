"""upgrade.yml moves the K3s pin and nothing else; reset.yml removes what site.yml wrote, idempotently."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.playbook_runs import FILES_ONLY, Run, loopback_inventory, run_playbook
from tests.fixtures.sshd import SshServer

# The module fixture's playbook runs count against the time limit of its first test; the suite runs them beside
# other xdist workers, so they get the headroom of their own 600 s ansible-runner timeout.
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(900)]

HOSTS = ["sh-edge-01", "sh-edge-02"]
NEW_PIN = {"k3s_version": "v1.31.5+k3s1"}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lifecycle-roots")


@pytest.fixture(scope="module")
def inventory(sshd: SshServer, roots: Path) -> dict[str, object]:
    inventory = loopback_inventory("shanghai", sshd, roots)
    agents = inventory["all"]["children"]["k3s_cluster"]["children"]["agent"]["hosts"]
    agents["sh-edge-02"]["xzctl_gpu_count"] = 0  # a CPU-only edge node
    installed = run_playbook("site.yml", inventory, sshd, extravars=FILES_ONLY)
    assert installed.rc == 0, installed.output
    return inventory


@pytest.fixture(scope="module")
def upgraded(sshd: SshServer, inventory: dict[str, object]) -> Run:
    return run_playbook("upgrade.yml", inventory, sshd, extravars=FILES_ONLY | NEW_PIN)


@pytest.fixture(scope="module")
def resets(sshd: SshServer, inventory: dict[str, object], upgraded: Run) -> tuple[Run, Run]:
    assert upgraded.rc == 0, upgraded.output  # reset must undo an upgraded node, not a half-upgraded one
    first = run_playbook("reset.yml", inventory, sshd, extravars=FILES_ONLY)
    return first, run_playbook("reset.yml", inventory, sshd, extravars=FILES_ONLY)


@pytest.mark.usefixtures("inventory")
def test_a_node_without_gpus_gets_no_gpu_setup(roots: Path) -> None:
    config = yaml.safe_load((roots / "sh-edge-02" / "etc/rancher/k3s/config.yaml").read_text())
    assert config["node-label"] == ["xiaozhi.io/edge-node=sh-edge-02", "xiaozhi.io/region=shanghai"]
    assert not (roots / "sh-edge-02" / "etc/apt/sources.list.d/nvidia.sources").exists()
    server = yaml.safe_load((roots / "sh-edge-01" / "etc/rancher/k3s/config.yaml").read_text())
    assert "nvidia.com/gpu.present=true" in server["node-label"]


def test_upgrade_changes_only_the_k3s_unit(upgraded: Run, roots: Path) -> None:
    assert upgraded.rc == 0, upgraded.output
    for host in HOSTS:
        assert upgraded.changed_tasks(host) == ["Write the K3s systemd unit"]
        # the restart is due, and left to systemd only where services are managed
        assert upgraded.statuses(host, "Restart K3s") == ["skipped"]
    unit = (roots / "sh-edge-02" / "etc/systemd/system/k3s-agent.service").read_text()
    assert "Lightweight Kubernetes (agent, v1.31.5+k3s1)" in unit


def test_reset_removes_every_file_and_is_idempotent(resets: tuple[Run, Run], roots: Path) -> None:
    first, second = resets
    assert first.rc == 0, first.output
    assert second.rc == 0, second.output
    for host in HOSTS:
        assert "Remove what site.yml installed" in first.changed_tasks(host)
        assert second.changed_tasks(host) == []
        assert [p for p in (roots / host).rglob("*") if p.is_file()] == []
