"""Rendering an edge node's node.yaml and xiaozhi server override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.golden import assert_golden
from tests.fixtures.upstream import upstream_file
from xzctl import service_contract as sc
from xzctl.errors import NotFoundError
from xzctl.render import region_documents, render_node_documents
from xzctl.render.node import PROVIDER_BLOCKS, SERVER_CONFIG_FILE, find_node
from xzctl.render.secrets import FILL_SECRETS_SCRIPT, PLACEHOLDER_RE
from xzctl.spec import EdgeNode, Fleet

GOLDEN = Path(__file__).parent / "golden"
# Sections whose second-level keys are provider blocks (any name, any keys): the server picks one by selected_module.
PROVIDER_SECTIONS = ("VAD", "ASR", "LLM", "VLLM", "TTS", "Memory", "Intent")
# Read by the server at run time though absent from config.yaml: app.py takes config["server"]["auth_key"]
# (else manager-api.secret, else a random key), which is what signs device tokens.
RUNTIME_KEYS = {("server", "auth_key")}


def _load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _with_services(node: EdgeNode, **changes: Any) -> EdgeNode:
    return node.model_copy(update={"services": node.services.model_copy(update=changes)})


@pytest.mark.parametrize("node_id", ["bj-edge-01", "gz-edge-02"])
def test_documents_match_golden_files(example_fleet: Fleet, node_id: str) -> None:
    docs = render_node_documents(example_fleet, example_fleet.node(node_id))
    assert_golden(GOLDEN / f"{node_id}.node.yaml", docs.node_config)
    assert_golden(GOLDEN / f"{node_id}.config.yaml", docs.server_config)


def test_node_yaml_has_the_seed_shape_and_the_spec_values(example_fleet: Fleet) -> None:
    for node in example_fleet.edge_nodes():
        edge = _load(render_node_documents(example_fleet, node).node_config)["edge_node"]
        assert {"id", "region", "capacity", "services", "networking", "monitoring"} <= set(edge)
        assert (edge["id"], edge["region"], edge["devices"]) == (node.id, node.region, node.devices)
        assert edge["capacity"]["max_devices"] == node.capacity.max_devices
        assert edge["capacity"]["gpu_count"] == node.capacity.gpu.count
        services = edge["services"]
        assert set(services) == {"xiaozhi_server", "vad", "asr", "tts", "llm", "cache"}
        assert services["xiaozhi_server"]["processes"] == node.server_processes == 4  # 16 cores, no count given
        assert services["vad"] == services["vad"] | {"replicas": 4, "model": "silero-vad-quantized", "batch_size": 16}
        assert services["asr"]["streaming"] == {
            "enabled": True,
            "chunk_samples": 1600,
            "overlap_samples": 320,
            "sample_rate": 16000,
        }
        host = f"{node.id}-asr.xiaozhi-{node.region}.svc.cluster.local"
        assert services["asr"]["endpoint"] == f"http://{host}:{sc.ASR.main.port}"
        assert services["tts"]["cache_size"] == "10Gi"
        assert services["cache"]["memory_limit"] == "16Gi"
        assert services["cache"]["persistence"] is True
        assert edge["networking"] == {"bandwidth_limit": "1Gbps", "latency_target": "50ms", "failover_enabled": True}
        assert edge["monitoring"] == {"metrics_interval": 10, "log_level": "INFO", "alerts_enabled": True}


def test_server_override_points_at_the_node_and_the_cloud_router(example_fleet: Fleet) -> None:
    node = example_fleet.node("sh-edge-02")
    config = _load(render_node_documents(example_fleet, node).server_config)
    assert config["server"]["websocket"] == node.websocket_url() == "wss://sh-edge-02.xiaozhi.example/xiaozhi/v1/"
    assert config["server"]["auth"]["enabled"] is True
    assert config["server"]["auth"]["allowed_devices"] == []
    assert config["selected_module"] == PROVIDER_BLOCKS
    asr = config["ASR"][PROVIDER_BLOCKS["ASR"]]
    assert (asr["type"], asr["host"], asr["port"]) == (
        "fun_server",
        "sh-edge-02-asr.xiaozhi-shanghai.svc.cluster.local",
        10095,
    )
    tts = config["TTS"][PROVIDER_BLOCKS["TTS"]]
    assert tts["url"] == "http://sh-edge-02-tts.xiaozhi-shanghai.svc.cluster.local:8300/v1/audio/speech"
    assert (tts["format"], tts["params"]) == ("wav", {"input": "{prompt_text}", "response_format": "wav"})
    llm = config["LLM"][PROVIDER_BLOCKS["LLM"]]
    assert (llm["type"], llm["base_url"]) == ("openai", example_fleet.cloud.endpoint)


def test_auth_key_is_a_placeholder_never_a_value(example_fleet: Fleet) -> None:
    config = _load(render_node_documents(example_fleet, example_fleet.edge_nodes()[0]).server_config)
    key = config["server"]["auth_key"]
    match = PLACEHOLDER_RE.fullmatch(key)
    assert match is not None and match.group(1) == example_fleet.secrets.auth_key.env == "XIAOZHI_AUTH_KEY"
    # The server treats values holding 你 as unset, so an unfilled placeholder is never a usable shared key.
    assert "你" in key


def test_a_pulumi_secret_reference_gets_its_own_variable(example_fleet: Fleet) -> None:
    secrets = example_fleet.secrets.model_copy(
        update={"llm_router_key": example_fleet.secrets.redis_password}  # any pulumi_secret reference
    )
    fleet = example_fleet.model_copy(update={"secrets": secrets})
    config = _load(render_node_documents(fleet, fleet.edge_nodes()[0]).server_config)
    assert config["LLM"][PROVIDER_BLOCKS["LLM"]]["api_key"] == "你的${XZCTL_SECRET_LLM_ROUTER_KEY}"


EVIL = 'evil"\n  injected: true\nserver: {auth: {enabled: false}} # \u2028x: &a *b'


def test_no_value_can_inject_yaml(example_fleet: Fleet) -> None:
    node = example_fleet.edge_nodes()[0]
    evil_node = _with_services(
        node.model_copy(update={"public_hostname": EVIL}),
        tts=node.services.tts.model_copy(update={"model": EVIL, "cache_size": EVIL}),
        asr=node.services.asr.model_copy(update={"model": EVIL}),
    )
    cloud = example_fleet.cloud.model_copy(
        update={"endpoint": EVIL, "routing": example_fleet.cloud.routing.model_copy(update={"cloud_model": EVIL})}
    )
    fleet = example_fleet.model_copy(
        update={"cloud": cloud, "metadata": example_fleet.metadata.model_copy(update={"name": EVIL})}
    )
    docs = render_node_documents(fleet, evil_node)
    good = render_node_documents(example_fleet, node)

    config, node_yaml = _load(docs.server_config), _load(docs.node_config)
    assert config["server"]["auth"] == {"enabled": True, "allowed_devices": []}
    assert config["server"]["websocket"] == f"wss://{EVIL}/xiaozhi/v1/"
    assert config["LLM"][PROVIDER_BLOCKS["LLM"]]["base_url"] == EVIL
    assert config["LLM"][PROVIDER_BLOCKS["LLM"]]["model_name"] == EVIL
    assert node_yaml["edge_node"]["services"]["tts"]["model"] == EVIL
    assert node_yaml["edge_node"]["cloud_endpoint"] == EVIL
    # Same keys as the honest render: nothing added, nothing closed early.
    assert _paths(config) == _paths(_load(good.server_config))
    assert _paths(node_yaml) == _paths(_load(good.node_config))


def _paths(data: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    if not isinstance(data, dict):
        return {prefix}
    out = {prefix}
    for key, value in data.items():
        out |= _paths(value, (*prefix, str(key)))
    return out


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The server's merge of data/.config.yaml over config.yaml (config_loader.merge_configs)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _upstream() -> dict[str, Any]:
    return _load(upstream_file("config.yaml").read_text(encoding="utf-8"))


def test_server_override_is_valid_against_upstream_config(example_fleet: Fleet) -> None:
    upstream = _upstream()
    for node in example_fleet.edge_nodes():
        override = _load(render_node_documents(example_fleet, node).server_config)
        for path in _paths(override) - {()}:
            if path[0] in PROVIDER_SECTIONS and len(path) >= 2:
                continue
            if path in RUNTIME_KEYS:
                continue
            cursor: Any = upstream
            for key in path:
                assert isinstance(cursor, dict) and key in cursor, f"{'.'.join(path)} does not exist upstream"
                cursor = cursor[key]
        merged = _merge(upstream, override)
        for module, block in merged["selected_module"].items():
            assert block in merged[module], f"selected_module.{module} names {block!r}, missing after the merge"
        for module, block in override["selected_module"].items():
            # A new block, not a patch of an upstream one: upstream keys would leak into ours in the merge.
            assert block not in upstream[module], f"{module}.{block} shadows an upstream block"
            assert merged[module][block] == override[module][block]
            upstream_types = {b.get("type") for b in upstream[module].values() if isinstance(b, dict)}
            assert override[module][block]["type"] in upstream_types, f"{module}.{block} has an unknown type"


def _fill(src: Path, dest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "XIAOZHI_AUTH_KEY"}
    return subprocess.run(
        [sys.executable, "-c", FILL_SECRETS_SCRIPT, str(src), str(dest)],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fill_secrets_script_writes_the_key_only_in_the_pod(example_fleet: Fleet, tmp_path: Path) -> None:
    src, dest = tmp_path / "template.yaml", tmp_path / "data" / ".config.yaml"
    dest.parent.mkdir()
    src.write_text(render_node_documents(example_fleet, example_fleet.edge_nodes()[0]).server_config, encoding="utf-8")
    key = 'k"ey: with\nnewline # and 你'
    done = _fill(src, dest, {"XIAOZHI_AUTH_KEY": key})
    assert done.returncode == 0, done.stderr
    filled = _load(dest.read_text(encoding="utf-8"))
    assert filled["server"]["auth_key"] == key
    assert filled["server"]["auth"]["enabled"] is True
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert key not in src.read_text(encoding="utf-8")


def test_fill_secrets_script_fails_closed_without_the_variable(example_fleet: Fleet, tmp_path: Path) -> None:
    src, dest = tmp_path / "template.yaml", tmp_path / "config.yaml"
    src.write_text(render_node_documents(example_fleet, example_fleet.edge_nodes()[0]).server_config, encoding="utf-8")
    for env in ({}, {"XIAOZHI_AUTH_KEY": ""}):
        done = _fill(src, dest, env)
        assert done.returncode == 1
        assert "XIAOZHI_AUTH_KEY" in done.stderr
        assert not dest.exists()
        assert [p.name for p in tmp_path.iterdir()] == ["template.yaml"]


def test_region_documents_hold_every_node_of_the_region(example_fleet: Fleet) -> None:
    files = region_documents(example_fleet, "beijing")
    assert sorted(files) == [f"bj-edge-0{i}/{name}" for i in (1, 2, 3) for name in (SERVER_CONFIG_FILE, "node.yaml")]
    assert _load(files["bj-edge-02/node.yaml"])["edge_node"]["id"] == "bj-edge-02"


def test_unknown_names_are_clear_errors(example_fleet: Fleet) -> None:
    with pytest.raises(NotFoundError, match="no region 'mars'"):
        region_documents(example_fleet, "mars")
    with pytest.raises(NotFoundError, match="no edge node 'bj-edge-99'") as caught:
        find_node(example_fleet, "bj-edge-99")
    assert caught.value.hint is not None and "bj-edge-01" in caught.value.hint
