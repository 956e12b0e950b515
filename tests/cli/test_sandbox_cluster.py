"""examples/fleet-sandbox.yaml aims every cluster at the sandbox's Kubernetes by its context alone; provision and
Pulumi rollouts find that cluster's kubeconfig in the running sandbox (tests/engine runs them on it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl import data_path
from xzctl.cli import run
from xzctl.cli._context import sandbox_kubeconfig
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.kubernetes import CONTEXT
from xzctl.spec import bundled_example_path, load_fleet
from xzctl.spec.models import KubernetesTarget

EXAMPLE = data_path("examples", "fleet-sandbox.yaml")
GONE_PID = 2**22 + 7  # above Linux's largest pid_max: no such process


def test_the_example_validates_with_every_cluster_the_sandboxs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "validate", "--fleet", str(EXAMPLE), "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True
    fleet = load_fleet(EXAMPLE).fleet
    clusters = [fleet.cloud.kubernetes, *(r.kubernetes for r in fleet.regions.values())]
    assert {(c.context, c.kubeconfig) for c in clusters} == {(CONTEXT, None)}
    # Offline: no chart may come from a repository.
    assert {s.source for c in clusters for s in c.charts.values()} == {"external"}


def _without_clusters(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    del doc["metadata"]["name"], doc["cloud"]["kubernetes"], doc["cloud"]["gpu_servers"]["count"]
    for region in doc["regions"].values():
        del region["kubernetes"]
    doc["cost"]["capex"] = [c for c in doc["cost"]["capex"] if c["kind"] != "cloud_gpu_server"]
    return doc


def test_the_example_is_the_bundled_one_but_for_its_clusters() -> None:
    """One fleet to keep current: a pin or KPI changed in fleet-1000.yaml must change here too."""
    assert _without_clusters(EXAMPLE) == _without_clusters(bundled_example_path())


def _sandbox(state: Path, kubeconfig: str, pid: int) -> None:
    info = SandboxInfo("http://127.0.0.1:9", "http://127.0.0.1:9", state, {"simulator": pid}, kubeconfig=kubeconfig)
    (state / "sandbox").mkdir(parents=True)
    (state / "sandbox" / "state.json").write_text(json.dumps(info.to_json()), encoding="utf-8")


@pytest.mark.parametrize(
    "case",
    [
        ({"context": CONTEXT}, None, None, "alive", True),
        ({"context": "k3s-beijing"}, CONTEXT, None, "alive", True),  # --context names the sandbox's
        ({"context": CONTEXT}, "k3s-beijing", None, "alive", False),  # --context names another
        ({"context": "k3s-beijing"}, None, None, "alive", False),
        ({"context": CONTEXT, "kubeconfig": "kube.yaml"}, None, None, "alive", False),  # the spec's wins
        ({"context": CONTEXT}, None, "/elsewhere/config", "alive", False),  # then $KUBECONFIG
        ({"context": CONTEXT}, None, None, "gone", False),
        ({"context": CONTEXT}, None, None, "no kubernetes", False),
        ({"context": CONTEXT}, None, None, None, False),
    ],
)
def test_the_sandbox_kubeconfig_comes_last(
    case: tuple[dict[str, str], str | None, str | None, str | None, bool],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster, flag_context, env, sandbox, found = case  # the spec's cluster, --context, $KUBECONFIG, the sandbox
    kubeconfig = tmp_path / "kube" / "kubeconfig"
    if env is None:
        monkeypatch.delenv("KUBECONFIG", raising=False)
    else:
        monkeypatch.setenv("KUBECONFIG", env)
    if sandbox is not None:
        pid = GONE_PID if sandbox == "gone" else os.getpid()
        _sandbox(tmp_path, "" if sandbox == "no kubernetes" else str(kubeconfig), pid)
    got = sandbox_kubeconfig(KubernetesTarget(**cluster), flag_context, tmp_path)
    assert got == (kubeconfig if found else None)
