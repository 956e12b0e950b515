"""The cloud tier of the fleet spec: the LLM router, its GPU servers, models, monitoring, logging and backup."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from xzctl.spec.base import (
    DNS_LABEL,
    Autoscaling,
    ImageRef,
    KubernetesTarget,
    PositiveInt,
    Resources,
    Strict,
    replicas_in_range,
)
from xzctl.spec.types import S3_URL, HttpUrl, LabelText


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
        replicas_in_range(self.replicas, self.autoscaling)
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
