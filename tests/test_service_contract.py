"""The service contract against everything that names a port or a path: the rendered server override, the edge and
cloud manifests, the image catalog and build config. (Each service's own answers: tests/inference_images.)"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.fixtures.manifests import find
from tests.fixtures.upstream import upstream_file
from xzctl import service_contract as sc
from xzctl.errors import BadInputError
from xzctl.images import load_catalog
from xzctl.images.assemble import _config_args, _image_env
from xzctl.images.inputs import load_build_spec, stage_package
from xzctl.manifests.cloud import cloud_objects
from xzctl.manifests.pins import ServicePin, spec_pins
from xzctl.provision.objects import target_objects
from xzctl.render import render_node_documents
from xzctl.render.node import PROVIDER_BLOCKS
from xzctl.spec import Fleet
from xzctl.spec.edge import XiaozhiServer

Obj = dict[str, Any]
CATALOG = Path(__file__).resolve().parents[1] / "inference_images"


@pytest.fixture(scope="module")
def beijing(example_fleet: Fleet) -> list[Obj]:
    return target_objects(example_fleet, "beijing").objects()


def _override(fleet: Fleet, node_id: str) -> dict[str, Any]:
    data = yaml.safe_load(render_node_documents(fleet, fleet.node(node_id)).server_config)
    assert isinstance(data, dict)
    return data


def _container(obj: Obj) -> Obj:
    containers: list[Obj] = obj["spec"]["template"]["spec"]["containers"]
    return containers[0]


def _env(container: Obj) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_the_contract_module_imports_only_the_standard_library() -> None:
    # the images carry a copy of this one file without xzctl's dependencies
    tree = ast.parse(Path(sc.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_every_service_has_distinct_ports_and_named_providers() -> None:
    for edge in sc.SERVICES.values():
        assert len({e.port for e in edge.endpoints}) == len({e.name for e in edge.endpoints}) == len(edge.endpoints)
        for provider in edge.providers:
            assert edge.endpoint(provider.endpoint) in edge.endpoints and provider.keys[0] == "type"
    assert sc.ASR.providers[0].type == "fun_server" and sc.ASR.providers[0].endpoint == "ws"
    assert sc.ASR.endpoint("ws").port_env == sc.ASR_WS_PORT_ENV


@pytest.mark.parametrize(
    "provider", [p for s in sc.SERVICES.values() for p in s.providers], ids=lambda p: f"{p.module}-{p.type}"
)
def test_each_provider_is_upstream_and_reads_every_key_the_contract_renders(provider: sc.Provider) -> None:
    folder = f"core/providers/{provider.module.lower()}"
    name = (
        f"{folder}/{provider.type}/{provider.type}.py" if provider.module == "LLM" else f"{folder}/{provider.type}.py"
    )
    source = upstream_file(name).read_text(encoding="utf-8")
    read = set(re.findall(r"""config(?:\.get\(|\[)["']([a-z_]+)["']""", source))
    assert set(provider.keys) - {"type"} <= read, f"upstream {provider.type} never reads some of {provider.keys}"


@pytest.mark.parametrize(
    ("environ", "port"),
    [({}, 8200), ({"XZ_PORT": "18200"}, 18200), ({"XZ_PORT": ""}, 8200), ({"PORT": "9"}, 8200)],
)
def test_a_service_reads_its_port_from_its_contract_variable(environ: dict[str, str], port: int) -> None:
    assert sc.ASR.main.port_in(environ) == port


def test_port_environment_sets_every_endpoint_and_refuses_unknown_ones() -> None:
    assert sc.ASR.port_environment({"ws": 19000}) == {"XZ_PORT": "8200", "XZ_ASR_WS_PORT": "19000"}
    assert sc.XIAOZHI_SERVER.port_environment() == {}  # its ports are set in its config, not the environment
    with pytest.raises(KeyError, match="grpc"):
        sc.TTS.port_environment({"grpc": 1})


def test_spec_defaults_of_the_server_are_the_contract_ports() -> None:
    # the spec sits below the contract's layer, so it keeps its own defaults: they must agree
    fields = XiaozhiServer.model_fields
    ws, http = sc.XIAOZHI_SERVER.endpoints
    assert (fields["port"].default, fields["http_port"].default) == (ws.port, http.port)


@pytest.mark.parametrize("node_id", ["bj-edge-01", "gz-edge-02"])
def test_rendered_override_reaches_the_services_the_contract_names(example_fleet: Fleet, node_id: str) -> None:
    node, config = example_fleet.node(node_id), _override(example_fleet, node_id)
    namespace = example_fleet.regions[node.region].kubernetes.namespace
    for module, edge in (("ASR", sc.ASR), ("TTS", sc.TTS), ("LLM", sc.LLM)):
        provider = edge.providers[0]
        block = config[module][PROVIDER_BLOCKS[module]]
        assert set(block) == set(provider.keys), f"{module} block keys"
        assert block["type"] == provider.type
    asr = config["ASR"][PROVIDER_BLOCKS["ASR"]]
    assert (asr["host"], asr["port"]) == (f"{node_id}-asr.{namespace}.svc.cluster.local", sc.ASR.endpoint("ws").port)
    tts = config["TTS"][PROVIDER_BLOCKS["TTS"]]
    url = urlsplit(tts["url"])
    assert (url.hostname, url.port, url.path) == (
        f"{node_id}-tts.{namespace}.svc.cluster.local",
        sc.TTS.main.port,
        sc.TTS.main.path,
    )
    assert sc.TTS.audio_out is not None
    assert tts["format"] == tts["params"][sc.TTS_FORMAT_KEY] == sc.TTS.audio_out.encoding
    assert tts["format"] in sc.TTS_FORMATS and tts["params"][sc.TTS_TEXT_KEY] == "{prompt_text}"
    llm = config["LLM"][PROVIDER_BLOCKS["LLM"]]
    assert llm["base_url"] == example_fleet.cloud.endpoint
    server = node.services.xiaozhi_server
    assert (config["server"]["port"], config["server"]["http_port"]) == (server.port, server.http_port)
    assert urlsplit(config["server"]["websocket"]).path == sc.XIAOZHI_SERVER.main.path


@pytest.mark.parametrize("service", ["vad", "asr", "tts", "llm"])
def test_edge_pods_listen_and_answer_probes_where_the_contract_says(beijing: list[Obj], service: str) -> None:
    edge = sc.SERVICES[service]
    ports = [(e.name, e.port) for e in edge.endpoints]
    for name in (f"bj-edge-01-{service}", f"bj-edge-02-{service}"):
        main = _container(find(beijing, "Deployment", name))
        assert [(p["name"], p["containerPort"]) for p in main["ports"]] == ports
        env = _env(main)
        for endpoint in edge.endpoints:
            assert endpoint.port_env is not None and env[endpoint.port_env] == str(endpoint.port)
        if service != "llm":  # only the external LLM images take PORT
            assert "PORT" not in env
        assert main["readinessProbe"]["httpGet"] == {"path": edge.ready_path, "port": edge.main.name}
        assert main["livenessProbe"]["httpGet"] == {"path": edge.health_path, "port": edge.main.name}
        svc = find(beijing, "Service", name)
        assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(n, p, n) for n, p in ports]


def test_the_override_targets_exist_in_the_manifests(example_fleet: Fleet, beijing: list[Obj]) -> None:
    config = _override(example_fleet, "bj-edge-03")
    targets = [
        (config["ASR"][PROVIDER_BLOCKS["ASR"]]["host"], config["ASR"][PROVIDER_BLOCKS["ASR"]]["port"]),
        (urlsplit(config["TTS"][PROVIDER_BLOCKS["TTS"]]["url"]).hostname, sc.TTS.main.port),
    ]
    for host, port in targets:
        assert isinstance(host, str)
        svc = find(beijing, "Service", host.split(".")[0])
        assert port in [p["port"] for p in svc["spec"]["ports"]]
    # and the network policy lets the server reach each of those ports (ASR's WebSocket included)
    policy = find(beijing, "NetworkPolicy", "allow-to-inference")
    allowed = {p["port"] for p in policy["spec"]["ingress"][0]["ports"]}
    assert allowed == {e.name for s in ("vad", "asr", "tts", "llm") for e in sc.SERVICES[s].endpoints}


def test_the_server_pod_and_ingress_follow_the_contract(beijing: list[Obj]) -> None:
    ws, http = sc.XIAOZHI_SERVER.endpoints
    main = _container(find(beijing, "Deployment", "bj-edge-01-xiaozhi-server"))
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [(ws.name, ws.port), (http.name, http.port)]
    assert main["readinessProbe"]["httpGet"] == {"path": sc.XIAOZHI_SERVER.ready_path, "port": ws.name}
    assert main["livenessProbe"]["httpGet"] == {"path": sc.XIAOZHI_SERVER.health_path, "port": ws.name}
    ingress = find(beijing, "Ingress", "bj-edge-01-xiaozhi-server")
    paths = {p["path"]: p["backend"]["service"]["port"]["name"] for p in ingress["spec"]["rules"][0]["http"]["paths"]}
    assert paths[ws.path] == ws.name and paths[http.path] == http.name


def test_cloud_llm_pods_follow_the_contract(example_fleet: Fleet) -> None:
    cloud = cloud_objects(example_fleet)
    for model in example_fleet.cloud.llm_models:
        main = _container(find(cloud, "Deployment", f"llm-{model.name}"))
        assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [(sc.LLM.main.name, sc.LLM.main.port)]
        assert _env(main)["PORT"] == str(sc.LLM.main.port)
        assert main["readinessProbe"]["httpGet"] == {"path": sc.LLM.ready_path, "port": sc.LLM.main.name}
        assert main["livenessProbe"]["httpGet"] == {"path": sc.LLM.health_path, "port": sc.LLM.main.name}
        svc = find(cloud, "Service", f"llm-{model.name}")
        assert [p["port"] for p in svc["spec"]["ports"]] == [sc.LLM.main.port]


@pytest.mark.parametrize("name", sc.INFERENCE)
def test_built_images_listen_on_the_contract_ports(name: str) -> None:
    spec = load_build_spec(CATALOG / name)
    env = _image_env(name, spec, None, f"repo/{name}:1.0.0", None)
    assert {k: env[k] for k in sc.SERVICES[name].port_environment()} == sc.SERVICES[name].port_environment()
    args = _config_args(name, name, "1.0.0", spec, env)
    exposed = sorted(int(args[i + 1]) for i, a in enumerate(args) if a == "--port")
    assert exposed == sorted(e.port for e in sc.SERVICES[name].endpoints)
    info = load_catalog(CATALOG).get(name).info
    assert (info.readiness.path, info.readiness.port, info.metrics_port) == (
        sc.SERVICES[name].ready_path,
        sc.SERVICES[name].main.port,
        sc.SERVICES[name].main.port,
    )


def test_images_carry_a_byte_identical_copy_of_the_contract(tmp_path: Path) -> None:
    staged = stage_package(tmp_path / "lib", CATALOG)
    assert (staged / "xzctl" / "service_contract.py").read_bytes() == Path(sc.__file__).read_bytes()


@pytest.mark.parametrize(
    ("field", "value"),
    [("path", "/healthz"), ("port", 8090)],
)
def test_an_image_whose_readiness_disagrees_with_the_contract_is_refused(
    tmp_path: Path, field: str, value: object
) -> None:
    catalog = tmp_path / "inference_images"
    shutil.copytree(CATALOG, catalog, ignore=shutil.ignore_patterns("__pycache__"))
    meta = catalog / "vad" / "image.yaml"
    data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    data["readiness"][field] = value
    meta.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(BadInputError, match="disagree with the service contract"):
        load_catalog(catalog)


# The modules of xz_inference each service runs (server.py is every service's).
SERVICE_MODULES = {"server": ("server",), "vad": ("vad",), "asr": ("asr", "asr_ws", "whisper"), "tts": ("tts",)}


def _service_reads(service: str) -> set[str]:
    """The env names a service's modules of xz_inference read: the contract's `sc.*_ENV` they name (a bare "XZ_"
    literal would be a name outside the contract)."""
    named: set[str] = set()
    for module in SERVICE_MODULES[service]:
        tree = ast.parse((CATALOG / "xz_inference" / f"{module}.py").read_text(encoding="utf-8"))
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and str(n.value).startswith("XZ_")]
        assert not literals, f"{module}.py spells env names outside the contract: {literals}"
        named |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.endswith("_ENV")}
    return {getattr(sc, attr) for attr in named}


