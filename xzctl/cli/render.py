"""`xzctl render node-config|region|manifests|alerts`: the files the fleet runs on, written all or nothing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import FleetOption, Output, OutputOption, emit, stderr
from xzctl.cli._fleet import load
from xzctl.errors import BadInputError
from xzctl.images.catalog import load_catalog
from xzctl.render import region_documents, render_node_documents, write_tree
from xzctl.render.node import find_node
from xzctl.spec.models import DNS_LABEL, Fleet

app = typer.Typer(
    help="Render node configs, manifests and alert rules from the fleet spec.\n\n"
    "Example: xzctl render region beijing --out ./out/beijing",
    no_args_is_help=True,
)


def _label(value: str, what: str) -> str:
    # Names become folder names: a DNS label can hold no '/' or '..', so checking it here keeps --out inside DIR.
    if not re.fullmatch(DNS_LABEL, value):
        raise BadInputError(
            f"{what} {value!r} is not a DNS label", hint="lowercase letters, digits and '-', like bj-edge-01"
        )
    return value


def _load(fleet: Path | None) -> Fleet:
    loaded = load(fleet)
    if loaded.warnings:  # the details belong to `fleet validate`; here they would bury the result
        stderr.print(
            f"[yellow]warning:[/] the fleet spec has {len(loaded.warnings)} warning(s); see: xzctl fleet validate",
            highlight=False,
        )
    return loaded.fleet


def _written(paths: list[Path], out: Path) -> None:
    sys.stdout.write(f"wrote {len(paths)} file(s) to {out}\n")  # one unwrapped line: scripts grep it


@app.command("node-config")
def node_config(
    node: str = typer.Argument(..., help="Edge node id, e.g. bj-edge-01."),
    fleet: Path | None = FleetOption,
    out: Path | None = typer.Option(
        None, "--out", help="Write DIR/node.yaml and DIR/data/.config.yaml (atomically) instead of printing them."
    ),
    output: Output = OutputOption,
) -> None:
    """Render one edge node's node.yaml and its xiaozhi server override (data/.config.yaml).

    Without --out both are printed: as one YAML stream (table, the default), or with -o json|yaml as
    {"node": ID, "files": {path: text}}. The shared auth key is never written: the override holds a
    placeholder the pod fills from the secret at start-up.

    Example: xzctl render node-config bj-edge-01 --out ./out/bj-edge-01
    """
    node = _label(node, "edge node")
    spec = _load(fleet)
    docs = render_node_documents(spec, find_node(spec, node), load_catalog().by_digest)
    if out is None:

        def stream(_: Console) -> None:
            for path, text in docs.files().items():
                sys.stdout.write(f"--- # {path}\n{text}")

        emit({"node": docs.node_id, "files": docs.files()}, output, stream)
        return
    _written(write_tree(out, docs.files(), what=f"node-config {docs.node_id}"), out)


@app.command()
def region(
    region: str = typer.Argument(..., help="Region name, e.g. beijing."),
    out: Path = typer.Option(..., "--out", help="Folder to write: DIR/<node-id>/node.yaml and .../data/.config.yaml."),
    fleet: Path | None = FleetOption,
) -> None:
    """Render the documents of every edge node of a region into one folder, all or nothing.

    DIR is replaced as a whole (only if empty, new, or written by xzctl render before); on any error
    nothing is written.

    Example: xzctl render region beijing --out ./out/beijing
    """
    region = _label(region, "region")
    files = region_documents(_load(fleet), region, load_catalog().by_digest)
    _written(write_tree(out, files, what=f"region {region}"), out)


@app.command()
def manifests(
    target: str = typer.Argument(..., help="A region (e.g. beijing) or 'cloud'."),
    out: Path = typer.Option(..., "--out", help="Folder to write: one YAML file per unit, helm/*.values.yaml."),
    pins: Path | None = typer.Option(
        None, "--pins", help="Image pins JSON (a rollout step); default: the spec's images."
    ),
    fleet: Path | None = FleetOption,
) -> None:
    """Render the Kubernetes objects of an edge region or of the cloud as plain YAML (GitOps, review).

    The same objects `xzctl provision` applies. Secrets are written without data; each says in its
    annotations how to create it. Helm charts are written as values files. DIR is replaced as a
    whole, all or nothing, as for `xzctl render region`.

    Example: xzctl render manifests beijing --out ./gitops/beijing
    """
    from xzctl.manifests.files import manifest_files
    from xzctl.manifests.pins import load_pins
    from xzctl.provision.objects import target_objects

    target = _label(target, "target")
    objects = target_objects(_load(fleet), target, load_pins(pins) if pins else None)
    files = manifest_files(objects.units, objects.charts)
    _written(write_tree(out, files, what=f"manifests {target}"), out)


@app.command()
def alerts(
    out: Path = typer.Option(
        ..., "--out", help="Folder to write the rules, PrometheusRule, alertmanager.yml, dashboard."
    ),
    namespace: str = typer.Option("monitoring", "--namespace", help="Namespace of the PrometheusRule object."),
    fleet: Path | None = FleetOption,
) -> None:
    """Render alert rules (rules.yml and prometheusrule.yaml), alertmanager.yml and a Grafana dashboard.

    Thresholds come from the spec's `alerts` section, else from its KPIs. Check the result with
    `promtool check rules DIR/rules.yml` and `amtool check-config DIR/alertmanager.yml`.
    DIR is replaced as a whole, all or nothing.

    Example: xzctl render alerts --out ./out/alerts
    """
    from xzctl.alerts import alert_bundle
    from xzctl.alerts.alertmanager import SECRET_NAME, receiver_secrets, unrouted_severities

    namespace = _label(namespace, "namespace")
    spec = _load(fleet)
    _written(write_tree(out, alert_bundle(spec, namespace=namespace), what="alerts"), out)
    for severity in unrouted_severities(spec):
        stderr.print(
            f"[yellow]warning:[/] no receiver for {severity} alerts: they reach nobody; "
            f"add alerts.receivers.{severity} to the spec",
            highlight=False,
        )
    needed = ", ".join(f"{key} ({ref.env or ref.pulumi_secret})" for key, ref in receiver_secrets(spec).items())
    if needed:
        stderr.print(f"Secret {SECRET_NAME} in namespace {escape(namespace)} needs: {escape(needed)}", highlight=False)
