"""The upstream xiaozhi server on the sandbox's real node, run the way a site runs it: `python app.py` in a copy of
the upstream server directory, upstream's config.yaml beside it and the node's rendered data/.config.yaml (from
xzctl.render) with its addresses pointed at the sandbox's loopback ports: the node's ASR and TTS services and the
LLM stand-in (xzctl.sandbox.llm_standin). VAD runs inside the server (silero), as upstream does.

The rendered providers are kept (ASR `fun_server` on the replica's FunASR WebSocket, TTS `custom` asking for
wav, LLM `openai`: xzctl/service_contract.py); only their addresses change, to the sandbox's loopback ports.
`asr_provider` may name the contract's other ASR provider (`openai` on the replica's HTTP form), which
benchmarks/asr_paths.py measures against the rendered one.

The auth key is made per turn path (`new_auth_key`), registered with xzctl.redact and written only into each
server's copy of the config (mode 0600): status, state and logs never hold it. The several server processes of one
path share it, so the OTA token from one opens a WebSocket on any (the node's balancer picks the process); their
OTA answers name the balancer's WebSocket, not their own port.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from xzctl import redact
from xzctl import service_contract as sc
from xzctl.errors import BadInputError, ExternalToolError, UnknownStateError
from xzctl.images.run import RunningService
from xzctl.render import render_node_documents
from xzctl.sandbox.processes import free_port
from xzctl.spec.models import EdgeNode, Fleet

SOURCE_ENV = "XZCTL_XIAOZHI_SOURCE"
LISTEN_TIMEOUT = 120.0  # upstream listens 3-7 s after start on an idle machine; a loaded one takes longer
POLL = 0.2
WS_PATH = sc.XIAOZHI_SERVER.endpoint("ws").path
OTA_PATH = sc.XIAOZHI_SERVER.endpoint("http").path
TTS_PATH = sc.TTS.main.path
SERVER_IMAGE = "xinnan-tech/xiaozhi-esp32-server (upstream source)"
STANDIN_IMAGE = "sandbox/llm-stand-in"
RENDERED_ASR = sc.ASR.providers[0].type
# not copied: the server's runtime output (top level only: models/ has a data/ of its own) and what the source
# tree carries but the server never reads
TOP_LEVEL_IGNORED = frozenset({"tmp", "data", "music", "performance_tester", "performance_tester.py"})


def _ignore(root: Path) -> Any:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == root
        return {n for n in names if n == "__pycache__" or (top and n in TOP_LEVEL_IGNORED)}

    return ignore


def find_source(source: str | Path | None) -> tuple[Path, Path]:
    """The upstream server directory (flag > $XZCTL_XIAOZHI_SOURCE) and its config.yaml (beside app.py, or one
    level up as in the reference copy)."""
    given = source or os.environ.get(SOURCE_ENV)
    if not given:
        raise BadInputError(
            "the real node's xiaozhi server needs the upstream source",
            hint=f"--xiaozhi-source DIR (main/xiaozhi-server of a checkout of the 0.9.6 tag) or ${SOURCE_ENV}",
        )
    root = Path(given).expanduser().resolve()
    if not (root / "app.py").is_file():
        raise BadInputError(f"{root}: no app.py: not the upstream xiaozhi server directory")
    config = next((p for p in (root / "config.yaml", root.parent / "config.yaml") if p.is_file()), None)
    if config is None:
        raise BadInputError(f"{root}: no config.yaml beside app.py nor in its parent")
    return root, config


def server_override(
    rendered: str,
    *,
    port: int,
    http_port: int,
    asr_ws: str,
    tts: str,
    llm: str,
    auth_key: str,
    asr_provider: str = RENDERED_ASR,
    asr_http: str | None = None,
    front: tuple[int, int] | None = None,
) -> Any:
    """The node's rendered override with the sandbox's addresses and key (see the module's docstring); the ASR
    block is `asr_provider`'s: fun_server on `asr_ws`, or openai on `asr_http` (the replica's HTTP form). `front`:
    the WebSocket and HTTP ports devices reach (the balancer's), which the OTA answer names; default the server's."""
    config = yaml.safe_load(rendered)
    server = config["server"]
    ws_port, front_http = front or (port, http_port)
    server.update(
        ip="127.0.0.1",
        port=port,
        http_port=http_port,
        websocket=f"ws://127.0.0.1:{ws_port}{WS_PATH}",
        vision_explain=f"http://127.0.0.1:{front_http}/mcp/vision/explain",
        auth_key=auth_key,
    )
    modules = config["selected_module"]
    block = config["ASR"][modules["ASR"]]
    provider = next((p for p in sc.ASR.providers if p.type == asr_provider), None)
    if provider is None:
        known = ", ".join(p.type for p in sc.ASR.providers)
        raise BadInputError(f"ASR provider {asr_provider!r} reaches no endpoint of the ASR service", hint=known)
    if provider.endpoint == "ws":
        asr = urlsplit(asr_ws)
        block.update(type=provider.type, host=asr.hostname, port=asr.port, is_ssl=False)
    elif asr_http is None:
        raise BadInputError(f"the {provider.type} ASR provider needs the replica's HTTP URL")
    else:
        path = sc.ASR.endpoint(provider.endpoint).path
        kept = {key: block[key] for key in ("api_key", "output_dir")}
        # model_name is sent as a form field the service ignores: it serves the one model it loaded
        config["ASR"][modules["ASR"]] = {
            "type": provider.type,
            "base_url": f"{asr_http}{path}",
            "model_name": "xzctl-asr",
            **kept,
        }
    config["TTS"][modules["TTS"]].update(url=f"{tts}{TTS_PATH}")
    config["LLM"][modules["LLM"]].update(base_url=f"{llm}/v1", model_name="xzctl-llm-stand-in")
    return config


def new_auth_key() -> str:
    """A server auth key for one turn path, masked in everything xzctl shows or stores."""
    key = secrets.token_hex(24)
    redact.register(key)
    return key


def start_llm_standin(log_dir: Path) -> RunningService:
    port = free_port()
    log = log_dir / f"llm-stand-in-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xzctl.sandbox.llm_standin", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService("llm", port, "stand-in", process, None, log, time.monotonic(), STANDIN_IMAGE)


def start_server(
    fleet: Fleet,
    node: EdgeNode,
    *,
    source: str | Path | None,
    work_dir: Path,
    log_dir: Path,
    asr_ws: str,
    tts: str,
    llm: str,
    auth_key: str,
    asr_provider: str = RENDERED_ASR,
    asr_http: str | None = None,
    front: tuple[int, int] | None = None,
) -> tuple[RunningService, int]:
    """Copy the upstream server into `work_dir`, write its config and start it; (the server, its HTTP/OTA port).
    `front`: the balancer's WebSocket and HTTP ports, when devices reach the server through one."""
    from xzctl.sandbox.xiaozhi_env import server_python

    root, upstream_config = find_source(source)
    python = server_python()
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(root, work_dir, ignore=_ignore(root))  # never write into the upstream source
    shutil.copyfile(upstream_config, work_dir / "config.yaml")
    port, http_port = free_port(), free_port()
    rendered = render_node_documents(fleet, node).server_config
    override = server_override(
        rendered,
        port=port,
        http_port=http_port,
        asr_ws=asr_ws,
        tts=tts,
        llm=llm,
        auth_key=auth_key,
        asr_provider=asr_provider,
        asr_http=asr_http,
        front=front,
    )
    data = work_dir / "data"
    data.mkdir(exist_ok=True)
    target = data / ".config.yaml"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(override, out, allow_unicode=True, sort_keys=False)
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"xiaozhi-server-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(python), "app.py"],
            cwd=work_dir,
            stdin=subprocess.DEVNULL,  # upstream reads stdin (aioconsole) and must not take the terminal's
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService("xiaozhi-server", port, "upstream", process, None, log, time.monotonic(), SERVER_IMAGE), (
        http_port
    )


def wait_listening(server: RunningService, http_port: int, timeout: float = LISTEN_TIMEOUT) -> float:
    """Seconds until both the WebSocket port (GET / answers "Server is running") and the OTA endpoint answer."""
    deadline = server.started + timeout
    urls = [server.url + "/", f"http://127.0.0.1:{http_port}{OTA_PATH}"]
    while urls and time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = " | ".join(server.log.read_text(errors="replace").strip().splitlines()[-3:])
            raise ExternalToolError(f"the xiaozhi server exited {server.process.returncode}: {redact.redact(tail)}")
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(urls[0], timeout=2.0) as r:
            if r.status == 200:
                urls.pop(0)
                continue
        time.sleep(POLL)
    if urls:
        raise UnknownStateError(f"the xiaozhi server did not answer {urls[0]} within {timeout:.0f} s")
    return time.monotonic() - server.started
