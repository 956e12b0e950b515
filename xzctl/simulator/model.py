"""The fleet model behind the simulator: devices, sessions, load, latency, queues, utilization.

Devices are modelled in aggregate per edge node (a count, not an object per device) so that 1000
nodes and 150k devices fit on a laptop core. Per node:

- sessions: a device opens one WebSocket session per conversation (about 45 s of talk) and the
  upstream server closes it after 120 s idle, so by Little's law the open sessions are
  population * conversation_rate(t) * 165 s. The conversation rate follows a diurnal curve
  (trough 04:00, peak 16:00 China time).
- load: every conversation makes 6 turns; each turn is one request to vad, asr, llm, tts and one
  end-to-end request. Each stage has a capacity of replicas * batch_size / work_seconds from the
  spec. Latency is log-normal around a median that grows with utilization (M/M/1-like) and, past
  capacity, a backlog builds up and every request waits for it (queue size gauge, timeouts).
- CPU/GPU/memory follow the load; cache tiers answer a fixed share of lookups.

Everything random comes from a seeded hash of (seed, node, 10 s window), so a run is a function of
the seed and the clock. Scenario controls (node down, overload, canary image quality, metrics gap,
stale exporter) change the state; counters never go backwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator.replicas import ReplicaAutoscaler
from xzctl.spec.failover import NodeLoad, may_leave_region, place
from xzctl.spec.models import EdgeNode, Fleet

IDLE_CLOSE_SECONDS = 120.0  # upstream xiaozhi-esp32-server closes an idle WebSocket after 120 s
TALK_SECONDS = 45.0
SESSION_SECONDS = TALK_SECONDS + IDLE_CLOSE_SECONDS
TURNS_PER_CONVERSATION = 6.0
CANARY_SHARE = 0.10
NOISE_WINDOW_SECONDS = 10.0
MAX_STEPS_PER_ADVANCE = 360
MAX_STEP_SECONDS = 10.0  # integration step: backlog and failover stay accurate at this grain
CHINA_UTC_OFFSET_HOURS = 8.0
STAGES = ("vad", "asr", "llm", "tts")
CLOUD_LLM_SECONDS = 0.9  # nodes without an edge LLM send every prompt to the cloud
NETWORK_SECONDS = 0.08
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class StageProfile:
    """How one request of a stage behaves: latency at idle, replica time, CPU and GPU cost."""

    median_seconds: float
    sigma: float
    work_seconds: float  # replica-seconds per request; capacity = replicas * batch / work
    cpu_seconds: float
    gpu_seconds: float


STAGE_PROFILES = {
    "vad": StageProfile(0.012, 0.35, 0.2, 0.05, 0.0),
    "asr": StageProfile(0.15, 0.35, 0.9, 0.45, 0.06),
    "llm": StageProfile(0.6, 0.35, 1.1, 0.35, 0.16),
    "tts": StageProfile(0.1, 0.35, 0.5, 0.35, 0.04),
}
E2E_SIGMA = 0.3
BASE_INFERENCE_ERROR = 0.0001  # four stages plus transport: 0.05% end to end, half the 99.9% budget
BASE_TRANSPORT_ERROR = 0.0001
CACHE_TIER_HIT = {"l1": 0.5, "l2": 0.6, "l3": 0.5}  # share of the lookups reaching the tier that hit
CPU_MODES = ("idle", "user", "system")
BASELINE_CPU_SHARE = 0.06
SESSION_CPU_CORES = 0.004
BASELINE_MEMORY_SHARE = 0.3
SESSION_MEMORY_BYTES = 40 * 2**20
MODEL_FB_MIB = 6000.0


def _mix64(x: int) -> int:
    """splitmix64: a cheap, well-spread hash; the simulator's only source of randomness."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def unit_noise(*keys: int) -> float:
    """A deterministic number in [0, 1) from integer keys."""
    h = 0
    for k in keys:
        h = _mix64(h ^ (k & 0xFFFFFFFFFFFFFFFF))
    return (h >> 11) / float(1 << 53)


