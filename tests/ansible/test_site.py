"""site.yml, upgrade.yml and reset.yml over SSH: real runs writing configuration files into a test root."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from tests.fixtures.playbook_runs import FILES_ONLY, TOKEN, Run, loopback_inventory, run_playbook
from tests.fixtures.sshd import SshServer

# The module fixture's playbook runs count against the time limit of its first test; the suite runs them beside
# other xdist workers, so they get the headroom of their own 600 s ansible-runner timeout.
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(900)]

HOSTS = ["bj-edge-01", "bj-edge-02", "bj-edge-03"]
MIRRORS = {"registry_mirror_mirrors": {"docker.io": ["https://mirror.example.cn"]}}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roots")


@pytest.fixture(scope="module")
def site_runs(sshd: SshServer, roots: Path) -> tuple[Run, Run]:
    """site.yml twice on the beijing sample inventory (3 hosts, one server)."""
    inventory = loopback_inventory("beijing", sshd, roots)
    first = run_playbook("site.yml", inventory, sshd, extravars=FILES_ONLY | MIRRORS)
    second = run_playbook("site.yml", inventory, sshd, extravars=FILES_ONLY | MIRRORS)
    return first, second


def test_site_succeeds_on_every_host_and_changes_files(site_runs: tuple[Run, Run]) -> None:
    first = site_runs[0]
    assert first.rc == 0, first.output
    assert first.totals("failures") == {}
    assert first.totals("dark") == {}
    changed = first.totals("changed")
    assert sorted(changed) == HOSTS
    assert all(n > 5 for n in changed.values())


def test_second_run_changes_nothing(site_runs: tuple[Run, Run]) -> None:
    second = site_runs[1]
    assert second.rc == 0, second.output
    assert second.totals("changed") == {}
    assert sorted(second.totals("ok")) == HOSTS


@pytest.mark.usefixtures("site_runs")
def test_server_config_labels_and_token(roots: Path) -> None:
    etc = roots / "bj-edge-01" / "etc" / "rancher" / "k3s"
    config = yaml.safe_load((etc / "config.yaml").read_text())
    assert config["node-name"] == "bj-edge-01"
    assert config["token-file"] == "/etc/rancher/k3s/token"
    assert config["tls-san"] == ["127.0.0.1"]
    assert "xiaozhi.io/region=beijing" in config["node-label"]
    assert "xiaozhi.io/edge-node=bj-edge-01" in config["node-label"]
    assert "nvidia.com/device-plugin.config=time-slicing-8" in config["node-label"]
    assert "xiaozhi.io/gpu-model=RTX-4090" in config["node-label"]
    assert "server" not in config  # the server does not join anyone
    token = etc / "token"
    assert token.read_text() == TOKEN + "\n"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    unit = (roots / "bj-edge-01" / "etc" / "systemd" / "system" / "k3s.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s server" in unit
    assert "LimitNOFILE=1048576" in unit


@pytest.mark.usefixtures("site_runs")
def test_agents_join_the_server(roots: Path) -> None:
    for host in HOSTS[1:]:
        config = yaml.safe_load((roots / host / "etc" / "rancher" / "k3s" / "config.yaml").read_text())
        assert config["server"] == "https://127.0.0.1:6443"
        assert f"xiaozhi.io/edge-node={host}" in config["node-label"]
        unit = (roots / host / "etc" / "systemd" / "system" / "k3s-agent.service").read_text()
        assert "ExecStart=/usr/local/bin/k3s agent" in unit
        # only the server holds the cluster-wide manifests
        assert not (roots / host / "var" / "lib" / "rancher").exists()


@pytest.mark.usefixtures("site_runs")
def test_device_plugin_time_slicing_sized_from_the_spec(roots: Path) -> None:
    manifest = roots / "bj-edge-01" / "var/lib/rancher/k3s/server/manifests/xiaozhi-nvidia-device-plugin.yaml"
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest.read_text())}
    assert set(docs) == {"RuntimeClass", "ConfigMap", "HelmChart"}
    sharing = yaml.safe_load(docs["ConfigMap"]["data"]["time-slicing-8"])
    assert sharing["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 8}]
    values = yaml.safe_load(docs["HelmChart"]["spec"]["valuesContent"])
    assert values["config"] == {"name": "nvidia-device-plugin-config", "default": "time-slicing-8"}


@pytest.mark.usefixtures("site_runs")
def test_prereq_files(roots: Path) -> None:
    root = roots / "bj-edge-02"
    sysctl = dict(
        line.split(" = ", 1)
        for line in (root / "etc/sysctl.d/90-xiaozhi-edge.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert sysctl["net.core.somaxconn"] == "65535"
    assert sysctl["net.ipv4.ip_local_port_range"] == "1024 65535"
    assert sysctl["net.ipv4.ip_forward"] == "1"
    modules = (root / "etc/modules-load.d/90-xiaozhi-edge.conf").read_text().split()
    assert {"br_netfilter", "overlay"} <= set(modules)
    sources = (root / "etc/chrony/sources.d/xiaozhi-edge.sources").read_text()
    assert "server ntp.aliyun.com iburst" in sources
    apt = (root / "etc/apt/sources.list.d/nvidia.sources").read_text()
    assert "developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/" in apt
    mirrors = yaml.safe_load((root / "etc/rancher/k3s/registries.yaml").read_text())
    assert mirrors == {"mirrors": {"docker.io": {"endpoint": ["https://mirror.example.cn"]}}}
