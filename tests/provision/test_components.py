"""Resource options the stack program gives the objects it registers, as the (mock) engine receives them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.pulumi_mocks import AUTH_KEY, CONFIG_SECRETS, RecordingMocks, stack_config
from xzctl.manifests.k8s import SKIP_AWAIT
from xzctl.spec.models import Fleet


def _register_requests(pulumi_mocks: RecordingMocks, target: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Resource name -> the RegisterResource request the program sent for it."""
    from pulumi.runtime import mocks

    requests: dict[str, Any] = {}
    register: Any = mocks.MockMonitor.RegisterResource

    def recording(self: Any, request: Any) -> Any:
        requests[f"{request.type}::{request.name}"] = request
        return register(self, request)

    monkeypatch.setattr(mocks.MockMonitor, "RegisterResource", recording)
    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    pulumi_mocks.run(stack_config(target), list(CONFIG_SECRETS))
    return requests


def test_autoscaled_deployments_leave_replicas_to_their_hpa(
    pulumi_mocks: RecordingMocks, example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = _register_requests(pulumi_mocks, "beijing", monkeypatch)
    deployments = {k.split("::")[1]: r for k, r in requests.items() if k.startswith("kubernetes:apps/v1:Deployment::")}
    autoscaled = {
        f"xiaozhi-beijing/{n.id}-{s}"
        for n in example_fleet.regions["beijing"].edge_nodes
        for s, svc in n.services.inference().items()
        if svc.autoscaling is not None
    }
    assert autoscaled and autoscaled < set(deployments)  # some are, some (vad, the server) are not
    for name, request in deployments.items():
        expected = ["spec.replicas"] if name in autoscaled else []
        assert list(request.ignoreChanges) == expected, name


def test_services_skip_the_providers_endpoint_settling_wait(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulumi.runtime import rpc

    requests = _register_requests(pulumi_mocks, "beijing", monkeypatch)
    kinds = {k.split("::")[0] for k in requests}
    assert "kubernetes:apps/v1:Deployment" in kinds
    for key, request in requests.items():
        if not key.startswith("kubernetes:"):
            continue
        props = rpc.deserialize_properties(request.object)
        annotations = (props.get("metadata") or {}).get("annotations") or {}
        assert (annotations.get(SKIP_AWAIT) == "true") is key.startswith("kubernetes:core/v1:Service::"), key