def diurnal_activity(t: float) -> float:
    """Share of a node's devices in a session at wall time t (0.25 at 04:00, 0.9 at 16:00 China time)."""
    hour = (t / 3600.0 + CHINA_UTC_OFFSET_HOURS) % 24.0
    return 0.25 + 0.65 * (0.5 - 0.5 * math.cos(2.0 * math.pi * (hour - 4.0) / 24.0))


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    return 0.5 * (1.0 + math.erf(math.log(x / median) / (sigma * math.sqrt(2.0))))


@dataclass
class Series:
    """Counters of one (service, track) request histogram on a node."""

    buckets: list[float] = field(default_factory=lambda: [0.0] * len(c.LATENCY_BUCKETS))
    count: float = 0.0
    total: float = 0.0
    errors: float = 0.0
    inference_errors: float = 0.0


@dataclass
class StageLoad:
    """One stage's state over an integration step."""

    arrival: float
    capacity: float
    backlog: float = 0.0

    @property
    def utilization(self) -> float:
        return self.arrival / self.capacity if self.capacity > 0 else math.inf

    def queue_size(self) -> float:
        rho = min(self.utilization, 0.99)
        return min(rho * rho / (1.0 - rho), 50.0) + self.backlog

    def median_factor(self) -> float:
        rho = min(self.utilization, 0.95)
        return 1.0 + 0.3 * rho / (1.0 - rho)

    def wait_seconds(self) -> float:
        return self.backlog / self.capacity if self.capacity > 0 else REQUEST_TIMEOUT_SECONDS

    def timeout_error_ratio(self) -> float:
        return min(0.5, max(0.0, (self.wait_seconds() - REQUEST_TIMEOUT_SECONDS / 2) / 20.0))


@dataclass
class ImageProfile:
    latency_factor: float = 1.0
    error_rate: float = 0.0


