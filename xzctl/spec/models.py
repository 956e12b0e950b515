"""The fleet spec: one typed model of regions, edge nodes, services, the cloud, KPIs and cost.

Every other part of xzctl (plan, render, stacks, checks, rollout, bootstrap) reads these models and
nothing else. Models forbid unknown keys so that a typo is an error, not a silently ignored setting.
Quantities are Kubernetes quantity strings ("500m", "16Gi") because that is what operators write.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from xzctl.spec.alerting import (
    AlertReceivers,
    Alerts,
    BridgeReceiver,
    CacheHitAlert,
    DeviceOverloadAlert,
    Duration,
    EmailReceiver,
    HighLatencyAlert,
    InferenceFailureAlert,
    QueueBacklogAlert,
    Receiver,
    SlackReceiver,
)
from xzctl.spec.base import (
    DNS_LABEL,
    FILLED_KEY,
    HOSTNAME,
    IMAGE_REF,
    Autoscaling,
    ChartSource,
    ImageRef,
    KubernetesTarget,
    Money,
    NodeId,
    Percent,
    PositiveInt,
    Resources,
    ScalingSignal,
    SecretRef,
    Strict,
)
from xzctl.spec.cloud import (
    Backup,
    Cloud,
    CloudLogging,
    CloudMonitoring,
    GpuServers,
    HierarchicalRouting,
    LlmModel,
    LoadBalancing,
    Orchestrator,
)
from xzctl.spec.cost import CapexItem, CapexKind, Cost, CostThresholds, OpexItem
from xzctl.spec.edge import (
    AsrService,
    CacheService,
    Capacity,
    Coordinator,
    EdgeNode,
    EdgeServices,
    GpuSpec,
    Host,
    InferenceService,
    Monitoring,
    Networking,
    NodeProfile,
    Region,
    Streaming,
    TtsService,
    XiaozhiServer,
)
from xzctl.spec.events import KnownEvents
from xzctl.spec.memo import per_spec
from xzctl.spec.types import S3_URL

# Every model of the spec stays importable from here, where the rest of xzctl and the tests look for it.
__all__ = [
    "DNS_LABEL",
    "FILLED_KEY",
    "HOSTNAME",
    "IMAGE_REF",
    "AlertReceivers",
    "Alerts",
    "AsrService",
    "Autoscaling",
    "Backup",
    "BridgeReceiver",
    "CacheHitAlert",
    "CacheService",
    "CacheTiers",
    "Capacity",
    "CapexItem",
    "CapexKind",
    "ChartSource",
    "Cloud",
    "CloudLogging",
    "CloudMonitoring",
    "Coordinator",
    "Cost",
    "CostThresholds",
    "DeviceOverloadAlert",
    "Duration",
    "EdgeNode",
    "EdgeServices",
    "EfficiencyKpi",
    "EmailReceiver",
    "Environment",
    "Fleet",
    "GpuServers",
    "GpuSpec",
    "HierarchicalRouting",
    "HighLatencyAlert",
    "Host",
    "ImageRef",
    "InferenceFailureAlert",
    "InferenceService",
    "Kpis",
    "KubernetesTarget",
    "L1Tier",
    "L2Tier",
    "L3Tier",
    "LatencyKpi",
    "LlmModel",
    "LoadBalancer",
    "LoadBalancerWeights",
    "LoadBalancing",
    "Metadata",
    "Money",
    "Monitoring",
    "Networking",
    "NodeId",
    "NodeProfile",
    "OpexItem",
    "Orchestrator",
    "Percent",
    "PositiveInt",
    "QueueBacklogAlert",
    "Receiver",
    "Region",
    "ReliabilityKpi",
    "Resources",
    "ScalingSignal",
    "SecretRef",
    "Secrets",
    "SlackReceiver",
    "Streaming",
    "Strict",
    "ThroughputKpi",
    "TtsService",
    "Weight",
    "XiaozhiServer",
]


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class Metadata(Strict):
    name: Annotated[str, Field(pattern=DNS_LABEL)]
    environment: Environment = Environment.STAGING


class Secrets(Strict):
    auth_key: SecretRef = Field(description="xiaozhi server.auth_key, shared by every server behind one OTA URL")
    redis_password: SecretRef | None = None
    backup_credentials: SecretRef | None = None
    k3s_join_token: SecretRef | None = None
    llm_router_key: SecretRef | None = Field(
        default=None,
        description="API key edge servers send to the cloud LLM router; omit for an open in-cluster router",
    )


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


# --- KPIs ------------------------------------------------------------------------------------


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
    known_events: KnownEvents = Field(default_factory=list)  # holidays and campaigns, for `capacity forecast`

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def edge_nodes(self) -> list[EdgeNode]:
        return [n for r in self.regions.values() for n in r.edge_nodes]

    def node(self, node_id: str) -> EdgeNode:
        return _nodes_by_id(self)[node_id]

    @property
    def devices(self) -> int:
        return sum(r.devices for r in self.regions.values())


@per_spec
def _nodes_by_id(fleet: Fleet) -> dict[str, EdgeNode]:
    """Edge nodes by id, the first of a duplicated id (validation reports the duplicate)."""
    index: dict[str, EdgeNode] = {}
    for node in fleet.edge_nodes():
        index.setdefault(node.id, node)
    return index
