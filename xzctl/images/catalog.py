"""The inference image catalog: what each image is (image.yaml) and which versions are released (the lock).

Images are built and pushed by the image pipeline; xzctl only reads `inference_images/`. The lock is the
authority on what may run: a reference is acceptable when its repository is a catalog image, its tag is a
released (not yanked) version, and its digest, when given, is the one the pipeline recorded for that version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xzctl import input_path
from xzctl import service_contract as sc
from xzctl.errors import BadInputError, NotFoundError
from xzctl.spec.load import SAFE_LOADER

CATALOG_ENV = "XZCTL_CATALOG"
LOCK_FILE = "catalog.lock.yaml"
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
SEMVER = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
# Services of an edge node whose image must come from the catalog (ImagePins service names).
CATALOG_SERVICES = ("vad", "asr", "tts", "xiaozhi_server", "coordinator")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelInfo(_Strict):
    name: str = Field(min_length=1)
    source: str = Field(min_length=1)
    format: str = Field(min_length=1)
    precision: str = Field(min_length=1)


class StreamingInfo(_Strict):
    chunk_samples: Annotated[int, Field(gt=0)]
    overlap_samples: Annotated[int, Field(ge=0)]
    sample_rate: Annotated[int, Field(gt=0)]


class ResourceProfile(_Strict):
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    gpu: Annotated[int, Field(ge=0, le=8)] = 0


class Readiness(_Strict):
    path: str = Field(pattern=r"^/")
    port: Annotated[int, Field(ge=1, le=65535)]
    condition: str = Field(min_length=1, description="what 'ready' means: the model is loaded and warmed up")
    timeout_seconds: Annotated[int, Field(gt=0)]


class Throughput(_Strict):
    requests_per_second: Annotated[float, Field(gt=0)]
    p95_ms: Annotated[int, Field(gt=0)]
    realtime_factor: Annotated[float, Field(gt=0)] | None = None
    per: Literal["replica", "node"] = "replica"


class ImageInfo(_Strict):
    """One image.yaml."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    service: Literal["vad", "asr", "tts", "llm", "xiaozhi_server", "coordinator"]
    description: str = Field(min_length=1)
    repository: str = Field(pattern=r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
    version: str = Field(pattern=SEMVER, description="the version the folder's Dockerfile builds")
    model: ModelInfo
    batch_size: Annotated[int, Field(ge=1, le=1024)]
    streaming: StreamingInfo | None = None
    resources: ResourceProfile
    readiness: Readiness
    throughput: Throughput
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # after a deploy, a rollout's analysis ignores this long (caches filling, first batches compiling)
    warmup_seconds: Annotated[int, Field(ge=0, le=3600)] = 0


class BuildRecord(_Strict):
    """What went into a release `xzctl images build` made: its bill of materials."""

    engine: str | None = None
    base: str = Field(pattern=DIGEST.pattern, description="the Debian root file system tarball")
    debian: dict[str, str] = Field(description="every installed Debian package and its version")
    wheels: list[dict[str, str]] = Field(description="name, version and sha256 of every wheel installed")
    model: dict[str, str] | None = None
    layout: str = Field(description="the tag in the state dir's OCI layout")
    inputs: dict[str, str] | None = Field(
        default=None, description="sha256 of every repository file built in (xzctl.images.provenance)"
    )


class Release(_Strict):
    version: str = Field(pattern=SEMVER)
    digest: str = Field(pattern=DIGEST.pattern)
    released: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    yanked: str | None = Field(default=None, min_length=1, description="why the version must not run")
    built: BuildRecord | None = None


class ExternalImage(_Strict):
    """An image this repository does not build, and where it comes from (the spec pins its digest)."""

    repository: str = Field(pattern=r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
    source: str = Field(min_length=1, description="who builds it and where it is published")


class Lock(_Strict):
    api_version: Literal["xzctl.io/v1"] = Field(alias="apiVersion")
    kind: Literal["ImageCatalogLock"]
    images: dict[str, list[Release]]
    external: list[ExternalImage] = []


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference: repository, optional tag, optional digest."""

    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        rest, _, digest = ref.partition("@")
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        # a colon before the last slash is a registry port, not a tag
        if colon > slash:
            repository, tag = rest[:colon], rest[colon + 1 :]
        else:
            repository, tag = rest, None
        if not repository or (tag is not None and not tag) or ("@" in ref and not digest):
            raise BadInputError(f"image reference {ref!r} is malformed", hint="write registry/repo:tag[@sha256:...]")
        return cls(repository, tag, digest or None)

    def __str__(self) -> str:
        text = self.repository + (f":{self.tag}" if self.tag else "")
        return text + (f"@{self.digest}" if self.digest else "")


@dataclass(frozen=True)
class CatalogImage:
    info: ImageInfo
    releases: tuple[Release, ...]

    def release(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)

    def latest(self) -> Release | None:
        live = [r for r in self.releases if r.yanked is None]
        return max(live, key=lambda r: _version_key(r.version)) if live else None

    def pinned(self, release: Release) -> str:
        """The reference a production spec writes: tag for people, digest for the runtime."""
        return f"{self.info.repository}:{release.version}@{release.digest}"


@dataclass(frozen=True)
class Catalog:
    root: Path
    images: dict[str, CatalogImage]
    external: tuple[ExternalImage, ...] = ()

    def by_digest(self, ref: str) -> str:
        """`ref` as a container runtime should pull it: a released catalog tag gets the lock's digest
        (`repo:tag@sha256:...`); a reference with a digest, or one the lock has no release for, is returned as it
        is (`xzctl images verify` judges those)."""
        parsed = ImageRef.parse(ref)
        image = self.by_repository(parsed.repository)
        release = image.release(parsed.tag) if image is not None and parsed.tag is not None else None
        if parsed.digest is not None or image is None or release is None or release.built is None:
            return ref
        return image.pinned(release)

    def external_source(self, ref: str) -> str | None:
        """Where an image not built here comes from, None when the lock does not mark it external."""
        repository = ImageRef.parse(ref).repository
        return next((e.source for e in self.external if e.repository == repository), None)

    def get(self, name: str) -> CatalogImage:
        try:
            return self.images[name]
        except KeyError:
            known = ", ".join(sorted(self.images))
            raise NotFoundError(f"no image {name!r} in the catalog {self.root}", hint=f"known: {known}") from None

    def by_repository(self, repository: str) -> CatalogImage | None:
        return next((i for i in self.images.values() if i.info.repository == repository), None)

    def for_service(self, service: str) -> CatalogImage | None:
        return next((i for i in self.images.values() if i.info.service == service), None)

    def resolve(self, ref: str) -> tuple[CatalogImage, Release]:
        """The catalog image and release `ref` names, or BadInputError saying exactly what is wrong."""
        parsed = ImageRef.parse(ref)
        image = self.by_repository(parsed.repository)
        if image is None:
            raise NotFoundError(
                f"image {ref!r} is not a catalog image (repository {parsed.repository} is not in {self.root})",
                hint="use a repository listed by: xzctl images list",
            )
        if parsed.digest is not None and not DIGEST.match(parsed.digest):
            raise BadInputError(f"image {ref!r}: digest {parsed.digest!r} is not sha256:<64 hex digits>")
        if parsed.tag is None:
            release = next((r for r in image.releases if r.digest == parsed.digest), None)
            if release is None:
                raise BadInputError(
                    f"image {ref!r}: digest is not a released version of {image.info.name}",
                    hint=f"see: xzctl images show {image.info.name}",
                )
        else:
            found = image.release(parsed.tag)
            if found is None:
                versions = ", ".join(r.version for r in image.releases)
                raise BadInputError(
                    f"image {ref!r}: {parsed.tag!r} is not a released version of {image.info.name}",
                    hint=f"released: {versions}"
                    if versions
                    else f"no build here produced any {image.info.name} image (see inference_images/README.md)",
                )
            release = found
            if parsed.digest is not None and parsed.digest != release.digest:
                raise BadInputError(
                    f"image {ref!r}: digest does not match the lock for {image.info.name} {release.version}",
                    hint=f"the lock has {release.digest}",
                )
        if release.yanked is not None:
            latest = image.latest()
            raise BadInputError(
                f"image {ref!r}: {image.info.name} {release.version} was yanked: {release.yanked}",
                hint=f"use {image.pinned(latest)}" if latest else "no released version left",
            )
        return image, release


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.split(r"[-+]", version, maxsplit=1)[0].split("."))


def default_catalog_dir(explicit: str | Path | None = None, cwd: Path | None = None) -> Path:
    """--catalog DIR, else $XZCTL_CATALOG, else ./inference_images, else the one shipped with xzctl."""
    return input_path(
        explicit, CATALOG_ENV, "inference_images", lambda d: (d / LOCK_FILE).is_file(), "inference_images", cwd=cwd
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)  # the lock: 0.28 s -> 0.03 s
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file", hint="pass --catalog DIR or set XZCTL_CATALOG") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: YAML error: {exc}".replace("\n", " ")) from None


def _validation_problem(path: Path, exc: ValidationError) -> BadInputError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    more = len(exc.errors()) - 1
    tail = f" (and {more} more)" if more else ""
    return BadInputError(f"{path}: {where}: {first['msg']}{tail}", hint="fix the file; see inference_images/README.md")


def _check_contract(meta: Path, info: ImageInfo) -> None:
    """An image's readiness probe and metrics port are the service contract's: pods would never be Ready else."""
    edge = sc.SERVICES.get(info.service)
    if edge is None:
        return
    said = (info.readiness.path, info.readiness.port, info.metrics_port)
    contract = (edge.ready_path, edge.main.port, edge.main.port if edge.metrics_path else None)
    if said != contract:
        raise BadInputError(
            f"{meta}: readiness {said[0]} on port {said[1]}, metrics port {said[2]} disagree with the service contract",
            hint=f"xzctl/service_contract.py says {contract[0]} on port {contract[1]}, metrics port {contract[2]}",
        )


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Read every <image>/image.yaml and the lock; refuse an inconsistent catalog as a whole."""
    root = default_catalog_dir(directory)
    lock_path = root / LOCK_FILE
    try:
        lock = Lock.model_validate(_read_yaml(lock_path))
    except ValidationError as exc:
        raise _validation_problem(lock_path, exc) from None
    infos: dict[str, ImageInfo] = {}
    for meta in sorted(root.glob("*/image.yaml")):
        try:
            info = ImageInfo.model_validate(_read_yaml(meta))
        except ValidationError as exc:
            raise _validation_problem(meta, exc) from None
        if info.name != meta.parent.name:
            raise BadInputError(f"{meta}: name {info.name!r} differs from its folder {meta.parent.name!r}")
        _check_contract(meta, info)
        if not any((meta.parent / f).is_file() for f in ("Dockerfile", "build.yaml")):
            raise BadInputError(f"{meta.parent}: image has no build.yaml (nor a Dockerfile)")
        infos[info.name] = info
    unknown = sorted(set(lock.images) - set(infos))
    if unknown:
        raise BadInputError(f"{lock_path}: lock pins {', '.join(unknown)} but no such image folder exists")
    images: dict[str, CatalogImage] = {}
    for name, info in infos.items():
        releases = tuple(lock.images.get(name, []))
        versions = [r.version for r in releases]
        if len(set(versions)) != len(versions):
            raise BadInputError(f"{lock_path}: {name} lists a version twice")
        images[name] = CatalogImage(info, releases)
    return Catalog(root, images, tuple(lock.external))
