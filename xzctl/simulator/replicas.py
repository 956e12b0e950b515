"""The autoscaler inside the simulator: replicas of each autoscaled service follow the HPA's decisions.

Off by default (the simulator then runs the spec's replica counts, as before); the control action
`{"action": "autoscaling", "enabled": true}` turns it on. Then, every SYNC_SECONDS per node, each service
with `autoscaling` in the spec computes the HPA's desired count, ceil(replicas x metric / target) outside a
10 % tolerance, from the same signal the HPA reads (queue depth or requests per replica, or p95 latency as a
share of the KPI), and applies the manifests' behaviour: up at once (double or +2, whichever is more), down
to the highest recommendation of the last 10 minutes, one pod per 2 minutes. Replicas set the stage's
capacity, so a scale decision changes the node's latency, queues and headroom.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from xzctl.errors import BadInputError
from xzctl.spec.autoscaling import scaler
from xzctl.spec.models import EdgeNode, Fleet, InferenceService, ScalingSignal

SYNC_SECONDS = 15.0  # the HPA controller's default sync period
TOLERANCE = 0.1
DOWN_WINDOW_SECONDS = 600.0
DOWN_STEP_SECONDS = 120.0
P95_Z = 1.645


class StageLoadLike(Protocol):
    arrival: float

    def queue_size(self) -> float: ...
    def median_factor(self) -> float: ...
    def wait_seconds(self) -> float: ...


class ProfileLike(Protocol):
    @property
    def median_seconds(self) -> float: ...
    @property
    def sigma(self) -> float: ...


def desired_replicas(current: int, metric: float, target: float) -> int:
    """The HPA's formula with its default tolerance."""
    ratio = metric / target if target > 0 else 1.0
    return current if abs(ratio - 1.0) <= TOLERANCE else max(1, math.ceil(current * ratio))


class ReplicaAutoscaler:
    def __init__(self, fleet: Fleet) -> None:
        self.kpis = fleet.kpis.latency.by_service()
        self.enabled = False
        self.replicas: dict[tuple[str, str], int] = {}
        self.recommendations: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self.last_sync: dict[str, float] = {}
        self.last_down: dict[tuple[str, str], float] = {}

    def count(self, node: EdgeNode, service: str, svc: InferenceService) -> int:
        """Replicas of the service on the node now: the autoscaler's, else the spec's."""
        return self.replicas.get((node.id, service), svc.replicas) if self.enabled else svc.replicas

    def control(self, action: dict[str, Any]) -> dict[str, Any]:
        enabled = action.get("enabled")
        if not isinstance(enabled, bool):
            raise BadInputError('"enabled" must be true or false')
        self.enabled = enabled
        self.replicas.clear()
        self.recommendations.clear()
        self.last_sync.clear()
        self.last_down.clear()
        return {"autoscaling": enabled}

    def state(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (node, service), count in sorted(self.replicas.items()):
            out.setdefault(node, {})[service] = count
        return out

    def _metric(self, signal: ScalingSignal, service: str, load: StageLoadLike, profile: ProfileLike, n: int) -> float:
        if signal is ScalingSignal.QUEUE_DEPTH:
            return load.queue_size() / n
        if signal is ScalingSignal.REQUESTS:
            return load.arrival / n
        median = profile.median_seconds * load.median_factor() + load.wait_seconds()
        p95_ms = median * math.exp(P95_Z * profile.sigma) * 1000
        return p95_ms / self.kpis[service]  # the spec's target is a share of the KPI

    def sync(
        self, node: EdgeNode, t: float, loads: Mapping[str, StageLoadLike], profiles: Mapping[str, ProfileLike]
    ) -> None:
        """One HPA pass over the node's autoscaled services, at most every SYNC_SECONDS."""
        if not self.enabled or t - self.last_sync.get(node.id, -math.inf) < SYNC_SECONDS:
            return
        self.last_sync[node.id] = t
        for service, svc in node.services.inference().items():
            auto = scaler(svc)
            if auto is None or service not in loads:
                continue
            key = (node.id, service)
            current = self.replicas.get(key, svc.replicas)
            metric = self._metric(auto.signal, service, loads[service], profiles[service], current)
            want = min(auto.max, max(auto.min, desired_replicas(current, metric, auto.target)))
            recent = self.recommendations.setdefault(key, deque(maxlen=int(DOWN_WINDOW_SECONDS / SYNC_SECONDS) + 1))
            recent.append((t, want))
            while recent and recent[0][0] < t - DOWN_WINDOW_SECONDS:
                recent.popleft()
            if want > current:
                self.replicas[key] = min(want, max(current * 2, current + 2))
            else:
                floor = max(r for _, r in recent)  # the stabilisation window: the highest recent wish
                if floor < current and t - self.last_down.get(key, -math.inf) >= DOWN_STEP_SECONDS:
                    self.replicas[key] = current - 1
                    self.last_down[key] = t
                else:
                    self.replicas[key] = current
