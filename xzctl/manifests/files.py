"""Plain-YAML files of a stack's objects, for GitOps users and review (`xzctl render manifests`).

One multi-document file per unit, numbered in apply order (namespaces and secrets first). Secrets
carry no data: each says in its annotations how to create it. Helm charts become values files with
the install command in their header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from xzctl.manifests.k8s import HelmChart, Obj, Unit


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (rendered node.yaml, scripts) as literal blocks, so reviews read them as files."""


def _str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_objects(objects: Sequence[Obj]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def manifest_files(units: Sequence[Unit], charts: Sequence[HelmChart] = ()) -> dict[str, str]:
    """Relative path -> YAML text."""
    files = {f"{i:02d}-{u.kind.lower()}-{u.name}.yaml": dump_objects(u.objects) for i, u in enumerate(units)}
    for chart in charts:
        if chart.source == "external":
            header = f"# Helm values for {chart.name}: {chart.where()}; xzctl does not install it\n"
        else:
            # A local chart is its path; only a repository chart has a version to pin.
            title = f"{chart.chart} {chart.version}" if chart.repo else chart.chart
            source = f"{chart.chart} --repo {chart.repo} --version {chart.version}" if chart.repo else chart.chart
            header = (
                f"# Helm values for {title}; install with:\n"
                f"#   helm upgrade --install {chart.name} {source} "
                f"--namespace {chart.namespace} --values helm/{chart.name}.values.yaml\n"
            )
        files[f"helm/{chart.name}.values.yaml"] = header + yaml.dump(chart.values, Dumper=_Dumper, sort_keys=False)
    return files
