"""The fleet spec: one typed model of regions, edge nodes, services, the cloud, KPIs and cost.

Every other part of xzctl (plan, render, stacks, checks, rollout, bootstrap) reads these models and
nothing else. Models forbid unknown keys so that a typo is an error, not a silently ignored setting.
Quantities are Kubernetes quantity strings ("500m", "16Gi") because that is what operators write.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xzctl.spec.quantity import parse_cpu, parse_memory
from xzctl.spec.types import S3_URL, EmailAddress, HostAddress, HttpUrl, LabelText, LocalPath

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
HOSTNAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
FILLED_KEY = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"  # empty in YAML, then the DNS-label key it sits under
NodeId = Annotated[str, Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. bj-edge-01")]
Percent = Annotated[float, Field(gt=0, le=100)]
PositiveInt = Annotated[int, Field(gt=0)]
Money = Annotated[float, Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class Metadata(Strict):
    name: Annotated[str, Field(pattern=DNS_LABEL)]
    environment: Environment = Environment.STAGING


# --- secrets: references only, never values --------------------------------------------------


class SecretRef(Strict):
    """Where a secret comes from at run time. A literal value is refused by design."""

    env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    pulumi_secret: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+$")] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_literal(cls, data: object) -> object:
        if isinstance(data, str | int | float | bytes):
            raise ValueError(
                "a literal secret is refused (it would end up in git and CI logs): "
                "write {env: NAME} or {pulumi_secret: NAME}"
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.pulumi_secret is None):
            raise ValueError("give exactly one of 'env' (an environment variable) or 'pulumi_secret'")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"pulumi-secret:{self.pulumi_secret}"


class Secrets(Strict):
    auth_key: SecretRef = Field(description="xiaozhi server.auth_key, shared by every server behind one OTA URL")
    redis_password: SecretRef | None = None
    backup_credentials: SecretRef | None = None
    k3s_join_token: SecretRef | None = None
    llm_router_key: SecretRef | None = Field(
        default=None,
        description="API key edge servers send to the cloud LLM router; omit for an open in-cluster router",
    )


# --- edge nodes ------------------------------------------------------------------------------


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


class Resources(Strict):
    cpu_request: str = "500m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _cpu(cls, v: str) -> str:
        parse_cpu(v)
        return v

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _mem(cls, v: str) -> str:
        parse_memory(v)
        return v

    @model_validator(mode="after")
    def _request_le_limit(self) -> Resources:
        if parse_cpu(self.cpu_request) > parse_cpu(self.cpu_limit):
            raise ValueError(f"cpu_request {self.cpu_request} is above cpu_limit {self.cpu_limit}")
        if parse_memory(self.memory_request) > parse_memory(self.memory_limit):
            raise ValueError(f"memory_request {self.memory_request} is above memory_limit {self.memory_limit}")
        return self


IMAGE_REF = r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
ImageRef = Annotated[str, Field(pattern=IMAGE_REF, description="registry/repo:tag or repo@sha256:digest")]


class ScalingSignal(StrEnum):
    """What the autoscaler holds at `target` per replica (metrics of the contract)."""

    QUEUE_DEPTH = "queue_depth"  # requests waiting, per replica
    P95_LATENCY = "p95_latency"  # p95 latency as a share of the service's latency KPI (0.8 = 80 % of it)
    REQUESTS = "requests"  # requests per second, per replica


class Autoscaling(Strict):
    """Replicas move between `min` and `max` to hold `signal` at `target`; `replicas` is the peak sizing."""

    min: Annotated[int, Field(ge=1, le=256)]
    max: Annotated[int, Field(ge=1, le=256)]
    signal: ScalingSignal = ScalingSignal.QUEUE_DEPTH
    target: Annotated[float, Field(gt=0)] = 2.0

    @model_validator(mode="after")
    def _order(self) -> Autoscaling:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _replicas_in_range(replicas: int, autoscaling: Autoscaling | None) -> None:
    # replicas 0 switches the service off, autoscaler included.
    if autoscaling is not None and replicas and not autoscaling.min <= replicas <= autoscaling.max:
        raise ValueError(f"replicas {replicas} is outside autoscaling min {autoscaling.min}..max {autoscaling.max}")


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
        _replicas_in_range(self.replicas, self.autoscaling)
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

    @field_validator("memory_limit", "storage_size")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_memory(v)
        return v


class Coordinator(Strict):
    image: ImageRef
    replicas: Annotated[int, Field(ge=1, le=8)] = 1
    resources: Resources = Resources(cpu_request="2", cpu_limit="4", memory_request="4Gi", memory_limit="8Gi")


class XiaozhiServer(Strict):
    """The upstream xiaozhi-esp32-server process on the node."""

    image: ImageRef
    replicas: Annotated[int, Field(ge=1, le=16)] = 1
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    http_port: Annotated[int, Field(ge=1, le=65535)] = 8003
    websocket_scheme: Literal["ws", "wss"] = "wss"
    resources: Resources = Resources(cpu_request="1", cpu_limit="2", memory_request="2Gi", memory_limit="4Gi")


class EdgeServices(Strict):
    xiaozhi_server: XiaozhiServer
    vad: InferenceService
    asr: AsrService
    tts: TtsService
    cache: CacheService = CacheService()
    coordinator: Coordinator
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


class ChartSource(Strict):
    """Where one Helm chart of a cluster comes from. `repository` (default) fetches it from its chart repository
    (`repository`/`version` override xzctl's pins, e.g. a mirror); `local` installs a chart directory or `.tgz` the
    operator vendored (air-gapped sites); `external` means it is installed already: the stack only relies on it."""

    source: Literal["repository", "local", "external"] = "repository"
    path: LocalPath | None = Field(
        default=None, description="local: chart directory or .tgz (relative: to the working dir)"
    )
    repository: HttpUrl | None = None
    version: Annotated[str, Field(pattern=r"^v?[0-9][0-9A-Za-z.+-]{0,63}$")] | None = None

    @model_validator(mode="after")
    def _path_for_local(self) -> ChartSource:
        if (self.source == "local") != (self.path is not None):
            raise ValueError("a local chart needs `path`, and only a local chart has one")
        return self


class KubernetesTarget(Strict):
    context: LabelText | None = None
    kubeconfig: LocalPath | None = None
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = "xiaozhi"
    charts: dict[Annotated[str, Field(pattern=DNS_LABEL)], ChartSource] = Field(
        default_factory=dict, description="release name (monitoring, elasticsearch, kibana) -> where its chart is"
    )


class Region(Strict):
    name: Annotated[str, Field(pattern=FILLED_KEY)] = Field(default="", description="filled from the key in 'regions'")
    kubernetes: KubernetesTarget = KubernetesTarget()
    cross_region_failover: bool = Field(
        default=True, description="devices of a lost node may move to other regions when this one is full"
    )
    edge_nodes: list[EdgeNode] = Field(min_length=1)

    @property
    def devices(self) -> int:
        return sum(n.devices for n in self.edge_nodes)

    @property
    def max_devices(self) -> int:
        return sum(n.capacity.max_devices for n in self.edge_nodes)


# --- cloud -----------------------------------------------------------------------------------


class LlmModel(Strict):
    name: Annotated[str, Field(pattern=DNS_LABEL)]
    image: ImageRef
    replicas: Annotated[int, Field(ge=0, le=256)]
    gpu_per_replica: Annotated[int, Field(ge=0, le=16)]
    max_batch_size: PositiveInt
    resources: Resources = Resources(cpu_request="8", cpu_limit="16", memory_request="64Gi", memory_limit="128Gi")
    autoscaling: Autoscaling | None = Field(default=None, description="omit for a fixed replica count")

    @model_validator(mode="after")
    def _within(self) -> LlmModel:
        _replicas_in_range(self.replicas, self.autoscaling)
        return self


class LoadBalancing(Strict):
    strategy: Literal["complexity_aware", "round_robin", "least_loaded"] = "complexity_aware"
    fallback_enabled: bool = True
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30


class HierarchicalRouting(Strict):
    edge_model: LabelText = "Qwen-1.8B-Chat"
    cloud_model: LabelText = "Qwen-72B-Chat"
    complexity_threshold: Annotated[float, Field(ge=0, le=1)] = 0.7


class GpuServers(Strict):
    count: Annotated[int, Field(ge=0)]
    gpus_per_server: Annotated[int, Field(ge=0, le=16)]
    model: LabelText = "A100"

    @property
    def gpus(self) -> int:
        return self.count * self.gpus_per_server


class Orchestrator(Strict):
    image: ImageRef
    replicas: Annotated[int, Field(ge=1, le=32)] = 3
    resources: Resources = Resources(cpu_request="4", cpu_limit="8", memory_request="8Gi", memory_limit="16Gi")


class CloudMonitoring(Strict):
    prometheus: bool = True
    grafana: bool = True
    alertmanager: bool = True
    retention_days: PositiveInt = 15


class CloudLogging(Strict):
    elasticsearch: bool = True
    kibana: bool = True
    retention_days: PositiveInt = 30


class Backup(Strict):
    schedule: str = "0 2 * * *"
    retention_days: PositiveInt = 7
    target: Annotated[str, Field(pattern=S3_URL)]
    image: ImageRef = "restic/restic:0.16.4"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        fields = v.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[\d*/,-]+", f) for f in fields):
            raise ValueError("a 5-field cron expression like '0 2 * * *'")
        return v


class Cloud(Strict):
    kubernetes: KubernetesTarget = KubernetesTarget(namespace="xiaozhi-cloud")
    endpoint: HttpUrl = Field(description="the LLM router URL edge nodes call (OpenAI-compatible, /v1)")
    gpu_servers: GpuServers
    llm_models: list[LlmModel] = Field(min_length=1)
    load_balancing: LoadBalancing = LoadBalancing()
    routing: HierarchicalRouting = HierarchicalRouting()
    orchestrator: Orchestrator
    monitoring: CloudMonitoring = CloudMonitoring()
    logging: CloudLogging = CloudLogging()
    backup: Backup

    @property
    def llm_gpu_demand(self) -> int:
        return sum(m.replicas * m.gpu_per_replica for m in self.llm_models)


# --- cache tiers, load balancer --------------------------------------------------------------


class L1Tier(Strict):
    max_entries: PositiveInt = 1000


class L2Tier(Strict):
    ttl_seconds: PositiveInt = 3600


class L3Tier(Strict):
    ttl_seconds: PositiveInt = 86400
    bucket: Annotated[str, Field(pattern=S3_URL)] = "s3://xiaozhi-cache"


class CacheTiers(Strict):
    l1: L1Tier = L1Tier()
    l2: L2Tier = L2Tier()
    l3: L3Tier = L3Tier()

    @model_validator(mode="after")
    def _ttl_order(self) -> CacheTiers:
        if self.l3.ttl_seconds < self.l2.ttl_seconds:
            raise ValueError("l3.ttl_seconds must not be shorter than l2.ttl_seconds (L3 holds the colder data)")
        return self


Weight = Annotated[float, Field(ge=0, le=1)]


class LoadBalancerWeights(Strict):
    cpu: Weight = 0.3
    memory: Weight = 0.2
    gpu: Weight = 0.3
    latency: Weight = 0.1
    queue: Weight = 0.1

    @model_validator(mode="after")
    def _sum_to_one(self) -> LoadBalancerWeights:
        total = self.cpu + self.memory + self.gpu + self.latency + self.queue
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"weights must add up to 1.0, they add up to {total:g}")
        return self


class LoadBalancer(Strict):
    weights: LoadBalancerWeights = LoadBalancerWeights()


# --- KPIs, alerts ----------------------------------------------------------------------------


class LatencyKpi(Strict):
    """p95 targets in milliseconds."""

    vad_ms: PositiveInt = 50
    asr_ms: PositiveInt = 500
    llm_ms: PositiveInt = 2000
    tts_ms: PositiveInt = 300
    end_to_end_ms: PositiveInt = 3000

    def by_service(self) -> dict[str, int]:
        return {
            "vad": self.vad_ms,
            "asr": self.asr_ms,
            "llm": self.llm_ms,
            "tts": self.tts_ms,
            "end_to_end": self.end_to_end_ms,
        }


class ThroughputKpi(Strict):
    concurrent_devices: PositiveInt = 1000
    requests_per_second: PositiveInt = 5000
    audio_realtime_factor: Annotated[float, Field(gt=0)] = 10


class ReliabilityKpi(Strict):
    uptime_percent: Annotated[float, Field(gt=0, lt=100)] = 99.9
    error_rate_percent: Annotated[float, Field(gt=0, le=100)] = 0.1
    failover_seconds: PositiveInt = 30


class EfficiencyKpi(Strict):
    cpu_percent: Percent = 80
    memory_percent: Percent = 85
    gpu_percent: Percent = 90
    cache_hit_percent: Percent = 85


class Kpis(Strict):
    latency: LatencyKpi = LatencyKpi()
    throughput: ThroughputKpi = ThroughputKpi()
    reliability: ReliabilityKpi = ReliabilityKpi()
    efficiency: EfficiencyKpi = EfficiencyKpi()


Duration = Annotated[str, Field(pattern=r"^\d+[smhd]$")]


class HighLatencyAlert(Strict):
    p95_seconds: Annotated[float, Field(gt=0)] | None = None  # default: the end-to-end KPI
    for_: Duration = Field(default="2m", alias="for")


class DeviceOverloadAlert(Strict):
    for_: Duration = Field(default="5m", alias="for")  # threshold: each node's max_devices


class InferenceFailureAlert(Strict):
    error_ratio: Annotated[float, Field(gt=0, le=1)] | None = None  # default: the error-rate KPI
    for_: Duration = Field(default="1m", alias="for")


class CacheHitAlert(Strict):
    min_ratio: Annotated[float, Field(gt=0, le=1)] | None = None  # default: the cache-hit KPI
    for_: Duration = Field(default="10m", alias="for")


class QueueBacklogAlert(Strict):
    max_queue: PositiveInt = 100
    for_: Duration = Field(default="5m", alias="for")


class SlackReceiver(Strict):
    api_url: SecretRef = Field(description="the incoming-webhook URL (it carries the token)")
    channel: Annotated[str, Field(pattern=r"^[#@]?[\w.-]{1,80}$")] | None = None


class BridgeReceiver(Strict):
    """WeChat Work and DingTalk robots take their own message format: Alertmanager posts to a bridge
    (e.g. prometheus-webhook-dingtalk) that holds the robot's URL and token."""

    bridge_url: HttpUrl
    robot_url: SecretRef = Field(description="the robot webhook with its token; given to the bridge only")


class EmailReceiver(Strict):
    to: EmailAddress
    from_: EmailAddress = Field(alias="from")
    smarthost: Annotated[str, Field(pattern=r"^[A-Za-z0-9.-]+:\d{1,5}$")]
    auth_username: LabelText | None = None
    auth_password: SecretRef | None = None


class Receiver(Strict):
    """One place a notification goes: exactly one of webhook, slack, wechat_work, dingtalk, email."""

    webhook: HttpUrl | None = None  # a URL without a token, e.g. the operator's own alert router
    slack: SlackReceiver | None = None
    wechat_work: BridgeReceiver | None = None
    dingtalk: BridgeReceiver | None = None
    email: EmailReceiver | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Receiver:
        given = [k for k in ("webhook", "slack", "wechat_work", "dingtalk", "email") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a receiver is exactly one of webhook, slack, wechat_work, dingtalk, email (got {given})")
        return self


class AlertReceivers(Strict):
    """Where alerts go, per severity: critical pages, warning makes tickets."""

    critical: list[Receiver] = Field(default_factory=list, max_length=20)
    warning: list[Receiver] = Field(default_factory=list, max_length=20)


class Alerts(Strict):
    """Alert thresholds and receivers. Omitted thresholds are derived from the KPIs, which keeps them coherent."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    runbook_base_url: HttpUrl = "https://github.com/xzctl/xzctl/blob/main/runbooks"
    high_latency: HighLatencyAlert = HighLatencyAlert()
    device_overload: DeviceOverloadAlert = DeviceOverloadAlert()
    model_inference_failure: InferenceFailureAlert = InferenceFailureAlert()
    cache_hit_rate_low: CacheHitAlert = CacheHitAlert()
    queue_backlog: QueueBacklogAlert = QueueBacklogAlert()
    receivers: AlertReceivers = AlertReceivers()


# --- cost ------------------------------------------------------------------------------------


class CapexKind(StrEnum):
    EDGE_SERVER = "edge_server"
    CLOUD_GPU_SERVER = "cloud_gpu_server"
    NETWORK = "network"
    STORAGE = "storage"
    OTHER = "other"


class CapexItem(Strict):
    item: LabelText
    kind: CapexKind = CapexKind.OTHER
    quantity: PositiveInt
    unit_price: Money

    @property
    def total(self) -> float:
        return self.quantity * self.unit_price


class OpexItem(Strict):
    item: LabelText
    yearly: Money


class CostThresholds(Strict):
    max_payback_years: Annotated[float, Field(gt=0)] = 3.0
    max_cost_per_device_month: Money = 200.0
    max_idle_share: Annotated[float, Field(ge=0, le=1)] = 0.5


class Cost(Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"
    capex: list[CapexItem] = Field(min_length=1)
    opex_yearly: list[OpexItem]
    revenue_per_device_year: Money
    depreciation_years: Annotated[float, Field(gt=0)] = 3.0
    thresholds: CostThresholds = CostThresholds()

    @property
    def capex_total(self) -> float:
        return sum(i.total for i in self.capex)

    @property
    def opex_total(self) -> float:
        return sum(i.yearly for i in self.opex_yearly)


# --- the fleet -------------------------------------------------------------------------------


class Fleet(Strict):
    api_version: Literal["xzctl.io/v1"] = Field(alias="apiVersion")
    kind: Literal["Fleet"]
    metadata: Metadata
    secrets: Secrets
    node_profiles: dict[Annotated[str, Field(pattern=DNS_LABEL)], NodeProfile] = Field(default_factory=dict)
    regions: dict[Annotated[str, Field(pattern=DNS_LABEL)], Region] = Field(min_length=1)
    cloud: Cloud
    cache_tiers: CacheTiers = CacheTiers()
    load_balancer: LoadBalancer = LoadBalancer()
    kpis: Kpis = Kpis()
    alerts: Alerts = Alerts()
    cost: Cost

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def edge_nodes(self) -> list[EdgeNode]:
        return [n for r in self.regions.values() for n in r.edge_nodes]

    def node(self, node_id: str) -> EdgeNode:
        for n in self.edge_nodes():
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    @property
    def devices(self) -> int:
        return sum(r.devices for r in self.regions.values())
