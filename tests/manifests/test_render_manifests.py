"""`xzctl render manifests REGION|cloud --out DIR`: the same objects as plain YAML, written all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fixtures.golden import assert_golden
from xzctl.cli import run
from xzctl.provision.objects import target_objects
from xzctl.spec import Fleet

GOLDEN = Path(__file__).parent / "golden"


def test_region_files_hold_exactly_the_builder_objects(
    example_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "beijing"
    assert run(["render", "manifests", "beijing", "--out", str(out)]) == 0
    assert f"wrote 13 file(s) to {out}" in capsys.readouterr().out
    assert (out / "helm" / "monitoring.values.yaml").is_file()
    files = sorted(p.name for p in out.glob("*.yaml"))
    assert files[0] == "00-regionbase-beijing.yaml" and files[-1] == "10-autoscaling-beijing.yaml"
    written = [doc for name in files for doc in yaml.safe_load_all((out / name).read_text(encoding="utf-8"))]
    assert written == target_objects(example_fleet, "beijing").objects()
    assert_golden(
        GOLDEN / "beijing" / "02-edgenode-bj-edge-01.yaml",
        (out / "02-edgenode-bj-edge-01.yaml").read_text(encoding="utf-8"),
    )


def test_cloud_files_and_helm_values(tmp_path: Path) -> None:
    out = tmp_path / "cloud"
    assert run(["render", "manifests", "cloud", "--out", str(out)]) == 0
    values = (out / "helm" / "monitoring.values.yaml").read_text(encoding="utf-8")
    assert values.startswith(
        "# Helm values for kube-prometheus-stack 65.1.1; install with:\n#   helm upgrade --install monitoring"
    )
    assert yaml.safe_load(values)["prometheus"]["prometheusSpec"]["retention"] == "15d"
    for name in ("03-cloudorchestrator-cloud-orchestrator.yaml", "05-cloudbackup-backup.yaml"):
        assert_golden(GOLDEN / "cloud" / name, (out / name).read_text(encoding="utf-8"))


def test_bad_target_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x"
    assert run(["render", "manifests", "chengdu", "--out", str(out)]) == 2
    assert "no region 'chengdu'" in capsys.readouterr().err
    assert not out.exists()
    assert run(["render", "manifests", "../etc", "--out", str(out)]) == 2
    assert not out.exists()


def test_a_folder_xzctl_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    assert run(["render", "manifests", "shanghai", "--out", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert run(["render", "manifests", "shanghai", "--out", str(tmp_path / "gitops")]) == 0
    assert (
        run(["render", "manifests", "shanghai", "--out", str(tmp_path / "gitops")]) == 0
    )  # re-render replaces its own


def test_pins_render_a_rollout_step(example_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xzctl.manifests.pins import ServicePin, spec_pins

    pins = spec_pins(example_fleet).with_pin(
        "gz-edge-02",
        "vad",
        ServicePin("registry.xiaozhi.example/inference/vad:1.3.0", "registry.xiaozhi.example/inference/vad:1.2.0"),
    )
    pins_file = tmp_path / "pins.json"
    pins_file.write_text(json.dumps(pins.to_json()), encoding="utf-8")
    out = tmp_path / "gz"
    assert run(["render", "manifests", "guangzhou", "--out", str(out), "--pins", str(pins_file)]) == 0
    docs = list(yaml.safe_load_all((out / "04-edgenode-gz-edge-02.yaml").read_text(encoding="utf-8")))
    canary = [d for d in docs if d["metadata"]["name"] == "gz-edge-02-vad-canary"]
    image = canary[0]["spec"]["template"]["spec"]["containers"][0]["image"] if len(canary) == 1 else ""
    assert image.startswith("registry.xiaozhi.example/inference/vad:1.2.0@sha256:"), image
    pins_file.write_text("{not json", encoding="utf-8")
    assert run(["render", "manifests", "guangzhou", "--out", str(tmp_path / "bad"), "--pins", str(pins_file)]) == 2
    assert "is not image pins JSON" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