@pytest.mark.parametrize("name", sc.INFERENCE)
def test_the_contract_names_exactly_the_env_each_service_reads(name: str) -> None:
    edge = sc.SERVICES[name]
    ports = {e.port_env for e in edge.endpoints if e.port_env}  # read through Endpoint.port_in
    assert _service_reads("server") | _service_reads(name) | ports == set(edge.reads)
    assert set(sc.COMMON_ENV) == _service_reads("server")


@pytest.fixture(scope="module")
def with_canaries(example_fleet: Fleet) -> list[Obj]:
    pins = spec_pins(example_fleet)
    for service in sc.INFERENCE:
        stable = pins.nodes["bj-edge-01"][service].stable
        pins = pins.with_pin("bj-edge-01", service, ServicePin(stable=stable, canary=f"{stable}-canary"))
    return target_objects(example_fleet, "beijing", pins).objects()


@pytest.mark.parametrize("service", sc.INFERENCE)
@pytest.mark.parametrize("track", ["stable", "canary"])
def test_edge_pods_set_all_and_only_what_their_service_reads(
    example_fleet: Fleet, with_canaries: list[Obj], service: str, track: str
) -> None:
    edge, spec = sc.SERVICES[service], getattr(example_fleet.node("bj-edge-01").services, service)
    suffix = "-canary" if track == "canary" else ""
    main = _container(find(with_canaries, "Deployment", f"bj-edge-01-{service}{suffix}"))
    names = [e["name"] for e in main.get("env", [])]
    assert len(names) == len(set(names)) and set(names) <= edge.reads, f"the pod sets what {service} never reads"
    # the pod pulls by digest; the image label keeps the reference it was pinned by
    expected = {sc.TRACK_ENV: track, sc.IMAGE_ENV: main["image"].split("@")[0], **edge.port_environment()}
    expected |= {var: str(getattr(spec, field)) for field, var in edge.spec_env}
    assert _env(main) == expected


@pytest.mark.parametrize("name", sc.INFERENCE)
def test_image_builds_set_only_what_the_service_reads(name: str) -> None:
    spec = load_build_spec(CATALOG / name)
    env = _image_env(name, spec, None, f"repo/{name}:1.0.0", None)
    assert {k for k in env if k.startswith("XZ_")} <= sc.SERVICES[name].reads
    assert env[sc.IMAGE_ENV] == f"repo/{name}:1.0.0"
    if spec.model_variant is not None:
        assert set(spec.model_variant.env) <= sc.SERVICES[name].reads
