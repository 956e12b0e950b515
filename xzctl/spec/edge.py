"""Edge nodes of the fleet spec: hardware, the services on a node, node profiles and regions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from xzctl.spec.base import (
    FILLED_KEY,
    HOSTNAME,
    MAX_DNS_LABEL,
    Autoscaling,
    ImageRef,
    KubernetesTarget,
    NodeId,
    PositiveInt,
    Resources,
    Strict,
    replicas_in_range,
)
from xzctl.spec.quantity import parse_memory
from xzctl.spec.types import HostAddress, LabelText, LocalPath

if TYPE_CHECKING:
    from xzctl.spec.measured import CapacityProfile


class Host(Strict):
    address: HostAddress
    ssh_user: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]*$")
    ssh_port: Annotated[int, Field(ge=1, le=65535)] = 22
    ssh_key: LocalPath | None = Field(default=None, description="path of the private key; default: ssh-agent")


class GpuSpec(Strict):
    count: Annotated[int, Field(ge=0, le=16)]
    model: LabelText = "none"
    memory_gb: Annotated[int, Field(ge=0)] = 0
    time_slicing_replicas: Annotated[int, Field(ge=1, le=48)] = Field(
        default=1,
        description="virtual GPU slots per physical GPU (NVIDIA device plugin time-slicing); 1 = off",
    )

    @property
    def slots(self) -> int:
        return self.count * self.time_slicing_replicas


class Capacity(Strict):
    max_devices: PositiveInt
    cpu_cores: PositiveInt
    memory_gb: PositiveInt
    gpu: GpuSpec
    measured: LocalPath | None = Field(
        default=None,
        description="the node class's capacity profile (xzctl loadtest sweep), relative to the spec file",
    )
    # Filled by load_fleet from the profile file: the profile and its path.
    _measured: tuple[CapacityProfile, str] | None = PrivateAttr(default=None)

    def _attached(self) -> tuple[CapacityProfile, str] | None:
        # The private dict read directly: pydantic's attribute fallback costs ~10 us a read, and the plan reads
        # this for every node several times (10,000-node fleets).
        private = self.__pydantic_private__
        return private.get("_measured") if private else None

    @property
    def profile(self) -> CapacityProfile | None:
        """The node class's measured capacity profile; None without one."""
        measured = self._attached()
        return measured[0] if measured else None

    @property
    def measured_devices(self) -> tuple[int, str] | None:
        """Measured devices per node of this class and the profile they come from; None without a profile."""
        measured = self._attached()
        return (measured[0].devices_per_node, measured[1]) if measured else None

    @property
    def carried_devices(self) -> int:
        """The devices the plan counts on one node: max_devices, or fewer where a measurement says so."""
        measured = self.measured_devices
        return min(self.max_devices, measured[0]) if measured else self.max_devices


class InferenceService(Strict):
    """One inference service on an edge node (vad, asr, tts, llm)."""

    replicas: Annotated[int, Field(ge=0, le=64)]
    image: ImageRef
    model: LabelText
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 1
    gpu_per_replica: Annotated[int, Field(ge=0, le=8)] = Field(
        default=0, description="GPU slots per replica (time-sliced slots when the node enables time-slicing)"
    )
    resources: Resources = Resources()
    autoscaling: Autoscaling | None = Field(default=None, description="omit for a fixed replica count")

    @model_validator(mode="after")
    def _within(self) -> InferenceService:
        replicas_in_range(self.replicas, self.autoscaling)
        return self


class Streaming(Strict):
    enabled: bool = True
    chunk_samples: PositiveInt = 1600  # 100 ms at 16 kHz
    overlap_samples: Annotated[int, Field(ge=0)] = 320  # 20 ms
    sample_rate: PositiveInt = 16000

    @model_validator(mode="after")
    def _overlap(self) -> Streaming:
        if self.overlap_samples >= self.chunk_samples:
            raise ValueError("overlap_samples must be smaller than chunk_samples")
        return self


class AsrService(InferenceService):
    streaming: Streaming = Streaming()


