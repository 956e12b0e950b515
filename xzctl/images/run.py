"""Run an inference service on this machine: from its built image (`buildah run` in a working container of the OCI
layout) or, when no image is built, from the same package with this Python (the model prepared on the host the way
the image build prepares it). Used by the sandbox's real node and the inference benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from xzctl import service_contract as sc
from xzctl.errors import ExternalToolError, NotFoundError, UnknownStateError
from xzctl.images.build import (
    buildah_env,
    cache_dir,
    layout_digest,
    layout_dir,
    load_build_spec,
    model_file,
    run_tool,
    stage_package,
)
from xzctl.images.catalog import default_catalog_dir, load_catalog

READY_POLL = 0.1
IMAGE_SOURCE = "image oci:"  # RunningService.source of a service run from its built image: then LAYOUT:TAG
STOP_TIMEOUT = 10.0


@dataclass
class RunningService:
    name: str
    port: int
    source: str  # "image oci:DIR:TAG" or "package"
    process: subprocess.Popen[bytes]
    container: str | None
    log: Path
    started: float  # time.monotonic() when the service process started
    image: str  # the `image` label its metrics carry
    ports: dict[str, int] = field(default_factory=dict)  # the contract's other endpoints (e.g. asr "ws") -> port
    ready_path: str = sc.READY_PATH  # the contract's (the load generator shares the services' paths)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_url(self) -> str:
        return f"{self.url}{self.ready_path}"

    @property
    def ws_url(self) -> str | None:
        """The ASR's FunASR WebSocket, when the service has that endpoint."""
        return f"ws://127.0.0.1:{self.ports['ws']}" if "ws" in self.ports else None


def _local_lib(name: str, state_dir: Path, catalog_root: Path) -> tuple[Path, dict[str, str]]:
    """The package and the model for running without an image, prepared once under the state dir."""
    spec = load_build_spec(catalog_root / name)
    root = Path(state_dir) / "images" / "local" / name
    lib = root / "lib"
    env: dict[str, str] = dict(spec.env)
    # staged afresh every start: the package under test is the one in the catalog now
    shutil.rmtree(lib, ignore_errors=True)
    lib.parent.mkdir(parents=True, exist_ok=True)
    stage_package(lib, catalog_root)
    if spec.model is not None:
        folder = root / "model"
        final = folder / Path(env.get(sc.MODEL_PATH_ENV, spec.model.path)).name
        if not final.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            source, _ = model_file(spec, None, cache_dir(state_dir), folder)
            if source is not None:
                source.rename(folder / Path(spec.model.path).name)
            for step in spec.steps:
                # a step names files under /models inside the image; here they live in the model folder
                argv = [sys.executable if a == "python3" else a for a in step]
                argv = [str(folder / Path(a).name) if a.startswith("/models/") else a for a in argv]
                run_tool(argv, env={"PYTHONPATH": str(lib)}, what=f"prepare the {name} model")
        env[sc.MODEL_PATH_ENV] = str(final)
    return lib, env


def start_service(
    name: str,
    *,
    port: int,
    state_dir: Path,
    log_dir: Path,
    version: str | None = None,
    env: dict[str, str] | None = None,
    catalog_dir: Path | None = None,
    prefer_image: bool = True,
    ports: dict[str, int] | None = None,
    mounts: dict[str, Path] | None = None,
) -> RunningService:
    """Start service `name` listening on 127.0.0.1:`port`; the image when built (and `prefer_image`), else the package.

    `ports` gives the service's other contract endpoints (endpoint name -> port), set through their port variables;
    one not given listens on its contract default. `mounts`: path in the image -> host folder (the upstream server's
    data/ with its .config.yaml); image only."""
    catalog = load_catalog(catalog_dir or default_catalog_dir())
    image = catalog.get(name)
    version = version or image.info.version
    spec = load_build_spec(catalog.root / name)
    layout, tag = layout_dir(state_dir), f"{name}-{version}"
    label = f"{image.info.repository}:{version}"
    edge = sc.SERVICES[image.info.service]
    others = ports or {}
    port_env = edge.port_environment({**others, edge.main.name: port})
    overrides = {sc.HOST_ENV: "127.0.0.1", **port_env, sc.IMAGE_ENV: label, **(env or {})}
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{port}.log"
    container: str | None = None
    proc_env = dict(os.environ)
    if prefer_image and layout_digest(layout, tag) is not None:
        tool_env = buildah_env()
        container = run_tool(
            ["buildah", "from", "--pull-never", "--name", f"xzctl-{tag}-{port}", f"oci:{layout}:{tag}"],
            env=tool_env,
            what=f"container of {tag}",
        ).strip()
        argv = ["buildah", "run"]
        for key, value in sorted(overrides.items()):
            argv += ["--env", f"{key}={value}"]
        for inside, host in sorted((mounts or {}).items()):
            argv += ["--volume", f"{host}:{inside}"]
        argv += [container, "--", *spec.command]
        proc_env.update(tool_env)
        source = f"{IMAGE_SOURCE}{layout}:{tag}"
    elif spec.module is None:
        raise NotFoundError(f"{layout}: no built image {tag}", hint=f"xzctl images build {name} --version {version}")
    else:
        lib, local_env = _local_lib(name, state_dir, catalog.root)
        proc_env.update(local_env)
        proc_env.update({"PYTHONPATH": str(lib), **overrides})
        argv = [sys.executable, "-m", str(spec.module)]
        source = "package"
    with log.open("ab") as out:
        # its own session, so stopping it stops buildah and the service under it, and nothing else
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=proc_env, start_new_session=True)
    label = overrides[sc.IMAGE_ENV]
    started = time.monotonic()
    return RunningService(name, port, source, process, container, log, started, label, dict(others), edge.ready_path)


def wait_ready(service: RunningService, timeout: float) -> float:
    """Seconds from the service's start to its first 200 on its contract readiness path; UnknownStateError when it
    never gets there."""
    deadline = service.started + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            tail = service.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise ExternalToolError(f"{service.name} exited {service.process.returncode}: {' | '.join(tail)}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(service.ready_url, timeout=1.0) as response,
        ):
            if response.status == 200:
                return time.monotonic() - service.started
        time.sleep(READY_POLL)
    raise UnknownStateError(f"{service.name} on port {service.port} was not ready within {timeout:.0f} s")


def stop_service(service: RunningService) -> None:
    """Stop the service's process group, then remove its working container."""
    if service.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGTERM)
        try:
            service.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=STOP_TIMEOUT)
    if service.container is not None:
        remove_containers([service.container])


def remove_containers(names: list[str]) -> None:
    """Remove working containers this module created (a stopped sandbox's leftovers included) and the image copy
    each one imported from the OCI layout: `buildah from oci:...` copies the image into buildah's storage."""
    env = {**os.environ, **buildah_env()}

    def buildah(*args: str) -> str:
        done = subprocess.run(["buildah", *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    for name in names:
        image = buildah("inspect", "--format", "{{.FromImageID}}", name)
        buildah("rm", name)
        if image:
            buildah("rmi", image)  # refused while another container still uses it, which is right
