"""Loading the fleet spec: which file, located errors, profiles, cross-field rules on the example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.manifests import SITE_COORDINATOR, coordinator_variant, variant
from xzctl.cli import run
from xzctl.errors import FleetSpecError
from xzctl.spec import bundled_example_path, load_fleet, resolve_fleet_path
from xzctl.spec.validate import all_images, canary_shortfall, node_cpu_memory_requests, node_gpu_demand

EXAMPLE = bundled_example_path().read_text(encoding="utf-8")


def test_fleet_file_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XZCTL_FLEET", raising=False)
    assert resolve_fleet_path(None, cwd=tmp_path) == bundled_example_path()
    (tmp_path / "fleet.yaml").write_text(EXAMPLE, encoding="utf-8")
    assert resolve_fleet_path(None, cwd=tmp_path) == tmp_path / "fleet.yaml"
    monkeypatch.setenv("XZCTL_FLEET", "/from/env.yaml")
    assert resolve_fleet_path(None, cwd=tmp_path) == Path("/from/env.yaml")
    assert resolve_fleet_path("explicit.yaml", cwd=tmp_path) == Path("explicit.yaml")


def test_bundled_example_loads_with_the_seeds_alert_contradictions() -> None:
    # The seed's third, 56 GPUs of LLMs on 32, would leave the cloud unschedulable: an error, fixed in the example.
    loaded = load_fleet(bundled_example_path())
    fleet = loaded.fleet
    assert (len(fleet.regions), len(fleet.edge_nodes()), fleet.devices) == (3, 7, 1000)
    assert {w.path for w in loaded.warnings} == {
        "alerts.cache_hit_rate_low.min_ratio",
        "alerts.model_inference_failure.error_ratio",
    }
    assert all(w.severity == "warning" and w.line for w in loaded.warnings)


def test_profile_sections_reach_every_node_and_node_values_win(tmp_path: Path) -> None:
    doc = yaml.safe_load(EXAMPLE)
    doc["regions"]["beijing"]["edge_nodes"][0]["networking"] = {"bandwidth_limit": "10Gbps"}
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    fleet = load_fleet(spec).fleet
    assert fleet.node("bj-edge-01").networking.bandwidth_limit == "10Gbps"
    assert fleet.node("bj-edge-02").networking.bandwidth_limit == "1Gbps"
    assert all(n.capacity.max_devices == 150 and n.region for n in fleet.edge_nodes())


def test_an_error_in_a_profile_is_reported_once_at_the_profile_line(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE.replace("cpu_cores: 16", "cpu_cores: sixteen"), encoding="utf-8")
    with pytest.raises(FleetSpecError) as caught:
        load_fleet(spec)
    problems = caught.value.problems
    assert len(problems) == 1  # seven nodes use the profile; the operator fixes one line
    line = EXAMPLE.splitlines().index("      cpu_cores: 16") + 1
    assert problems[0].render() == (
        f"{spec}:{line}: node_profiles.edge-standard.capacity.cpu_cores: Input should be a valid integer, "
        "unable to parse string as an integer (got 'sixteen'); fix: write a whole number"
    )


def test_all_errors_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(EXAMPLE)
    doc["regions"]["beijing"]["edge_nodes"][0]["devices"] = 151
    doc["regions"]["shanghai"]["edge_nodes"][1]["id"] = "sh-edge-01"
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run(["fleet", "validate", "--fleet", str(spec), "-o", "json"]) == 2
    out = json.loads(capsys.readouterr().out)
    errors = [p for p in out["problems"] if p["severity"] == "error"]
    assert out["valid"] is False
    assert sorted((p["path"], p["message"]) for p in errors) == [
        ("regions.beijing.edge_nodes[0].devices", "151 devices assigned but max_devices is 150"),
        ("regions.shanghai.edge_nodes[1].id", "duplicate edge node id 'sh-edge-01'"),
    ]


def test_strict_refuses_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "validate"]) == 0
    assert "valid: 3 regions, 7 edge nodes, 1000 devices, 2 warning(s)" in " ".join(capsys.readouterr().out.split())
    assert run(["fleet", "validate", "--strict"]) == 2
    assert "xzctl: error:" in capsys.readouterr().err


def test_example_node_budgets() -> None:
    node = load_fleet(bundled_example_path()).fleet.node("bj-edge-01")
    assert node_gpu_demand(node) == 6 * 1 + 4 * 1 + 1 * 2
    cpu, memory = node_cpu_memory_requests(node)
    # 4 server processes of half a core (one per 4 of the node's 16 cores: the example gives no count), Redis 500m
    assert cpu == pytest.approx(4 * 0.5 + 6 * 1 + 4 * 0.5 + 1 + 4 * 0.5 + 0.5)
    gib = 2**30
    # vad 4 x 512Mi, asr 6 x 3Gi, tts 4 x 1Gi, llm 6Gi, server 4 x 1Gi, Redis limit 16Gi (no coordinator)
    assert memory == 4 * gib // 2 + 6 * 3 * gib + 4 * gib + 6 * gib + 4 * gib + 16 * gib
    # and one more pod of any service fits beside them: a rollout's canary is scheduled
    assert canary_shortfall(node) is None


@pytest.mark.parametrize(
    ("edit", "service", "short"),
    [
        # the default 1-core server processes (4 of them) leave half a core: asr's 1-core canary stays Pending
        ((r'\n        resources: \{cpu_request: "500m", cpu_limit: "2".*\n', "\n"), "asr", "1 CPU (0.5 free)"),
        ((r"memory_limit: 16Gi", "memory_limit: 28Gi"), "asr", "3Gi memory (2.0 GiB free)"),
        ((r"time_slicing_replicas: 8", "time_slicing_replicas: 6"), "asr", "1 GPU slot(s) (0 free)"),
    ],
)
def test_a_node_without_room_for_a_canary_is_warned(
    tmp_path: Path, edit: tuple[str, str], service: str, short: str
) -> None:
    fleet = variant(tmp_path, edit)
    assert canary_shortfall(fleet.node("bj-edge-01")) == (service, short)
    warned = [w for w in load_fleet(tmp_path / "fleet.yaml").warnings if "canary pod" in w.message]
    assert [w.path for w in warned] == [f"node_profiles.edge-standard.services.{service}"]


def test_all_images_names_every_image_with_its_path() -> None:
    images = dict(all_images(load_fleet(bundled_example_path()).fleet))
    assert images[("regions", "beijing", "edge_nodes", 0, "services", "asr", "image")] == (
        "registry.xiaozhi.example/inference/asr:2.2.0"
    )
    assert images[("cloud", "llm_models", 1, "image")] == "registry.xiaozhi.example/llm/qwen-14b:1.0.0"
    # per node: server, vad, asr, tts, llm, cache (the example runs no coordinator); cloud: two models, two tools
    assert len(images) == 7 * 6 + 2 + 2
    assert not [path for path in images if "coordinator" in path]


def test_a_coordinator_the_spec_sets_is_an_image_and_a_pod_of_every_node(tmp_path: Path) -> None:
    example = load_fleet(bundled_example_path()).fleet
    image = SITE_COORDINATOR
    fleet = coordinator_variant(tmp_path)
    images = dict(all_images(fleet))
    assert images[("regions", "beijing", "edge_nodes", 0, "services", "coordinator", "image")] == image
    assert len(images) == len(dict(all_images(example))) + len(fleet.edge_nodes())
    cpu, memory = node_cpu_memory_requests(fleet.node("bj-edge-01"))
    base_cpu, base_memory = node_cpu_memory_requests(example.node("bj-edge-01"))
    # the coordinator's default requests (2 cores, 4Gi), less one server process (half a core, 1Gi) it makes room for
    assert (cpu - base_cpu, memory - base_memory) == (2 - 0.5, (4 - 1) * 2**30)


def test_a_rule_broken_by_a_profile_names_the_profile_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every node of the example takes its services from edge-standard: one over-demand there is one warning at
    # node_profiles.edge-standard..., a path the file has, not seven at regions.*.edge_nodes[*].services.
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    doc["node_profiles"]["edge-standard"]["capacity"]["gpu"]["time_slicing_replicas"] = 7
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    slots = [w for w in load_fleet(spec).warnings if "GPU slots but the node has" in w.message]
    assert [w.path for w in slots] == ["node_profiles.edge-standard.services"]
    assert slots[0].message.endswith("(edge node bj-edge-01, from its profile) (+6 more like it)")
    assert slots[0].line is not None
    assert run(["fleet", "validate", "--fleet", str(spec)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(lines) == len(set(lines)) and sum("GPU slots" in line for line in lines) == 1  # one line, once
