"""What the edge builders share: labels, the renderer's inputs, names, ports and env helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xzctl import service_contract as sc
from xzctl.manifests import k8s
from xzctl.manifests.k8s import NODE_LABEL, REGION_LABEL, TRACK_LABEL, Obj
from xzctl.spec.models import EdgeNode

SERVICE_LABEL = "xiaozhi.io/service"
JOB_LABEL = "xiaozhi.io/job"
SERVER_HOME = "/opt/xiaozhi-esp32-server"
SENSEVOICE_MODEL = "models/SenseVoiceSmall/model.pt"
METRICS_PORT = 9090
NODE_CONFIG_KEY = "node.yaml"
SERVER_CONFIG_KEY = "server.config.yaml"

PodFor = Callable[[str, str], Obj]


@dataclass(frozen=True)
class RegionInputs:
    """What the renderer and the alert rules give the builder for one region."""

    node_files: Mapping[str, tuple[str, str]]  # edge node id -> (node.yaml, xiaozhi server override)
    secret_envs: Mapping[str, str]  # spec secret field -> env var its placeholder in the override names
    fill_secrets_script: str  # python -c SCRIPT SRC DEST: fills the placeholders from the env
    service_ports: Mapping[str, int]  # service -> in-cluster port (vad, asr, tts, llm, cache, coordinator)
    rule_groups: list[Obj]


def k8s_name(service: str) -> str:
    return service.replace("_", "-")


def labels(node: EdgeNode, service: str, track: str | None = None) -> dict[str, str]:
    extra = {REGION_LABEL: node.region, NODE_LABEL: node.id, SERVICE_LABEL: service}
    if track:
        extra[TRACK_LABEL] = track
    return k8s.labels(k8s_name(service), extra=extra)


def selector(node: EdgeNode, service: str, track: str | None = None) -> dict[str, str]:
    sel = {NODE_LABEL: node.id, SERVICE_LABEL: service}
    if track:
        sel[TRACK_LABEL] = track
    return sel


IMAGE_ENV = sc.IMAGE_ENV  # the main container's image (the metrics' image label); how readers find that container


def common_env(track: str, image: str) -> list[Obj]:
    # The metrics' track and image labels, in the names the services read; region and node come from the scrape's
    # relabelling (the ServiceMonitor), so a series never carries them twice.
    return env_values({sc.TRACK_ENV: track, sc.IMAGE_ENV: image})


def env_values(values: Mapping[str, Any]) -> list[Obj]:
    return [{"name": k, "value": str(v).lower() if isinstance(v, bool) else str(v)} for k, v in values.items()]
