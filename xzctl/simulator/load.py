"""The load model's parts: constants, stage profiles, deterministic noise and the per-node state.

Everything random comes from a seeded hash (`unit_noise`), so a run is a function of the seed and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from xzctl.metrics import contract as c
from xzctl.spec.models import EdgeNode

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


def end_to_end_owner(images: Mapping[str, object]) -> str:
    """The service whose image labels the end-to-end series: a node's coordinator measures the turns where it runs
    one, else the xiaozhi server carries them."""
    return "coordinator" if "coordinator" in images else "xiaozhi_server"


def spec_images(node: EdgeNode) -> dict[str, dict[str, str | None]]:
    s = node.services
    images: dict[str, str] = {
        "xiaozhi_server": s.xiaozhi_server.image,
        **{name: svc.image for name, svc in s.inference().items()},
    }
    if s.coordinator is not None:
        images["coordinator"] = s.coordinator.image
    return {svc: {"stable": img, "canary": None} for svc, img in images.items()}
