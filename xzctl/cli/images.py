"""`xzctl images list|show|verify`: the inference image catalog and the spec's image references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import FleetOption, Output, OutputOption, PrometheusOptions, emit, option_set, print_warnings
from xzctl.cli._fleet import load
from xzctl.cli._layout import Column, print_table
from xzctl.errors import CheckFailedError, UnknownStateError
from xzctl.images import CatalogImage, load_catalog, verify_fleet

app = typer.Typer(
    help="The inference image catalog (inference_images/) and its digest lock.\n\nExample: xzctl images show asr",
    no_args_is_help=True,
)

CatalogOption = typer.Option(
    None,
    "--catalog",
    envvar="XZCTL_CATALOG",
    help="Catalog directory. Default: ./inference_images, else the one shipped with xzctl.",
    show_default=False,
)


def _summary(image: CatalogImage) -> dict[str, Any]:
    latest = image.latest()
    return {
        "name": image.info.name,
        "service": image.info.service,
        "repository": image.info.repository,
        "latest": latest.version if latest else None,
        "digest": latest.digest if latest else None,
        "model": image.info.model.name,
        "precision": image.info.model.precision,
        "batch_size": image.info.batch_size,
        "releases": len(image.releases),
    }


@app.command("list")
def list_(catalog: Path | None = CatalogOption, output: Output = OutputOption) -> None:
    """List the catalog's images with their newest released version.

    Example: xzctl images list -o json
    """
    images = load_catalog(catalog).images
    rows = [_summary(images[name]) for name in sorted(images)]

    columns = [
        Column("IMAGE"),
        Column("SERVICE", 1),
        Column("LATEST"),
        Column("DIGEST", 3),
        Column("MODEL", 2),
        Column("PRECISION", 4),
        Column("BATCH", 5, "right"),
    ]

    def table(console: Console) -> None:
        # The short digest identifies a release at a glance; the full one is in `images show` and -o json.
        keys = ("name", "service", "latest", "digest", "model", "precision", "batch_size")
        cells = [[str(r[k] or "-")[:19] if k == "digest" else str(r[k] or "-") for k in keys] for r in rows]
        print_table(console, columns, cells, wide=output is Output.WIDE, title="inference images")

    emit(rows, output, table)


@app.command()
def show(
    name: str = typer.Argument(..., help="Image name, e.g. asr."),
    catalog: Path | None = CatalogOption,
    output: Output = OutputOption,
) -> None:
    """Show one image: model, streaming, resources, readiness, throughput, every release and its digest.

    Example: xzctl images show asr
    """
    image = load_catalog(catalog).get(name)
    data: dict[str, Any] = image.info.model_dump(mode="json")
    data["releases"] = [{**r.model_dump(mode="json"), "reference": image.pinned(r)} for r in image.releases]

    def table(console: Console) -> None:
        info = image.info
        console.print(f"[bold]{escape(info.name)}[/] ({info.service}): {escape(info.description)}")
        console.print(f"repository  {escape(info.repository)}   builds {info.version}")
        m = info.model
        console.print(f"model       {escape(m.name)} ({escape(m.format)}, {m.precision}) from {escape(m.source)}")
        console.print(f"batch size  {info.batch_size}")
        if info.streaming:
            s = info.streaming
            console.print(
                f"streaming   {s.chunk_samples}-sample chunks, {s.overlap_samples} overlap, {s.sample_rate} Hz"
            )
        r = info.resources
        console.print(
            f"resources   cpu {r.cpu_request}/{r.cpu_limit}, memory {r.memory_request}/{r.memory_limit}, gpu {r.gpu}"
        )
        ready = info.readiness
        console.print(
            f"readiness   GET :{ready.port}{ready.path} within {ready.timeout_seconds}s: {escape(ready.condition)}"
        )
        tp = info.throughput
        console.print(f"throughput  {tp.requests_per_second:g} req/s per {tp.per}, p95 {tp.p95_ms} ms")
        # Stacked, one release per block: the full pinned reference is the line to copy, never cut.
        for rel in sorted(image.releases, key=lambda x: x.released, reverse=True):
            status = f"[red]yanked[/]: {escape(rel.yanked)}" if rel.yanked else "[green]released[/]"
            console.print(f"[bold]{escape(rel.version)}[/]  {rel.released}  {status}")
            console.print(f"  {escape(image.pinned(rel))}", soft_wrap=True)

    emit(data, output, table)


@app.command()
def verify(
    fleet: Path | None = FleetOption, catalog: Path | None = CatalogOption, output: Output = OutputOption
) -> None:
    """Check every image the fleet spec references: a released catalog version, a well-formed digest that
    matches the lock, the model the image serves, and (production) pinned by digest.

    Example: xzctl images verify --fleet fleet.yaml
    """
    loaded = load(fleet, schema_only=True)
    report = verify_fleet(loaded.fleet, load_catalog(catalog))
    data = {
        "valid": not report.errors,
        "environment": report.environment,
        "images": [vars(f) for f in report.findings],
    }

    columns = [Column("IMAGE"), Column("SERVICE", 1), Column("STATUS"), Column("USED", 2), Column("DETAIL", text=True)]

    def table(console: Console) -> None:
        print_warnings(loaded.warnings)
        colour = {"ok": "green", "error": "red", "external": "yellow"}
        detail = {id(f): f.message + (f"; fix: {f.fix}" if f.fix else "") for f in report.findings}
        rows = [
            [
                escape(f.image),
                f.service,
                f"[{colour[f.status]}]{f.status}[/]",
                str(len(f.places)),
                escape(detail[id(f)]),
            ]
            for f in report.findings
        ]
        print_table(console, columns, rows, wide=output is Output.WIDE)
        if report.errors:
            console.print(f"verdict: {len(report.errors)} image reference(s) fail (exit 1)")

    emit(data, output, table)
    if report.errors:  # a verdict, not an error: the table and the JSON document say which and why
        raise typer.Exit(CheckFailedError.exit_code)


@app.command()
@option_set(PrometheusOptions, "prom")
def diff(
    *,
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    all_rows: bool = typer.Option(False, "--all", "-a", help="Show the images that match the spec too."),
    output: Output = OutputOption,
) -> None:
    """Compare the images the spec pins with what runs on each node, from the services' build-info metrics.

    Exit 1 when a node runs another image than its pin (drift), 3 when a node reports nothing.

    Example: xzctl images diff --fleet fleet.yaml
    """
    from xzctl.checks.drift import image_drift
    from xzctl.cli.check import live

    with live(fleet, prom, window="5m", history=None, scrape_interval=None, rates=False) as ctx:
        rows = image_drift(ctx.client, ctx.fleet)
    shown = [r for r in rows if all_rows or r.status != "same"]
    columns = [Column("NODE"), Column("SERVICE"), Column("TRACK", 1), Column("STATUS"), Column("DIFF", text=True)]
    colour = {"same": "green", "drift": "red", "unknown": "magenta", "canary": "yellow", "extra": "yellow"}

    def table(console: Console) -> None:
        change = {id(r): f"{r.pinned or '(not pinned)'} -> {r.running or '(nothing reported)'}" for r in shown}
        cells = [
            [r.node, r.service, r.track, f"[{colour[r.status]}]{r.status}[/]", escape(change[id(r)])] for r in shown
        ]
        if cells:
            print_table(console, columns, cells, wide=output is Output.WIDE)
        drifted, unknown = sum(r.status == "drift" for r in rows), sum(r.status == "unknown" for r in rows)
        console.print(f"{len(rows)} node images: {drifted} drifted from the spec, {unknown} unknown")

    emit({"images": [r.to_dict() for r in shown]}, output, table)
    if any(r.status == "drift" for r in rows):
        raise typer.Exit(CheckFailedError.exit_code)
    if any(r.status == "unknown" for r in rows):
        raise typer.Exit(UnknownStateError.exit_code)
