"""What site.yml writes on the edge nodes, read from the session's one bootstrap of beijing over SSH.

bj-edge-01 is the K3s server with 2 GPUs, bj-edge-03 an agent without GPUs (tests/fixtures/bootstrap.py). That the
runs succeed and the second changes nothing is asserted in tests/bootstrap/test_run.py.
"""

from __future__ import annotations

import stat

import pytest
import yaml

from tests.fixtures.bootstrap import SITE_GROUP, TOKEN, SiteRuns

# The session's playbook runs count against the time limit of the first test on them.
pytestmark = [pytest.mark.ssh, pytest.mark.xdist_group(SITE_GROUP), pytest.mark.timeout(900)]


def test_server_config_labels_and_token(beijing_site: SiteRuns) -> None:
    etc = beijing_site.roots / "bj-edge-01" / "etc" / "rancher" / "k3s"
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
    unit = (beijing_site.roots / "bj-edge-01" / "etc" / "systemd" / "system" / "k3s.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s server" in unit
    assert "LimitNOFILE=1048576" in unit


def test_the_agent_joins_the_server(beijing_site: SiteRuns) -> None:
    root = beijing_site.roots / "bj-edge-03"
    config = yaml.safe_load((root / "etc" / "rancher" / "k3s" / "config.yaml").read_text())
    assert config["server"] == "https://127.0.0.1:6443"
    unit = (root / "etc" / "systemd" / "system" / "k3s-agent.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s agent" in unit
    # only the server holds the cluster-wide manifests
    assert not (root / "var" / "lib" / "rancher").exists()


def test_a_node_without_gpus_gets_no_gpu_setup(beijing_site: SiteRuns) -> None:
    agent = yaml.safe_load((beijing_site.roots / "bj-edge-03" / "etc/rancher/k3s/config.yaml").read_text())
    assert agent["node-label"] == ["xiaozhi.io/edge-node=bj-edge-03", "xiaozhi.io/region=beijing"]
    assert not (beijing_site.roots / "bj-edge-03" / "etc/apt/sources.list.d/nvidia.sources").exists()
    apt = (beijing_site.roots / "bj-edge-01" / "etc/apt/sources.list.d/nvidia.sources").read_text()
    assert "developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/" in apt
    assert beijing_site.first.statuses("bj-edge-03", "Write the NVIDIA apt sources") == ["skipped"]


def test_device_plugin_time_slicing_sized_from_the_spec(beijing_site: SiteRuns) -> None:
    manifest = (
        beijing_site.roots / "bj-edge-01" / "var/lib/rancher/k3s/server/manifests/xiaozhi-nvidia-device-plugin.yaml"
    )
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest.read_text())}
    assert set(docs) == {"RuntimeClass", "ConfigMap", "HelmChart"}
    sharing = yaml.safe_load(docs["ConfigMap"]["data"]["time-slicing-8"])
    assert sharing["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 8}]
    values = yaml.safe_load(docs["HelmChart"]["spec"]["valuesContent"])
    assert values["config"] == {"name": "nvidia-device-plugin-config", "default": "time-slicing-8"}


def test_prereq_files(beijing_site: SiteRuns) -> None:
    root = beijing_site.roots / "bj-edge-03"
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
    mirrors = yaml.safe_load((root / "etc/rancher/k3s/registries.yaml").read_text())
    assert mirrors == {"mirrors": {"docker.io": {"endpoint": ["https://mirror.example.cn"]}}}