@dataclass
class NodeState:
    spec: EdgeNode
    index: int
    population: int
    pinned: int | None = None
    moved_in: int = 0  # sessions of other nodes' devices that reconnected here
    up: bool = True
    gap_until: float = 0.0
    stale: bool = False
    stale_body: str | None = None  # the frozen exposition a stale exporter keeps serving
    last: float = 0.0
    images: dict[str, dict[str, str | None]] = field(default_factory=dict)
    series: dict[tuple[str, str], Series] = field(default_factory=dict)
    backlog: dict[str, float] = field(default_factory=dict)
    sessions_opened: float = 0.0
    cache: dict[tuple[str, str], float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    # last step's gauges, for rendering and /state
    active: int = 0
    queue: dict[str, float] = field(default_factory=dict)
    cpu_share: float = 0.0
    gpu_share: float = 0.0
    memory_used: float = 0.0

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def region(self) -> str:
        return self.spec.region

    @property
    def max_devices(self) -> int:
        return self.spec.capacity.max_devices


@dataclass
class Arrival:
    """Devices of a lost node reconnecting elsewhere at `at`."""

    at: float
    source: str
    count: int


def spec_images(node: EdgeNode) -> dict[str, dict[str, str | None]]:
    s = node.services
    images: dict[str, str] = {
        "xiaozhi_server": s.xiaozhi_server.image,
        "coordinator": s.coordinator.image,
        **{name: svc.image for name, svc in s.inference().items()},
    }
    return {svc: {"stable": img, "canary": None} for svc, img in images.items()}


class FleetModel:
    """All edge nodes of a fleet; `advance` integrates, `render_node` writes a node's exposition."""

    def __init__(self, fleet: Fleet, *, seed: int = 0, start: float = 0.0) -> None:
        self.fleet = fleet
        self.seed = seed
        self.nodes: dict[str, NodeState] = {}
        self.profiles: dict[str, ImageProfile] = {}
        self.arrivals: list[Arrival] = []
        self.moved: dict[str, dict[str, int]] = {}  # lost node -> target node -> sessions moved
        self.disconnected: dict[str, int] = {}  # lost node -> sessions that found no room
        self.reconnect_seconds = (2.0, 8.0)
        self.autoscaler = ReplicaAutoscaler(fleet)
        for i, spec in enumerate(fleet.edge_nodes()):
            self.nodes[spec.id] = self._fresh(spec, i, start)

    def _fresh(self, spec: EdgeNode, index: int, start: float) -> NodeState:
        state = NodeState(spec=spec, index=index, population=spec.devices, last=start, images=spec_images(spec))
        self._gauges(state, start, 1.0)
        return state

    # --- the load model -----------------------------------------------------------------

    def _noise(self, node: NodeState, t: float, salt: int) -> float:
        """Multiplicative noise in [0.95, 1.05) per node and 10 s window."""
        return 0.95 + 0.1 * unit_noise(self.seed, node.index, int(t // NOISE_WINDOW_SECONDS), salt)

    def base_sessions(self, node: NodeState, t: float) -> int:
        if node.pinned is not None:
            return node.pinned
        return round(node.population * diurnal_activity(t) * self._noise(node, t, 1))

    def active_sessions(self, node: NodeState, t: float) -> int:
        if not node.up:
            return 0
        return self.base_sessions(node, t) + node.moved_in

    def headroom(self, node: NodeState, t: float) -> int:
        return node.max_devices - self.active_sessions(node, t)

    def _stage_loads(self, node: NodeState, turns_per_second: float) -> dict[str, StageLoad]:
        loads: dict[str, StageLoad] = {}
        for stage, svc in node.spec.services.inference().items():
            profile = STAGE_PROFILES[stage]
            capacity = self.autoscaler.count(node.spec, stage, svc) * svc.batch_size / profile.work_seconds
            loads[stage] = StageLoad(turns_per_second, capacity, node.backlog.get(stage, 0.0))
        return loads

    def _image_profile(self, node: NodeState, service: str, track: str) -> tuple[str, ImageProfile]:
        image = node.images[service][track] or node.images[service]["stable"] or ""
        return image, self.profiles.get(image, ImageProfile())

    def _tracks(self, node: NodeState, service: str) -> list[tuple[str, float]]:
        """(track, traffic share) of a service on the node: the canary track takes 10%."""
        if node.images.get(service, {}).get("canary"):
            return [("stable", 1.0 - CANARY_SHARE), ("canary", CANARY_SHARE)]
        return [("stable", 1.0)]

    def _gauges(self, node: NodeState, t: float, turns_per_second_hint: float | None = None) -> None:
        """Recompute the node's gauges at t (active sessions, queues, CPU, GPU, memory)."""
        active = self.active_sessions(node, t)
        node.active = active
        turns = active * TURNS_PER_CONVERSATION / SESSION_SECONDS * self._noise(node, t, 2)
        loads = self._stage_loads(node, turns)
        node.queue = {stage: load.queue_size() for stage, load in loads.items()}
        cores = node.spec.capacity.cpu_cores
        busy = sum(turns * STAGE_PROFILES[s].cpu_seconds for s in loads) + active * SESSION_CPU_CORES
        node.cpu_share = min(1.0, BASELINE_CPU_SHARE + busy / cores) if node.up else 0.0
        gpus = node.spec.capacity.gpu.count
        gpu_work = sum(
            turns * STAGE_PROFILES[s].gpu_seconds
            for s, svc in node.spec.services.inference().items()
            if svc.gpu_per_replica > 0
        )
        node.gpu_share = min(1.0, gpu_work / gpus) if gpus else 0.0
        total = node.spec.capacity.memory_gb * 2**30
        node.memory_used = min(total * 0.98, total * BASELINE_MEMORY_SHARE + active * SESSION_MEMORY_BYTES)

    def _step(self, node: NodeState, t0: float, t1: float) -> None:
        """Integrate the node's counters over [t0, t1] at the load of t0."""
        dt = t1 - t0
        self._gauges(node, t0)
        if not node.up or dt <= 0:
            return
        active = node.active
        turns = active * TURNS_PER_CONVERSATION / SESSION_SECONDS * self._noise(node, t0, 2)
        node.sessions_opened += active / SESSION_SECONDS * dt
        loads = self._stage_loads(node, turns)
        self.autoscaler.sync(node.spec, t0, loads, STAGE_PROFILES)
        for stage, load in loads.items():
            node.backlog[stage] = max(0.0, load.backlog + (load.arrival - load.capacity) * dt)
        requests = turns * dt
        e2e_median = {"stable": NETWORK_SECONDS, "canary": NETWORK_SECONDS}
        e2e_error = {"stable": BASE_TRANSPORT_ERROR, "canary": BASE_TRANSPORT_ERROR}
        if "llm" not in loads:
            for track in e2e_median:
                e2e_median[track] += CLOUD_LLM_SECONDS
        for stage, load in loads.items():
            profile = STAGE_PROFILES[stage]
            for track in ("stable", "canary"):
                _, image = self._image_profile(node, stage, track)
                median = profile.median_seconds * load.median_factor() * image.latency_factor
                median += load.wait_seconds()
                inference = BASE_INFERENCE_ERROR + image.error_rate + load.timeout_error_ratio()
                e2e_median[track] += median
                e2e_error[track] += inference
                share = dict(self._tracks(node, stage)).get(track, 0.0)
                if share:
                    self._observe(
                        node,
                        service=stage,
                        track=track,
                        n=requests * share,
                        median=median,
                        sigma=profile.sigma,
                        error_ratio=inference,
                    )
        server_tracks = {t for svc in ("coordinator", "xiaozhi_server", *loads) for t, _ in self._tracks(node, svc)}
        canary_share = CANARY_SHARE if "canary" in server_tracks else 0.0
        for track, share in (("stable", 1.0 - canary_share), ("canary", canary_share)):
            if share:
                _, coordinator = self._image_profile(node, "coordinator", track)
                _, server = self._image_profile(node, "xiaozhi_server", track)
                median = e2e_median[track] * coordinator.latency_factor * server.latency_factor
                errors = e2e_error[track] + coordinator.error_rate + server.error_rate
                self._observe(
                    node,
                    service="end_to_end",
                    track=track,
                    n=requests * share,
                    median=median,
                    sigma=E2E_SIGMA,
                    error_ratio=errors,
                    inference=False,
                )
        reaching = requests
        for tier in c.CACHE_TIERS:
            hit = CACHE_TIER_HIT[tier] * self._noise(node, t0, 3)
            node.cache[(tier, "hit")] = node.cache.get((tier, "hit"), 0.0) + reaching * hit
            node.cache[(tier, "miss")] = node.cache.get((tier, "miss"), 0.0) + reaching * (1.0 - hit)
            reaching *= 1.0 - hit
        busy = node.cpu_share
        for mode, share in (("idle", 1.0 - busy), ("user", busy * 0.85), ("system", busy * 0.15)):
            node.cpu_seconds[mode] = node.cpu_seconds.get(mode, 0.0) + share * dt

    def _observe(
        self,
        node: NodeState,
        *,
        service: str,
        track: str,
        n: float,
        median: float,
        sigma: float,
        error_ratio: float,
        inference: bool = True,
    ) -> None:
        s = node.series.setdefault((service, track), Series())
        for i, bound in enumerate(c.LATENCY_BUCKETS):
            s.buckets[i] += n * lognormal_cdf(bound, median, sigma)
        s.count += n
        s.total += n * median * math.exp(sigma * sigma / 2.0)
        ratio = min(1.0, error_ratio)
        s.errors += n * ratio
        if inference:
            s.inference_errors += n * max(0.0, ratio - BASE_TRANSPORT_ERROR)

    def advance(self, now: float, *, max_step: float = MAX_STEP_SECONDS) -> None:
        """Bring every node to `now`: failover arrivals first, then counters."""
        self.process_arrivals(now)
        for node in self.nodes.values():
            self.advance_node(node, now, max_step=max_step)

    def advance_node(self, node: NodeState, now: float, *, max_step: float = MAX_STEP_SECONDS) -> None:
        t = node.last
        # After a long pause (no scrape for hours) coarser steps keep one call bounded in work.
        step = max(max_step, (now - t) / MAX_STEPS_PER_ADVANCE)
        while t < now:
            t1 = min(now, t + step)
            self._step(node, t, t1)
            t = t1
        node.last = max(node.last, now)
        self._gauges(node, now)

    # --- failover -----------------------------------------------------------------------

    def process_arrivals(self, now: float) -> None:
        due = sorted((a for a in self.arrivals if a.at <= now), key=lambda a: (a.at, a.source))
        if not due:
            return
        self.arrivals = [a for a in self.arrivals if a.at > now]
        for arrival in due:
            self._place(arrival.source, arrival.count, arrival.at)

    def _place(self, source_id: str, count: int, at: float) -> None:
        """Reconnecting devices go where the shared failover model sends them: most free slots first, up to
        max_devices, the region first and other regions only when the spec allows (xzctl.spec.failover)."""
        source = self.nodes[source_id]
        up = [n for n in self.nodes.values() if n.up and n.id != source_id]
        loads = [
            # score = free slots and one device costs one slot: most headroom first, ties to the lower index
            NodeLoad(
                n.id, n.region, self.active_sessions(n, at), n.max_devices, n.max_devices, self.headroom(n, at), 1.0
            )
            for n in up
        ]
        same = [i for i, n in enumerate(up) if n.region == source.region]
        other = [i for i, n in enumerate(up) if n.region != source.region]
        leavable = count if may_leave_region(self.fleet, source.spec) else 0
        placement = place(loads, count, leavable=leavable, same=same, other=other)
        for i, n in placement.added.items():
            target = up[i]
            self.advance_node(target, at)  # integrate up to the arrival at the old load
            target.moved_in += n
            self.moved.setdefault(source_id, {}).setdefault(target.id, 0)
            self.moved[source_id][target.id] += n
        if placement.unserved:
            self.disconnected[source_id] = self.disconnected.get(source_id, 0) + placement.unserved

    def _schedule_reconnects(self, node: NodeState, at: float, count: int) -> None:
        lo, hi = self.reconnect_seconds
        per_delay: dict[float, int] = {}
        for i in range(count):
            delay = round(lo + (hi - lo) * unit_noise(self.seed, node.index, int(at), i, 7), 1)
            per_delay[delay] = per_delay.get(delay, 0) + 1
        for delay, n in sorted(per_delay.items()):
            self.arrivals.append(Arrival(at + delay, node.id, n))

    def _return_home(self, node: NodeState) -> None:
        """A recovered node takes its devices back (their next conversation goes home)."""
        for target_id, n in self.moved.pop(node.id, {}).items():
            self.nodes[target_id].moved_in -= n
        self.disconnected.pop(node.id, None)
        self.arrivals = [a for a in self.arrivals if a.source != node.id]

    # --- scenario controls --------------------------------------------------------------

    def node_or_error(self, node_id: Any) -> NodeState:
        if not isinstance(node_id, str) or node_id not in self.nodes:
            raise BadInputError(f"unknown edge node {node_id!r}")
        return self.nodes[node_id]

    def control(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        """Apply one scenario action; raise BadInputError (HTTP 400) on bad input."""
        if not isinstance(action, dict) or not isinstance(action.get("action"), str):
            raise BadInputError('body must be a JSON object with an "action" string')
        name = action["action"]
        handler = self._handlers().get(name)
        if handler is None:
            raise BadInputError(f"unknown action {name!r}; one of: {', '.join(sorted(self._handlers()))}")
        self.advance(now)
        result = handler(action, now)
        for node in self.nodes.values():
            self._gauges(node, now)
        return {"ok": True, "action": name, **result}

    def _handlers(self) -> dict[str, Callable[[dict[str, Any], float], dict[str, Any]]]:
        return {
            "node_down": self._node_down,
            "node_up": self._node_up,
            "set_devices": self._set_devices,
            "image_profile": self._image_profile_action,
            "deploy": self._deploy,
            "metrics_gap": self._metrics_gap,
            "stale": self._stale,
            "reset": self._reset,
            "autoscaling": lambda action, now: self.autoscaler.control(action),
        }

    def _node_down(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        node = self.node_or_error(action.get("node"))
        window = action.get("reconnect_seconds")
        if window is not None:
            if (
                not isinstance(window, list)
                or len(window) != 2
                or not all(isinstance(v, int | float) and v >= 0 for v in window)
                or window[0] > window[1]
            ):
                raise BadInputError('"reconnect_seconds" must be [min, max] seconds, 0 <= min <= max')
            self.reconnect_seconds = (float(window[0]), float(window[1]))
        if not node.up:
            return {"node": node.id, "moving": 0}
        moving = self.active_sessions(node, now)
        node.up = False
        node.moved_in = 0
        for targets in self.moved.values():
            # devices that had failed over to this node move on as its own: their first home no longer owes them back
            targets.pop(node.id, None)
        self._schedule_reconnects(node, now, moving)
        return {"node": node.id, "moving": moving}

    def _node_up(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        node = self.node_or_error(action.get("node"))
        if not node.up:
            node.up = True
            node.last = now  # a node that was off integrates nothing for its downtime
            self._return_home(node)
        return {"node": node.id}

    def _set_devices(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        if "node" in action:
            node = self.node_or_error(action["node"])
            devices = action.get("devices")
            if not isinstance(devices, int) or isinstance(devices, bool) or not 0 <= devices <= 100_000:
                raise BadInputError('"devices" must be an integer 0..100000')
            node.pinned = devices
            return {"nodes": {node.id: devices}}
        region = action.get("region")
        if region not in self.fleet.regions:
            raise BadInputError(f'set_devices needs "node" or a known "region"; unknown region {region!r}')
        utilization = action.get("utilization")
        if not isinstance(utilization, int | float) or isinstance(utilization, bool) or not 0 <= utilization <= 10:
            raise BadInputError('"utilization" must be a number 0..10 (share of each node\'s max_devices)')
        pinned: dict[str, int] = {}
        for node in self.nodes.values():
            if node.region == region:
                node.pinned = round(utilization * node.max_devices)
                pinned[node.id] = node.pinned
        return {"nodes": pinned}

    def _image_profile_action(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        image = action.get("image")
        if not isinstance(image, str) or not image:
            raise BadInputError('"image" must be an image reference')
        factor = action.get("latency_factor", 1.0)
        error_rate = action.get("error_rate", 0.0)
        if not isinstance(factor, int | float) or not 0.01 <= factor <= 100:
            raise BadInputError('"latency_factor" must be a number 0.01..100')
        if not isinstance(error_rate, int | float) or not 0 <= error_rate <= 1:
            raise BadInputError('"error_rate" must be a number 0..1')
        self.profiles[image] = ImageProfile(float(factor), float(error_rate))
        return {"image": image}

    def _deploy(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        node = self.node_or_error(action.get("node"))
        service = action.get("service")
        if service not in node.images:
            raise BadInputError(f"unknown service {service!r} on {node.id}; one of: {', '.join(sorted(node.images))}")
        track = action.get("track")
        if track not in c.TRACKS:
            raise BadInputError('"track" must be "stable" or "canary"')
        image = action.get("image")
        if image is not None and (not isinstance(image, str) or not image):
            raise BadInputError('"image" must be an image reference or null')
        if track == "stable" and image is None:
            raise BadInputError("the stable track always runs an image; give one")
        node.images[service][track] = image
        return {"node": node.id, "service": service, "track": track, "image": image}

    def _metrics_gap(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        node = self.node_or_error(action.get("node"))
        seconds = action.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
            raise BadInputError('"seconds" must be a number 0 < s <= 86400')
        node.gap_until = now + float(seconds)
        return {"node": node.id, "until": node.gap_until}

    def _stale(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        node = self.node_or_error(action.get("node"))
        enabled = action.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BadInputError('"enabled" must be true or false')
        node.stale = enabled
        if not enabled:
            node.stale_body = None
        return {"node": node.id, "stale": enabled}

    def _reset(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        """Back to the spec: every node up, nothing pinned, spec images; counters keep counting."""
        self.profiles.clear()
        self.arrivals.clear()
        self.moved.clear()
        self.disconnected.clear()
        self.reconnect_seconds = (2.0, 8.0)
        for node in self.nodes.values():
            if not node.up:
                node.last = now
            node.up = True
            node.pinned = None
            node.moved_in = 0
            node.gap_until = 0.0
            node.stale = False
            node.stale_body = None
            node.images = spec_images(node.spec)
            node.backlog.clear()
        return {}

    # --- views --------------------------------------------------------------------------

    def state(self, now: float) -> dict[str, Any]:
        nodes = {
            n.id: {
                "region": n.region,
                "devices": n.active,
                "max_devices": n.max_devices,
                "up": n.up,
                "metrics": "stale" if n.stale else ("gap" if n.gap_until > now else ("down" if not n.up else "ok")),
                "images": {svc: dict(tracks) for svc, tracks in n.images.items()},
            }
            for n in self.nodes.values()
        }
        return {
            "time": now,
            "seed": self.seed,
            "nodes": nodes,
            "pending_reconnects": sum(a.count for a in self.arrivals),
            "disconnected": dict(self.disconnected),
            "replicas": self.autoscaler.state(),
        }
