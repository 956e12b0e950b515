"""Alert thresholds and receivers of the fleet spec."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from xzctl.spec.base import PositiveInt, SecretRef, Strict
from xzctl.spec.types import EmailAddress, HttpUrl, LabelText

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
