"""The HTTP side every service shares: /ready after a real warm-up, /metrics, bounded request bodies, accounting."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from xz_inference.metrics import Registry
from xzctl import service_contract as sc
from xzctl.metrics import contract as c

MAX_BODY = 8 * 1024 * 1024  # 8 MiB: four minutes of 16 kHz PCM16, far above one utterance
SOCKET_TIMEOUT = 30.0


class RequestError(Exception):
    """A bad request (HTTP 400): counted as an error, not as an inference failure."""


@dataclass
class Request:
    body: bytes
    query: dict[str, str]
    content_type: str


@dataclass
class Response:
    body: bytes
    content_type: str = "application/json"
    status: int = 200

    @classmethod
    def json(cls, data: object, status: int = 200) -> Response:
        return cls(json.dumps(data, ensure_ascii=False).encode(), "application/json", status)


Handler = Callable[[Request], Response]


class Service:
    """One model behind one lock: `load` then `warm_up` run once in the background; `/ready` waits for both."""

    name = "service"

    def __init__(self) -> None:
        env = os.environ
        base = {
            c.SERVICE: self.name,
            c.TRACK: env.get(sc.TRACK_ENV, "stable"),
            c.IMAGE: env.get(sc.IMAGE_ENV, f"local/{self.name}"),
        }
        # region/node only when set: where Prometheus scrapes with target labels (k8s, the sandbox) they come from there
        placed = ((c.REGION, sc.REGION_ENV), (c.NODE, sc.NODE_ENV))
        base.update({label: env[var] for label, var in placed if var in env})
        self.registry = Registry(base)
        # every series at 0 from the start: a ratio over a series that appears only with the first error is no ratio
        for result in ("ok", "error"):
            self.registry.inc(c.REQUESTS, 0.0, result=result)
        self.registry.inc(c.INFERENCE_ERRORS, 0.0)
        self.ready = threading.Event()
        self.failed: str | None = None
        self._model_lock = threading.BoundedSemaphore(1)
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self.registry.set(c.QUEUE_SIZE, 0)

    # subclasses: load the model, run one real inference, and name their endpoints
    def load(self) -> None:
        raise NotImplementedError

    def warm_up(self) -> None:
        raise NotImplementedError

    def routes(self) -> dict[str, Handler]:
        raise NotImplementedError

    def start_model(self) -> None:
        """Load and warm up in the background so /metrics answers (and shows the load) while the model loads."""

        def run() -> None:
            started = time.monotonic()
            try:
                self.load()
                self.warm_up()
            except Exception as exc:  # a model that cannot load keeps /ready at 503 with the reason
                self.failed = f"{type(exc).__name__}: {exc}"
                return
            self.registry.set(c.MODEL_LOAD_SECONDS, time.monotonic() - started)
            self.ready.set()

        threading.Thread(target=run, name=f"{self.name}-load", daemon=True).start()

    def allow_parallel(self, requests: int) -> None:
        """Let this many requests hold the model at once (an engine with its own parallel workers); before start."""
        self._model_lock = threading.BoundedSemaphore(max(1, requests))

    def set_queue(self, depth: int) -> None:
        self.registry.set(c.QUEUE_SIZE, depth)

    @contextlib.contextmanager
    def model(self) -> Iterator[None]:
        """Hold the model (one request, or `allow_parallel` many); while a request waits for it, it counts in the
        queue gauge."""
        with self._waiting_lock:
            self._waiting += 1
            self.set_queue(self._waiting)
        with self._model_lock:
            with self._waiting_lock:
                self._waiting -= 1
                self.set_queue(self._waiting)
            yield

    def handle(self, handler: Handler, request: Request) -> Response:
        """Serve one request and account for it in the contract's metrics."""
        started = time.monotonic()
        try:
            response = handler(request)
            result = "ok"
        except RequestError as exc:
            response, result = Response.json({"error": str(exc)}, 400), "error"
        except Exception as exc:  # an inference failure must answer 500 and count, never kill the server
            self.registry.inc(c.INFERENCE_ERRORS)
            response, result = Response.json({"error": f"{type(exc).__name__}: {exc}"}, 500), "error"
        self.registry.observe(c.REQUEST_DURATION, time.monotonic() - started)
        self.registry.inc(c.REQUESTS, result=result)
        return response


def serve(service: Service, host: str, port: int) -> ThreadingHTTPServer:
    """Bind, start the model in the background and return the server (the caller runs serve_forever)."""
    routes = service.routes()
    spec = sc.SERVICES.get(service.name)  # the load generator is no edge service: it only shares the paths
    # the work path is the contract's: a service answering elsewhere must not start (upstream would get 404s)
    if spec is not None and set(routes) != {spec.main.path}:
        raise ValueError(f"{service.name} serves {sorted(routes)}; the service contract says {spec.main.path}")
    metrics_path = spec.metrics_path if spec else sc.METRICS_PATH
    probe_paths = (spec.ready_path, spec.health_path) if spec else (sc.READY_PATH, sc.HEALTH_PATH)

    class _Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # access logs would drown real errors
            return

        def _send(self, response: Response) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == metrics_path:
                self._send(Response(service.registry.render().encode(), "text/plain; version=0.0.4"))
            elif path in probe_paths:
                if service.ready.is_set():
                    self._send(Response.json({"ready": True}))
                else:
                    self._send(Response.json({"ready": False, "failed": service.failed}, 503))
            else:
                self._send(Response.json({"error": "not found"}, 404))

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            handler = routes.get(parts.path)
            if handler is None:
                self._send(Response.json({"error": "not found"}, 404))
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(Response.json({"error": f"body over {MAX_BODY} bytes"}, 413))
                self.close_connection = True
                return
            if not service.ready.is_set():
                self._send(Response.json({"error": "not ready"}, 503))
                self.rfile.read(length)
                return
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            request = Request(self.rfile.read(length), query, self.headers.get("Content-Type", ""))
            self._send(service.handle(handler, request))

    httpd = ThreadingHTTPServer((host, port), _Handler)
    httpd.daemon_threads = True
    service.start_model()
    return httpd


def main(service: Service) -> None:
    host = os.environ.get(sc.HOST_ENV, "0.0.0.0")
    port = sc.SERVICES[service.name].main.port_in(os.environ)
    httpd = serve(service, host, port)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
