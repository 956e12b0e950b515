"""Every object of one stack target (an edge region or "cloud"), joining the blocks that make them.

The manifests builder, the node renderer and the alert rules are independent blocks; this is the
one place they meet, used by the Pulumi program and by `xzctl render manifests` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError
from xzctl.images.catalog import Catalog, load_catalog
from xzctl.manifests.cloud import cloud_helm_charts, cloud_secrets, cloud_units
from xzctl.manifests.edge import RegionInputs, edge_helm_charts, edge_region_units, region_of, region_secrets
from xzctl.manifests.k8s import HelmChart, Obj, Unit, secret_name
from xzctl.manifests.pins import ImagePins
from xzctl.spec.models import ChartSource, Fleet, KubernetesTarget, SecretRef

CLOUD = "cloud"


@dataclass
class TargetObjects:
    """What one stack deploys: units of plain objects, Helm charts, and where each Secret comes from."""

    target: str
    namespace: str
    units: list[Unit]
    charts: list[HelmChart] = field(default_factory=list)
    secrets: dict[str, SecretRef] = field(default_factory=dict)  # Secret name -> reference

    def objects(self) -> list[Obj]:
        return [o for u in self.units for o in u.objects]


def region_inputs(fleet: Fleet, region: str) -> RegionInputs:
    from xzctl.alerts.rules import rule_groups
    from xzctl.render.node import SERVICE_PORTS, render_node_documents
    from xzctl.render.secrets import FILL_SECRETS_SCRIPT, PLACEHOLDER_RE, secret_env_name

    files: dict[str, tuple[str, str]] = {}
    placeholders: set[str] = set()
    pinned = load_catalog()
    for node in region_of(fleet, region).edge_nodes:
        docs = render_node_documents(fleet, node, pinned.by_digest)
        files[node.id] = (docs.node_config, docs.server_config)
        placeholders |= set(PLACEHOLDER_RE.findall(docs.server_config))
    # Which spec secret each placeholder in the server override names, so the pod gets exactly those.
    refs = {name: getattr(fleet.secrets, name) for name in type(fleet.secrets).model_fields}
    secret_envs = {
        f: env for f, ref in refs.items() if ref is not None and (env := secret_env_name(f, ref)) in placeholders
    }
    return RegionInputs(
        node_files=files,
        secret_envs=secret_envs,
        fill_secrets_script=FILL_SECRETS_SCRIPT,
        service_ports=SERVICE_PORTS,
        rule_groups=rule_groups(fleet),
    )


def chart_from_source(chart: HelmChart, sources: Mapping[str, ChartSource]) -> HelmChart:
    """`chart` as the cluster's `charts:` setting says to get it (no entry: from its repository, as xzctl pins it)."""
    src = sources.get(chart.name)
    if src is None:
        return chart
    if src.source == "external":
        return replace(chart, source="external", repo="")
    if src.source == "local":
        return replace(chart, source="local", chart=str(Path(src.path or "").absolute()), repo="")
    return replace(chart, repo=src.repository or chart.repo, version=src.version or chart.version)


def with_chart_sources(charts: list[HelmChart], target: KubernetesTarget, where: str) -> list[HelmChart]:
    unknown = sorted(set(target.charts) - {c.name for c in charts})
    if unknown:
        known = ", ".join(c.name for c in charts) or "none"
        raise BadInputError(
            f"{where}.kubernetes.charts names no chart of this cluster: {', '.join(unknown)}",
            hint=f"its charts: {known}",
        )
    return [chart_from_source(c, target.charts) for c in charts]


def target_charts(fleet: Fleet, target: str) -> list[HelmChart]:
    """The Helm charts of `target` (a region or "cloud"), each from where the spec's `charts:` says."""
    if target == CLOUD:
        return with_chart_sources(cloud_helm_charts(fleet), fleet.cloud.kubernetes, "cloud")
    return with_chart_sources(edge_helm_charts(fleet, target), fleet.regions[target].kubernetes, f"regions.{target}")


def target_objects(
    fleet: Fleet, target: str, pins: ImagePins | None = None, cloud_endpoint: Any = None
) -> TargetObjects:
    """The objects of `target`: a region name, or "cloud"."""
    if target == CLOUD:
        return TargetObjects(
            target=CLOUD,
            namespace=fleet.cloud.kubernetes.namespace,
            units=pinned_by_digest(cloud_units(fleet)),
            charts=target_charts(fleet, CLOUD),
            secrets=cloud_secrets(fleet),
        )
    inputs = region_inputs(fleet, target)
    return TargetObjects(
        target=target,
        namespace=fleet.regions[target].kubernetes.namespace,
        units=pinned_by_digest(edge_region_units(fleet, target, inputs, pins, cloud_endpoint)),
        charts=target_charts(fleet, target),
        secrets={secret_name(f): ref for f, ref in region_secrets(fleet, inputs).items()},
    )


def pinned_by_digest(units: list[Unit], catalog: Catalog | None = None) -> list[Unit]:
    """Every container image of `units` pulled by the lock's digest (`repo:tag@sha256:...`), so a node runs the
    bytes that were built and verified, whatever a registry's tag points at later. The spec's reference stays in
    the main container's XZ_IMAGE (the metrics' image label, what pins are read back from)."""
    known = catalog or load_catalog()
    for unit in units:
        for obj in unit.objects:
            for container in _containers(obj):
                pinned = known.by_digest(str(container["image"]))
                if pinned != container["image"]:
                    container["image"] = pinned
                    container["imagePullPolicy"] = "IfNotPresent"  # a digest never moves
    return units


def _containers(obj: Any) -> list[dict[str, Any]]:
    """The containers and init containers of every pod template in `obj` (Deployments, StatefulSets, Jobs,
    CronJobs), found by walking its spec."""
    found: list[dict[str, Any]] = []
    stack: list[Any] = [obj.get("spec")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found += [c for c in value if isinstance(c, dict) and isinstance(c.get("image"), str)]
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack += node
    return found


def targets(fleet: Fleet) -> list[str]:
    return [*fleet.regions, CLOUD]


def chart_sources(fleet: Fleet) -> dict[str, dict[str, str]]:
    """target -> release -> where its chart comes from (`xzctl fleet validate` shows it)."""
    return {t: {c.name: c.where() for c in target_charts(fleet, t)} for t in targets(fleet)}