class TtsService(InferenceService):
    cache_size: str = "10Gi"
    fallback_voice: LabelText = "local"

    @field_validator("cache_size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_memory(v)
        return v


class CacheService(Strict):
    """Redis on the edge node: the L2 cache tier."""

    image: ImageRef = "redis:7.2"
    memory_limit: str = "16Gi"
    persistence: bool = True
    storage_size: str = "50Gi"
    cluster: bool = False

    @property
    def resources(self) -> Resources:
        """Redis's pod requests: its whole limit, as a cache that is evicted mid-turn is worse than none."""
        return Resources(
            cpu_request="500m", cpu_limit="2", memory_request=self.memory_limit, memory_limit=self.memory_limit
        )

    @field_validator("memory_limit", "storage_size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_memory(v)
        return v


class Coordinator(Strict):
    image: ImageRef
    replicas: Annotated[int, Field(ge=1, le=8)] = 1
    resources: Resources = Resources(cpu_request="2", cpu_limit="4", memory_request="4Gi", memory_limit="8Gi")


# Upstream's server is one asyncio process: a blocking call in it stalls every session it holds (issue 23), so a
# node runs several behind its Service. One per 4 cores leaves the rest to the inference services on the node.
CORES_PER_SERVER_PROCESS = 4
MAX_SERVER_PROCESSES = 16


def default_server_processes(cpu_cores: int) -> int:
    """Server processes of a node that does not say: one per CORES_PER_SERVER_PROCESS cores, at least one."""
    return max(1, min(MAX_SERVER_PROCESSES, cpu_cores // CORES_PER_SERVER_PROCESS))


class XiaozhiServer(Strict):
    """The upstream xiaozhi-esp32-server processes on the node, behind its L4 Service."""

    image: ImageRef
    processes: Annotated[int, Field(ge=1, le=MAX_SERVER_PROCESSES)] | None = Field(
        default=None,
        description="server processes (pods) behind the node's Service, all with the fleet's auth key; "
        f"default: one per {CORES_PER_SERVER_PROCESS} cores",
    )
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8003
    websocket_scheme: Literal["ws", "wss"] = "wss"
    resources: Resources = Resources(cpu_request="1", cpu_limit="2", memory_request="2Gi", memory_limit="4Gi")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: object) -> object:
        if isinstance(data, dict) and "replicas" in data:
            raise ValueError("xiaozhi_server.replicas is now xiaozhi_server.processes (or omit it: one per 4 cores)")
        return data


class EdgeServices(Strict):
    xiaozhi_server: XiaozhiServer
    vad: InferenceService
    asr: AsrService
    tts: TtsService
    cache: CacheService = CacheService()
    # The example fleet runs none: no build here makes a coordinator image (issue 22); a site with its own sets it.
    coordinator: Coordinator | None = None
    llm: InferenceService | None = Field(default=None, description="optional edge LLM for simple prompts")

    def inference(self) -> dict[str, InferenceService]:
        """The GPU/CPU inference services by their metric name (vad, asr, tts, llm)."""
        found: dict[str, InferenceService] = {"vad": self.vad, "asr": self.asr, "tts": self.tts}
        if self.llm is not None:
            found["llm"] = self.llm
        return found


class Networking(Strict):
    bandwidth_limit: str = "1Gbps"
    latency_target_ms: PositiveInt = 50
    failover_enabled: bool = True

    @field_validator("bandwidth_limit")
    @classmethod
    def _bw(cls, v: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[KMG]bps", v):
            raise ValueError("bandwidth like '1Gbps', '500Mbps'")
        return v


class Monitoring(Strict):
    metrics_interval_seconds: Annotated[int, Field(ge=1, le=300)] = 10
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    alerts_enabled: bool = True


class NodeProfile(Strict):
    """Hardware and service layout shared by many edge nodes (like an instance type)."""

    capacity: Capacity
    services: EdgeServices
    networking: Networking = Networking()
    monitoring: Monitoring = Monitoring()

    @property
    def server_processes(self) -> int:
        """The xiaozhi server processes the node runs: the spec's count, else derived from its cores."""
        given = self.services.xiaozhi_server.processes
        return given if given is not None else default_server_processes(self.capacity.cpu_cores)


class EdgeNode(NodeProfile):
    id: NodeId
    region: Annotated[str, Field(pattern=FILLED_KEY)] = Field(
        default="", description="filled from the enclosing region; optional in YAML"
    )
    host: Host
    public_hostname: str = Field(pattern=HOSTNAME, max_length=253, description="DNS name devices connect to")
    devices: Annotated[int, Field(ge=0)] = Field(description="devices assigned to this node")

    def websocket_url(self) -> str:
        s = self.services.xiaozhi_server
        return f"{s.websocket_scheme}://{self.public_hostname}/xiaozhi/v1/"

    def ota_url(self) -> str:
        scheme = "https" if self.services.xiaozhi_server.websocket_scheme == "wss" else "http"
        return f"{scheme}://{self.public_hostname}/xiaozhi/ota/"


REGION_NAMESPACE_PREFIX = "xiaozhi-"


class Region(Strict):
    name: Annotated[str, Field(pattern=FILLED_KEY)] = Field(default="", description="filled from the key in 'regions'")
    kubernetes: KubernetesTarget = KubernetesTarget()
    cross_region_failover: bool = Field(
        default=True, description="devices of a lost node may move to other regions when this one is full"
    )
    edge_nodes: list[EdgeNode] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _own_namespace(cls, data: object) -> object:
        """Without kubernetes.namespace a region gets xiaozhi-<region>: two regions sharing a cluster (a lab, the
        sandbox, a migration) then never overwrite each other's objects, which have the same names."""
        if not isinstance(data, dict) or not data.get("name"):
            return data
        target = data.get("kubernetes")
        target = {} if target is None else target
        if not isinstance(target, dict) or "namespace" in target:
            return data
        namespace = f"{REGION_NAMESPACE_PREFIX}{data['name']}"
        if len(namespace) > MAX_DNS_LABEL:
            raise ValueError(
                f"the default namespace {namespace} is longer than {MAX_DNS_LABEL}: set kubernetes.namespace"
            )
        return {**data, "kubernetes": {**target, "namespace": namespace}}

    @property
    def devices(self) -> int:
        return sum(n.devices for n in self.edge_nodes)

    @property
    def max_devices(self) -> int:
        return sum(n.capacity.max_devices for n in self.edge_nodes)

    @property
    def carried_devices(self) -> int:
        """Device slots the plan counts on: max_devices, or the measured figure where a node's class has one."""
        return sum(n.capacity.carried_devices for n in self.edge_nodes)

    def measured_sources(self) -> list[str]:
        return sorted({n.capacity.measured_devices[1] for n in self.edge_nodes if n.capacity.measured_devices})
