"""A small client of the simulator's HTTP API (scenario controls and /state), for tests and demos."""

from __future__ import annotations

from typing import Any

import requests

from xzctl.errors import BadInputError, ExternalToolError


class SimulatorClient:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = requests.request(method, f"{self.url}{path}", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ExternalToolError(f"simulator at {self.url} unreachable: {exc}") from exc
        if response.status_code == 400:
            what = (body or {}).get("action", path)  # the action's name, not the request as a Python dict
            raise BadInputError(f"simulator refused {what}: {response.json().get('error', response.text)}")
        if response.status_code != 200:
            raise ExternalToolError(f"simulator {method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def control(self, action: dict[str, Any]) -> dict[str, Any]:
        """Apply one scenario action, e.g. {"action": "node_down", "node": "bj-edge-01"}."""
        result: dict[str, Any] = self._call("POST", "/control", action)
        return result

    def state(self) -> dict[str, Any]:
        """{"time", "seed", "nodes": {node: {region, devices, max_devices, up, metrics, images}}, ...}."""
        result: dict[str, Any] = self._call("GET", "/state")
        return result

    def node_metrics(self, node: str) -> str:
        """The raw exposition of one node (raises when the endpoint fails, e.g. node down)."""
        try:
            response = requests.get(f"{self.url}/nodes/{node}/metrics", timeout=self.timeout)
        except requests.RequestException as exc:
            raise ExternalToolError(f"simulator at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ExternalToolError(f"{node} metrics: HTTP {response.status_code}")
        return response.text
