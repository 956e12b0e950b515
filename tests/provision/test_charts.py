"""Where each Helm chart comes from: repository (default), a vendored local chart, or external (installed already)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.pulumi_mocks import AUTH_KEY, CONFIG_SECRETS, RecordingMocks, stack_config
from xzctl.cli import run
from xzctl.errors import BadInputError, FleetSpecError
from xzctl.manifests.files import manifest_files
from xzctl.provision.objects import chart_sources, target_objects
from xzctl.spec import bundled_example_path, load_fleet

RELEASE = "kubernetes:helm.sh/v3:Release"


def _fleet_file(tmp_path: Path, cloud_charts: dict[str, Any], beijing_charts: dict[str, Any]) -> Path:
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    doc["cloud"]["kubernetes"]["charts"] = cloud_charts
    doc["regions"]["beijing"]["kubernetes"]["charts"] = beijing_charts
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_sources_are_applied_and_said(tmp_path: Path) -> None:
    vendored = tmp_path / "kube-prometheus-stack-65.1.1.tgz"
    path = _fleet_file(
        tmp_path,
        {
            "elasticsearch": {"source": "external"},
            "kibana": {"source": "external"},
            "monitoring": {"repository": "https://mirror.example/charts"},
        },
        {"monitoring": {"source": "local", "path": str(vendored)}},
    )
    fleet = load_fleet(path).fleet
    sources = chart_sources(fleet)
    assert sources["beijing"] == {
        "monitoring": f"local {vendored}",
        "autoscaling-metrics": "repository https://prometheus-community.github.io/helm-charts prometheus-adapter 4.11.0",
    }
    assert sources["shanghai"]["monitoring"].startswith("repository https://prometheus-community")
    assert sources["cloud"] == {
        "monitoring": "repository https://mirror.example/charts kube-prometheus-stack 65.1.1",
        "elasticsearch": "external (installed already)",
        "kibana": "external (installed already)",
        "autoscaling-metrics": "repository https://prometheus-community.github.io/helm-charts prometheus-adapter 4.11.0",
    }
    files = manifest_files([], target_objects(fleet, "beijing").charts)
    assert files["helm/monitoring.values.yaml"].startswith(
        f"# Helm values for {vendored}; install with:\n#   helm upgrade --install monitoring {vendored} --namespace"
    )
    cloud_files = manifest_files([], target_objects(fleet, "cloud").charts)
    assert "xzctl does not install it" in cloud_files["helm/kibana.values.yaml"].splitlines()[0]


def test_validate_lists_chart_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _fleet_file(tmp_path, {}, {"monitoring": {"source": "external"}})
    assert run(["fleet", "validate", "--fleet", str(path), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["charts"]["beijing"] == {
        "monitoring": "external (installed already)",
        "autoscaling-metrics": "repository https://prometheus-community.github.io/helm-charts prometheus-adapter 4.11.0",
    }
    assert run(["fleet", "validate", "--fleet", str(path)]) == 0
    assert "chart beijing/monitoring: external (installed already)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [{"source": "local"}, {"source": "external", "path": "/x.tgz"}, {"source": "helm"}],
)
def test_a_bad_chart_source_is_a_spec_error(tmp_path: Path, bad: dict[str, Any]) -> None:
    with pytest.raises(FleetSpecError):
        load_fleet(_fleet_file(tmp_path, {}, {"monitoring": bad}))


def test_a_chart_the_cluster_does_not_have_is_named(tmp_path: Path) -> None:
    fleet = load_fleet(_fleet_file(tmp_path, {}, {"grafana": {"source": "external"}})).fleet
    with pytest.raises(BadInputError, match=r"regions.beijing.kubernetes.charts names no chart .*: grafana"):
        target_objects(fleet, "beijing")


def test_the_program_installs_local_charts_and_only_relies_on_external_ones(
    tmp_path: Path, pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xzctl.provision.program import inline_program, resource_count

    vendored = tmp_path / "charts" / "kube-prometheus-stack"
    path = _fleet_file(
        tmp_path,
        {
            "elasticsearch": {"source": "external"},
            "kibana": {"source": "external"},
            "monitoring": {"source": "external"},
            "autoscaling-metrics": {"source": "external"},
        },
        {"monitoring": {"source": "local", "path": str(vendored)}, "autoscaling-metrics": {"source": "external"}},
    )
    fleet = load_fleet(path).fleet
    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    cloud = target_objects(fleet, "cloud")
    recorded = pulumi_mocks.run(
        stack_config("cloud"), list(CONFIG_SECRETS), inline_program(fleet, "cloud", None, cloud)
    )
    assert [r for r in recorded if r.typ == RELEASE] == []
    releases = {r.name for r in recorded if r.typ == "xzctl:cloud:HelmRelease"}
    assert releases == {"monitoring", "elasticsearch", "kibana", "autoscaling-metrics"}
    assert len(recorded) + 1 == resource_count(cloud)
    edge = target_objects(fleet, "beijing")
    recorded = pulumi_mocks.run(
        stack_config("beijing"), list(CONFIG_SECRETS), inline_program(fleet, "beijing", None, edge)
    )
    [release] = [r.inputs for r in recorded if r.typ == RELEASE]
    assert release["chart"] == str(vendored)
    assert "repositoryOpts" not in release and "version" not in release
