"""The sandbox's Kubernetes without starting it: binaries, the objects it starts with, the pod follower's logic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from xzctl.cli import run
from xzctl.errors import BadInputError
from xzctl.manifests.edge import volume_claims
from xzctl.sandbox.cluster_objects import KWOK_ANNOTATION, SPARE_VOLUMES, fake_nodes, storage_objects
from xzctl.sandbox.follower import deploy_actions, modelled_services, running_images, tell
from xzctl.sandbox.kubernetes import KWOK_STAGES, find_binaries, write_pki
from xzctl.spec import Fleet


def test_missing_binaries_exit_4_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("prometheus", "promtool"):
        (bin_dir / tool).symlink_to(f"/usr/bin/{tool}")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("XZCTL_ENGINE_BIN", str(tmp_path / "no-engine"))
    state = tmp_path / "state"
    assert run(["--example", "sandbox", "up", "--kubernetes", "--state-dir", str(state)]) == 4
    err = capsys.readouterr().err
    assert "needs etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok" in err
    assert "scripts/engine.sh" in err
    assert not (state / "sandbox").exists()


def test_binaries_are_found_in_the_engine_cache_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = tmp_path / "engine-bin"
    engine.mkdir()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        (engine / name).write_text("#!/bin/sh\n", encoding="utf-8")
        (engine / name).chmod(0o755)
    monkeypatch.setenv("XZCTL_ENGINE_BIN", str(engine))
    assert find_binaries() == {name: str(engine / name) for name in find_binaries()}


def test_one_fake_node_per_edge_node_with_its_capacity(example_fleet: Fleet) -> None:
    nodes = {n["metadata"]["name"]: n for n in fake_nodes(example_fleet)}
    for edge in example_fleet.edge_nodes():
        node = nodes[edge.id]
        assert node["metadata"]["annotations"] == {KWOK_ANNOTATION: "fake"}
        assert node["metadata"]["labels"]["xiaozhi.io/edge-node"] == edge.id
        assert node["metadata"]["labels"]["xiaozhi.io/region"] == edge.region
        assert node["status"]["capacity"] == {
            "cpu": str(edge.capacity.cpu_cores),
            "memory": f"{edge.capacity.memory_gb}Gi",
            "pods": "250",
            "nvidia.com/gpu": str(edge.capacity.gpu.slots),
        }
        # Soft: keeps the cloud's unpinned pods off edge nodes in the shared sandbox cluster.
        assert node["spec"]["taints"] == [
            {"key": "xiaozhi.io/edge-node", "value": edge.id, "effect": "PreferNoSchedule"}
        ]
    servers = example_fleet.cloud.gpu_servers
    cloud = [n for name, n in nodes.items() if name.startswith("cloud-gpu-")]
    assert all(n["spec"]["taints"] == [] for n in cloud)
    assert len(cloud) == servers.count
    assert {n["status"]["capacity"]["nvidia.com/gpu"] for n in cloud} == {str(servers.gpus_per_server)}


def test_storage_is_a_default_class_with_volumes(tmp_path: Path, example_fleet: Fleet) -> None:
    cls, *volumes = storage_objects(example_fleet, tmp_path)
    assert cls["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert len(volumes) == volume_claims(example_fleet) + SPARE_VOLUMES
    assert len({v["spec"]["hostPath"]["path"] for v in volumes}) == len(volumes)
    assert {v["spec"]["storageClassName"] for v in volumes} == {cls["metadata"]["name"]}


def test_kwok_stages_cover_nodes_pods_and_ingresses() -> None:
    from importlib import resources

    docs = list(yaml.safe_load_all(resources.files("xzctl").joinpath(KWOK_STAGES).read_text(encoding="utf-8")))
    kinds = {d["spec"]["resourceRef"]["kind"] for d in docs}
    assert kinds == {"Node", "Pod", "Ingress"}
    assert {d["kind"] for d in docs} == {"Stage"}


def test_pki_has_a_client_cert_in_system_masters(tmp_path: Path) -> None:
    from cryptography import x509

    pki = write_pki(tmp_path)
    admin = x509.load_pem_x509_certificate(pki.admin_cert.read_bytes())
    assert "O=system:masters" in admin.subject.rfc4514_string()
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert oct(pki.admin_key.stat().st_mode & 0o777) == "0o600"


def _pod(node: str | None, service: str, track: str | None, image: str, phase: str = "Running", **extra: Any) -> Any:
    labels = {
        k: v for k, v in {"xiaozhi.io/edge-node": node, "xiaozhi.io/service": service, "track": track}.items() if v
    }
    fill = SimpleNamespace(name="fill-secrets", image="busybox", env=None)
    main = SimpleNamespace(name=service, image=image, env=[SimpleNamespace(name="XZ_IMAGE", value=image)])
    return SimpleNamespace(
        metadata=SimpleNamespace(
            labels=labels, deletion_timestamp=extra.get("deleting"), creation_timestamp=extra.get("created", 0)
        ),
        status=SimpleNamespace(phase=phase),
        spec=SimpleNamespace(containers=[fill, main] if extra.get("sidecar_first") else [main, fill]),
    )


def test_running_images_reads_node_service_track_and_image_of_running_pods() -> None:
    pods = [
        _pod("bj-edge-01", "asr", "stable", "reg/asr:1.0", sidecar_first=True),
        _pod("bj-edge-01", "asr", "canary", "reg/asr:1.1"),
        _pod("bj-edge-02", "tts", None, "reg/tts:1.0"),
        _pod("bj-edge-02", "vad", "stable", "reg/vad:2.0", phase="Pending"),
        _pod("bj-edge-03", "vad", "stable", "reg/vad:2.0", deleting="2026-12-01T00:00:00Z"),
        _pod(None, "router", "stable", "reg/router:1"),
    ]
    assert running_images(pods) == {
        ("bj-edge-01", "asr", "stable"): "reg/asr:1.0",
        ("bj-edge-01", "asr", "canary"): "reg/asr:1.1",
        ("bj-edge-02", "tts", "stable"): "reg/tts:1.0",
    }


def test_while_a_track_rolls_over_the_newest_pod_gives_its_image() -> None:
    new = _pod("bj-edge-01", "asr", "stable", "reg/asr:1.2", created=2)
    old = _pod("bj-edge-01", "asr", "stable", "reg/asr:1.0", created=1)
    assert running_images([new, old]) == running_images([old, new]) == {("bj-edge-01", "asr", "stable"): "reg/asr:1.2"}


@pytest.mark.parametrize(
    ("seen", "now", "expected"),
    [
        ({}, {("n", "asr", "stable"): "a:1"}, [("n", "asr", "stable", "a:1")]),
        ({("n", "asr", "stable"): "a:1"}, {("n", "asr", "stable"): "a:1"}, []),
        ({("n", "asr", "stable"): "a:1"}, {("n", "asr", "stable"): "a:2"}, [("n", "asr", "stable", "a:2")]),
        ({("n", "asr", "canary"): "a:2"}, {}, [("n", "asr", "canary", None)]),  # canary removed
        ({("n", "asr", "stable"): "a:1"}, {}, []),  # stable pods rolling over: keep the last image
        # Pods the simulator does not model (the Redis cache, a node it does not know) are never sent: it would
        # refuse them, and a canary's removal after them would never be told (the canary stayed forever).
        (
            {("n", "asr", "canary"): "a:2"},
            {("n", "cache", "stable"): "redis:7", ("x", "asr", "stable"): "a:1"},
            [("n", "asr", "canary", None)],
        ),
    ],
)
def test_deploy_actions_send_only_changes(
    seen: dict[tuple[str, str, str], str], now: dict[tuple[str, str, str], str], expected: list[tuple[Any, ...]]
) -> None:
    modelled = {("n", "asr"), ("n", "tts")}
    got = [(a["node"], a["service"], a["track"], a["image"]) for a in deploy_actions(seen, now, modelled)]
    assert got == expected
    assert all(a["action"] == "deploy" for a in deploy_actions(seen, now, modelled))


def test_modelled_services_are_the_simulators_nodes_and_services() -> None:
    state: dict[str, Any] = {
        "nodes": {"n": {"images": {"asr": {}, "xiaozhi_server": {}}}, "m": {"images": {"vad": {}}}}
    }
    assert modelled_services(state) == {("n", "asr"), ("n", "xiaozhi_server"), ("m", "vad")}


def test_a_refused_action_does_not_stop_the_ones_after_it() -> None:
    class Simulator:
        def __init__(self) -> None:
            self.took: list[dict[str, Any]] = []

        def control(self, action: dict[str, Any]) -> None:
            if action["service"] == "cache":
                raise BadInputError("unknown service 'cache'")
            self.took.append(action)

    sim = Simulator()
    seen = {("n", "asr", "canary"): "a:2"}
    refused = {"action": "deploy", "node": "n", "service": "cache", "track": "stable", "image": "redis:7"}
    removal = {"action": "deploy", "node": "n", "service": "asr", "track": "canary", "image": None}
    tell(sim, [refused, removal], seen)
    assert sim.took == [removal]
    assert seen == {}  # the refused one is not recorded: the next poll sends it again
