"""Check the images a fleet spec references against the catalog lock."""

from __future__ import annotations

from dataclasses import dataclass, field

from xzctl.errors import BadInputError, NotFoundError
from xzctl.images.catalog import CATALOG_SERVICES, DIGEST, Catalog, ImageRef
from xzctl.spec.load import format_path
from xzctl.spec.models import Environment, Fleet
from xzctl.spec.validate import all_images


@dataclass
class Finding:
    """One image reference of the spec (deduplicated: `places` lists every spec path that uses it)."""

    image: str
    service: str
    status: str  # ok | error | external (not built here, the lock says where it comes from: redis, the edge LLM)
    message: str
    fix: str = ""
    places: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    environment: str
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "error"]


def _service_of(path: tuple[str | int, ...]) -> str:
    # edge paths end in ("services", <service>, "image"); cloud paths name their section instead
    if len(path) >= 3 and path[-3] == "services":
        return str(path[-2])
    return "cloud:" + str(path[1] if len(path) > 1 else path[0])


def check_reference(catalog: Catalog, ref: str, service: str, *, production: bool, model: str | None = None) -> str:
    """Raise BadInputError unless `ref` may run as `service`; return a one-line description of the release."""
    parsed = ImageRef.parse(ref)
    if parsed.digest is not None and not DIGEST.match(parsed.digest):
        raise BadInputError(f"image {ref!r}: digest {parsed.digest!r} is not sha256:<64 hex digits>")
    if production and parsed.digest is None:
        raise BadInputError(
            f"image {ref!r} is not pinned by digest, which production requires",
            hint="use the digest from: xzctl images show NAME",
        )
    if service not in CATALOG_SERVICES:
        source = catalog.external_source(ref)
        if source is None:
            raise BadInputError(
                f"image {ref!r} is not built here and the lock does not mark it external",
                hint=f"list its repository under `external:` in {catalog.root.name}/catalog.lock.yaml with its source",
            )
        return f"external: {source}"
    try:
        image, release = catalog.resolve(ref)
    except NotFoundError as exc:
        expected = catalog.for_service(service)
        latest = expected.latest() if expected else None
        if expected is None or latest is None:
            raise
        raise NotFoundError(exc.message, hint=f"use {expected.pinned(latest)}") from None
    if release.built is None:
        raise BadInputError(
            f"image {ref!r}: the lock has no build record for {image.info.name} {release.version}, so no build here "
            "produced its digest",
            hint=f"xzctl images build {image.info.name} --version NEW_VERSION",
        )
    if image.info.service != service:
        raise BadInputError(f"image {ref!r} is the {image.info.service} image, not a {service} image")
    if model is not None and model != image.info.model.name:
        raise BadInputError(
            f"the spec runs model {model!r} with {ref!r}, which serves {image.info.model.name!r}",
            hint=f"set model: {image.info.model.name} or use the image of that model",
        )
    return f"{image.info.name} {release.version} released {release.released}"


def verify_fleet(fleet: Fleet, catalog: Catalog) -> VerifyReport:
    """Every image of the spec, judged once per (image, service), with every place that uses it."""
    production = fleet.metadata.environment is Environment.PRODUCTION
    models: dict[tuple[str, str], str] = {}
    for node in fleet.edge_nodes():
        for name, svc in node.services.inference().items():
            models[(svc.image, name)] = svc.model
    by_key: dict[tuple[str, str], Finding] = {}
    for path, ref in all_images(fleet):
        service = _service_of(path)
        key = (ref, service)
        if key not in by_key:
            try:
                what = check_reference(catalog, ref, service, production=production, model=models.get(key))
                status = "ok" if service in CATALOG_SERVICES else "external"
                by_key[key] = Finding(ref, service, status, what)
            except BadInputError as exc:
                by_key[key] = Finding(ref, service, "error", exc.message, exc.hint or "")
        by_key[key].places.append(format_path(path))
    return VerifyReport(fleet.metadata.environment.value, list(by_key.values()))
