"""The documents of one edge node: its `node.yaml` and the xiaozhi server override `data/.config.yaml`.

`render_node_documents` is pure (spec in, text out) so that `xzctl render`, the Pulumi stack's
ConfigMaps and the tests all get the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xzctl import service_contract as sc
from xzctl.errors import NotFoundError
from xzctl.render.engine import render_template
from xzctl.render.secrets import secret_env_name, secret_placeholder
from xzctl.spec.models import EdgeNode, Fleet, InferenceService

NODE_CONFIG_FILE = "node.yaml"
SERVER_CONFIG_FILE = "data/.config.yaml"  # the path the xiaozhi server deep-merges over its config.yaml

ImageRefs = Callable[[str], str]  # the spec's image reference -> the reference a node pulls

# In-cluster (main) ports of the per-node Services: the service contract's, and those of the node's own helpers.
SERVICE_PORTS = {
    **{name: sc.SERVICES[name].main.port for name in (*sc.INFERENCE, "llm")},
    "cache": 6379,
    "coordinator": 8080,
}

# Provider block names in the server override. They must not exist upstream: the server deep-merges,
# and a block sharing an upstream name (e.g. EdgeTTS) would keep upstream keys we did not set.
PROVIDER_BLOCKS = {"VAD": "NodeVAD", "ASR": "NodeASR", "LLM": "CloudRouterLLM", "TTS": "NodeTTS"}


@dataclass(frozen=True)
class NodeDocuments:
    node_id: str
    node_config: str  # node.yaml, the seed's edge_node shape
    server_config: str  # data/.config.yaml, the xiaozhi server override

    def files(self) -> dict[str, str]:
        """Relative path -> content, as written under a node's folder."""
        return {NODE_CONFIG_FILE: self.node_config, SERVER_CONFIG_FILE: self.server_config}


def service_name(node_id: str, service: str) -> str:
    """The Kubernetes Service of one service on one edge node, e.g. bj-edge-01-asr."""
    return f"{node_id}-{service}"


def service_host(fleet: Fleet, node: EdgeNode, service: str) -> str:
    namespace = fleet.regions[node.region].kubernetes.namespace
    return f"{service_name(node.id, service)}.{namespace}.svc.cluster.local"


def _inference(fleet: Fleet, node: EdgeNode, name: str, svc: InferenceService, pull: ImageRefs) -> dict[str, Any]:
    return {
        "replicas": svc.replicas,
        "model": svc.model,
        "batch_size": svc.batch_size,
        "image": pull(svc.image),
        "gpu_per_replica": svc.gpu_per_replica,
        "endpoint": f"http://{service_host(fleet, node, name)}:{SERVICE_PORTS[name]}",
    }


