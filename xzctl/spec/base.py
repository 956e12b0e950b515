"""Building blocks of the fleet spec shared by its edge, cloud and alerting parts.

The base model (`Strict`), the common field types, secret references, container resources and images,
autoscaling, and where a cluster and its charts are.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xzctl.spec.quantity import parse_cpu, parse_memory
from xzctl.spec.types import HttpUrl, LabelText, LocalPath

MAX_DNS_LABEL = 63  # characters, what DNS_LABEL allows
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
HOSTNAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
FILLED_KEY = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"  # empty in YAML, then the DNS-label key it sits under
NodeId = Annotated[str, Field(pattern=DNS_LABEL, description="DNS-1123 label, e.g. bj-edge-01")]
Percent = Annotated[float, Field(gt=0, le=100)]
PositiveInt = Annotated[int, Field(gt=0)]
Money = Annotated[float, Field(ge=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def replicas_in_range(replicas: int, autoscaling: Autoscaling | None) -> None:
    # replicas 0 switches the service off, autoscaler included.
    if autoscaling is not None and replicas and not autoscaling.min <= replicas <= autoscaling.max:
        raise ValueError(f"replicas {replicas} is outside autoscaling min {autoscaling.min}..max {autoscaling.max}")


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
    namespace: Annotated[str, Field(pattern=DNS_LABEL)] = Field(
        default="xiaozhi", description="default: xiaozhi-<region> for a region, xiaozhi-cloud for the cloud"
    )
    charts: dict[Annotated[str, Field(pattern=DNS_LABEL)], ChartSource] = Field(
        default_factory=dict, description="release name (monitoring, elasticsearch, kibana) -> where its chart is"
    )
