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
from typing import Any

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator import controls
from xzctl.simulator.load import (
    BASE_INFERENCE_ERROR,
    BASE_TRANSPORT_ERROR,
    BASELINE_CPU_SHARE,
    BASELINE_MEMORY_SHARE,
    CACHE_TIER_HIT,
    CANARY_SHARE,
    CLOUD_LLM_SECONDS,
    CPU_MODES,
    E2E_SIGMA,
    IDLE_CLOSE_SECONDS,
    MAX_STEP_SECONDS,
    MAX_STEPS_PER_ADVANCE,
    MODEL_FB_MIB,
    NETWORK_SECONDS,
    NOISE_WINDOW_SECONDS,
    SESSION_CPU_CORES,
    SESSION_MEMORY_BYTES,
    SESSION_SECONDS,
    STAGE_PROFILES,
    TURNS_PER_CONVERSATION,
    Arrival,
    ImageProfile,
    NodeState,
    Series,
    StageLoad,
    diurnal_activity,
    lognormal_cdf,
    spec_images,
    unit_noise,
)
from xzctl.simulator.replicas import ReplicaAutoscaler
from xzctl.spec.failover import NodeLoad, may_leave_region, place
from xzctl.spec.models import EdgeNode, Fleet

# Names importers take from this module since before the split into load/controls.
__all__ = [
    "CPU_MODES",
    "IDLE_CLOSE_SECONDS",
    "MODEL_FB_MIB",
    "SESSION_SECONDS",
    "FleetModel",
    "NodeState",
    "diurnal_activity",
]


TRACK_SALT = {"stable": 0, "canary": 1}


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
        self._gauges(state, start)
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
        # a service the node does not run (no coordinator) changes nothing: the default profile
        images = node.images.get(service, {})
        image = images.get(track) or images.get("stable") or ""
        return image, self.profiles.get(image, ImageProfile())

    def _tracks(self, node: NodeState, service: str) -> list[tuple[str, float]]:
        """(track, traffic share) of a service on the node: the canary track takes 10%."""
        if node.images.get(service, {}).get("canary"):
            return [("stable", 1.0 - CANARY_SHARE), ("canary", CANARY_SHARE)]
        return [("stable", 1.0)]

    def _gauges(self, node: NodeState, t: float) -> None:
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

    @staticmethod
    def _measured_e2e(node: NodeState, active: float) -> float | None:
        """Where the node's class has a measured capacity profile, its median first audio at this many devices
        (the real node's curve), instead of the stage model's guess."""
        profile = node.spec.capacity.profile
        return profile.first_audio_median(active) if profile is not None else None

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
                base = self._measured_e2e(node, active) or e2e_median[track]
                # each track's own noise: a canary and its stable never agree to the millisecond by construction
                noise = self._noise(node, t0, 10 + TRACK_SALT[track])
                median = base * coordinator.latency_factor * server.latency_factor * noise
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

    def schedule_reconnects(self, node: NodeState, at: float, count: int) -> None:
        lo, hi = self.reconnect_seconds
        per_delay: dict[float, int] = {}
        for i in range(count):
            delay = round(lo + (hi - lo) * unit_noise(self.seed, node.index, int(at), i, 7), 1)
            per_delay[delay] = per_delay.get(delay, 0) + 1
        for delay, n in sorted(per_delay.items()):
            self.arrivals.append(Arrival(at + delay, node.id, n))

    def return_home(self, node: NodeState) -> None:
        """A recovered node takes its devices back (their next conversation goes home)."""
        for target_id, n in self.moved.pop(node.id, {}).items():
            self.nodes[target_id].moved_in -= n
        self.disconnected.pop(node.id, None)
        self.arrivals = [a for a in self.arrivals if a.source != node.id]

    # --- scenario controls --------------------------------------------------------------

    def control(self, action: dict[str, Any], now: float) -> dict[str, Any]:
        """Apply one scenario action; raise BadInputError (HTTP 400) on bad input."""
        if not isinstance(action, dict) or not isinstance(action.get("action"), str):
            raise BadInputError('body must be a JSON object with an "action" string')
        name = action["action"]
        handler = controls.HANDLERS.get(name)
        if handler is None:
            raise BadInputError(f"unknown action {name!r}; one of: {', '.join(sorted(controls.HANDLERS))}")
        self.advance(now)
        result = handler(self, action, now)
        for node in self.nodes.values():
            self._gauges(node, now)
        return {"ok": True, "action": name, **result}

    # --- views --------------------------------------------------------------------------

    def state(self, now: float) -> dict[str, Any]:
        nodes = {
            n.id: {
                "region": n.region,
                "devices": n.active,
                "pinned": n.pinned,  # set_devices' value, None while the node follows the load
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