def node_context(fleet: Fleet, node: EdgeNode, pull: ImageRefs = str) -> dict[str, Any]:
    """Everything the two templates need, as plain values (the templates only lay them out). `pull` writes an
    image as the node pulls it: the callers pin catalog images by the lock's digest (`Catalog.by_digest`)."""
    s = node.services
    server = s.xiaozhi_server
    http = "https" if server.websocket_scheme == "wss" else "http"
    router_key = fleet.secrets.llm_router_key
    services: dict[str, Any] = {
        # several processes behind the node's Service (L4), each with the same auth key (issue 23)
        "xiaozhi_server": {
            "processes": node.server_processes,
            "image": pull(server.image),
        },
        **{name: _inference(fleet, node, name, svc, pull) for name, svc in s.inference().items()},
    }
    services["asr"]["streaming"] = s.asr.streaming.model_dump()
    services["tts"] |= {"cache_size": s.tts.cache_size, "fallback_voice": s.tts.fallback_voice}
    services["cache"] = {
        "redis_cluster": s.cache.cluster,
        "memory_limit": s.cache.memory_limit,
        "persistence": s.cache.persistence,
        "storage_size": s.cache.storage_size,
        "endpoint": f"redis://{service_host(fleet, node, 'cache')}:{SERVICE_PORTS['cache']}",
    }
    gpu = node.capacity.gpu
    return {
        "fleet": fleet.metadata.name,
        "node": {
            "id": node.id,
            "region": node.region,
            "public_hostname": node.public_hostname,
            "devices": node.devices,
            "websocket_url": node.websocket_url(),
            "ota_url": node.ota_url(),
            "vision_url": f"{http}://{node.public_hostname}/mcp/vision/explain",
            "capacity": {
                "max_devices": node.capacity.max_devices,
                "cpu_cores": node.capacity.cpu_cores,
                "memory_gb": node.capacity.memory_gb,
                "gpu_count": gpu.count,
                "gpu_model": gpu.model,
                "gpu_time_slicing_replicas": gpu.time_slicing_replicas,
            },
            "services": services,
            "networking": {
                "bandwidth_limit": node.networking.bandwidth_limit,
                "latency_target": f"{node.networking.latency_target_ms}ms",
                "failover_enabled": node.networking.failover_enabled,
            },
            "monitoring": node.monitoring.model_dump(),
        },
        "server": {"port": server.port, "http_port": server.http_port},
        "cloud": {"endpoint": fleet.cloud.endpoint, "model": fleet.cloud.routing.cloud_model},
        "auth_key": secret_placeholder(secret_env_name("auth_key", fleet.secrets.auth_key)),
        "auth_key_ref": fleet.secrets.auth_key.describe(),
        "llm_api_key": secret_placeholder(secret_env_name("llm_router_key", router_key)) if router_key else "none",
        "blocks": PROVIDER_BLOCKS,
        "providers": _providers(fleet, node),
    }


def _providers(fleet: Fleet, node: EdgeNode) -> dict[str, Any]:
    """The ASR, TTS and LLM provider blocks' values: each the contract's provider type and the endpoint it reaches."""
    asr, tts, llm = sc.ASR.providers[0], sc.TTS.providers[0], sc.LLM.providers[0]
    tts_endpoint = sc.TTS.endpoint(tts.endpoint)
    tts_url = f"http://{service_host(fleet, node, 'tts')}:{tts_endpoint.port}{tts_endpoint.path}"
    return {
        "ASR": {"type": asr.type, "host": service_host(fleet, node, "asr"), "port": sc.ASR.endpoint(asr.endpoint).port},
        "TTS": {
            "type": tts.type,
            "url": tts_url,
            "text_key": sc.TTS_TEXT_KEY,
            "format_key": sc.TTS_FORMAT_KEY,
            "format": sc.TTS_FORMATS[0],
        },
        "LLM": {"type": llm.type},
    }


def render_node_documents(fleet: Fleet, node: EdgeNode, pull: ImageRefs = str) -> NodeDocuments:
    """The node's node.yaml and xiaozhi server override, rendered from the spec."""
    context = node_context(fleet, node, pull)
    return NodeDocuments(
        node_id=node.id,
        node_config=render_template("node.yaml.j2", context),
        server_config=render_template("xiaozhi-server.config.yaml.j2", context),
    )


def find_node(fleet: Fleet, node_id: str) -> EdgeNode:
    try:
        return fleet.node(node_id)
    except KeyError:
        ids = [n.id for n in fleet.edge_nodes()]
        known = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise NotFoundError(f"no edge node {node_id!r} in the fleet", hint=f"known: {known}") from None


def region_documents(fleet: Fleet, region: str, pull: ImageRefs = str) -> dict[str, str]:
    """Every node of a region as `<node-id>/<file>` -> content."""
    if region not in fleet.regions:
        raise NotFoundError(f"no region {region!r} in the fleet", hint=f"known: {', '.join(fleet.regions)}")
    files: dict[str, str] = {}
    for node in fleet.regions[region].edge_nodes:
        for path, text in render_node_documents(fleet, node, pull).files().items():
            files[f"{node.id}/{path}"] = text
    return files
