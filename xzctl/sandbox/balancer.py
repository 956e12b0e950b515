"""The real node's L4 balancer: Debian's haproxy in TCP mode on loopback, in front of the node's xiaozhi server
processes, as a node's Service is in front of its server pods. Upstream's server is one asyncio process whose
blocking calls stall every session it holds, so a node runs several; each connection goes to the process holding
the fewest (leastconn) and stays on it for its life: a WebSocket session never moves mid-connection. The processes
share the auth key, so the OTA token one process gives opens a WebSocket on any other.

Its ports are the server's contract endpoints (ws, http) at loopback ports of the sandbox; a process that stops
answering its contract's ready path (ws) or OTA path (http) gets no new connections.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from xzctl import service_contract as sc
from xzctl.errors import ExternalToolError
from xzctl.images.run import RunningService, stop_service
from xzctl.sandbox.processes import http_ok, spawn, wait_until

# In the config file's name, so on its command line: how `sandbox down` knows the process is the sandbox's.
MARK = "xzctl-balancer"
IMAGE = "haproxy (Debian)"
READY_TIMEOUT = 30.0
# A device's WebSocket idles between turns (20 s at the sweep's rate); upstream closes an idle one itself, so the
# balancer never cuts a session upstream still holds.
SESSION_TIMEOUT = "1h"
CHECK_PATHS = {
    "ws": sc.XIAOZHI_SERVER.ready_path,
    "http": sc.XIAOZHI_SERVER.endpoint("http").path,
}


def haproxy_config(listen: dict[str, int], servers: dict[str, list[int]]) -> str:
    """haproxy's configuration: per contract endpoint (ws, http), a frontend on `listen[name]` balancing over
    `servers[name]` on 127.0.0.1, each server checked on its endpoint's path."""
    if set(listen) != set(CHECK_PATHS) or set(servers) != set(CHECK_PATHS) or not all(servers.values()):
        raise ValueError(f"the balancer needs ports for {sorted(CHECK_PATHS)} and at least one server each")
    lines = [
        "global",
        "  maxconn 4096",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        f"  timeout client {SESSION_TIMEOUT}",
        f"  timeout server {SESSION_TIMEOUT}",
        f"  timeout tunnel {SESSION_TIMEOUT}",
    ]
    for name, path in CHECK_PATHS.items():
        lines += [
            f"frontend {name}",
            f"  bind 127.0.0.1:{listen[name]}",
            f"  default_backend {name}-servers",
            f"backend {name}-servers",
            "  balance leastconn",
            "  option httpchk",
            # HTTP/1.1 with a Host: upstream's WebSocket server (websockets) refuses haproxy's default HTTP/1.0 check
            f"  http-check send meth GET uri {path} ver HTTP/1.1 hdr Host 127.0.0.1",
            "  http-check expect status 200",
            *(
                f"  server process-{i} 127.0.0.1:{port} check inter 5s fall 2 rise 1"
                for i, port in enumerate(servers[name])
            ),
        ]
    return "\n".join(lines) + "\n"


def start_balancer(listen: dict[str, int], servers: dict[str, list[int]], log_dir: Path) -> RunningService:
    """haproxy on `listen` in front of `servers`, ready once a server answers through each of its ports."""
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        raise ExternalToolError(
            "haproxy is not installed: the real node's server processes need their balancer",
            hint="apt-get install haproxy (scripts/test.sh installs it)",
        )
    config = log_dir / f"{MARK}-{listen['ws']}.cfg"
    config.write_text(haproxy_config(listen, servers), encoding="utf-8")
    log = log_dir / f"{MARK}-{listen['ws']}.log"
    process = spawn([binary, "-db", "-f", str(config)], log)  # -db: in the foreground, stopped by its session
    balancer = RunningService(
        "balancer", listen["ws"], "haproxy", process, None, log, time.monotonic(), IMAGE, ports={"http": listen["http"]}
    )
    urls = [f"http://127.0.0.1:{listen[name]}{path}" for name, path in CHECK_PATHS.items()]
    try:
        wait_until("the balancer", lambda: all(http_ok(u, 2.0) for u in urls), process, log, READY_TIMEOUT)
    except BaseException:
        stop_service(balancer)
        raise
    return balancer
