"""`xzctl images list|show|verify|build|diff`: the inference image catalog and the spec's image references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import (
    FleetOption,
    Output,
    OutputOption,
    PrometheusOptions,
    StateDirOption,
    emit,
    option_set,
    print_warnings,
)
from xzctl.cli._fleet import load
from xzctl.cli._layout import Column, print_table
from xzctl.errors import CheckFailedError, UnknownStateError
from xzctl.images import CatalogImage, load_catalog, verify_fleet
from xzctl.state import state_dir as state_dir_of

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
def verify(  # noqa: PLR0917 (each Typer option is a parameter)
    fleet: Path | None = FleetOption,
    catalog: Path | None = CatalogOption,
    output: Output = OutputOption,
    built: str | None = typer.Option(None, "--built", help="Check this built image (OCI layout) against the lock."),
    version: str | None = typer.Option(None, "--version", help="Version of the --built image. Default: image.yaml's."),
    state_dir: Path | None = StateDirOption,
    inputs: bool = typer.Option(
        False,
        "--inputs",
        help="Check that each image folder's version was released from the tree's inputs as they are.",
    ),
) -> None:
    """Check every image the fleet spec references: a released catalog version built here (or one the lock marks
    external), a well-formed digest that matches the lock, the model the image serves, and (production) pinned by
    digest. With --built NAME, check the image built into the state dir instead: its digest is the lock's and every
    blob is intact. With --inputs, check without building that no released version's inputs have changed.

    Example: xzctl images verify --fleet fleet.yaml; xzctl images verify --built vad; xzctl images verify --inputs
    """
    if built is not None:
        _verify_built(built, version, catalog, state_dir, output)
        return
    if inputs:
        _verify_inputs(catalog, output)
        return
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
def build(  # noqa: PLR0917 (each Typer option is a parameter)
    name: str = typer.Argument(..., help="Image name: vad, asr, tts or xiaozhi-server."),
    version: str | None = typer.Option(None, "--version", help="Version to build. Default: the one in image.yaml."),
    model: Path | None = typer.Option(None, "--model", help="Model file to bake in (the ASR SenseVoice variant)."),
    source: Path | None = typer.Option(
        None,
        "--source",
        help="Upstream source tree (xiaozhi-server: a checkout of the pinned tag's main/xiaozhi-server/).",
    ),
    no_lock: bool = typer.Option(False, "--no-lock", help="Build without recording the release in the lock."),
    gpu: bool = typer.Option(False, "--gpu", help="The GPU variant (CUDA runtime wheels; give it its own --version)."),
    catalog: Path | None = CatalogOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Build an image offline-ready (mmdebstrap + buildah) into the state dir's OCI layout and lock its digest.

    Example: xzctl images build vad --version 1.2.0; xzctl images build asr --gpu --version 1.4.0-cuda
    """
    from xzctl.images.build import build_image

    result = build_image(
        name,
        state_dir=state_dir_of(state_dir),
        version=version,
        catalog_dir=catalog,
        model=model,
        source=source,
        lock=not no_lock,
        gpu=gpu,
    )
    wheels = [f"{w['name']}=={w['version']}" for w in result.record.wheels]
    data: dict[str, Any] = {
        "image": result.name,
        "version": result.version,
        "digest": result.digest,
        "layout": result.reference,
        "lock": "added" if result.locked else ("unchanged" if not no_lock else "not recorded"),
        "debian_packages": len(result.record.debian),
        "wheels": wheels,
        "model": result.record.model,
    }

    def table(console: Console) -> None:
        console.print(f"[bold]{result.name} {result.version}[/] {result.digest}")
        console.print(f"layout  {escape(result.reference)}   lock: {data['lock']}")
        console.print(f"inputs  {data['debian_packages']} Debian packages, wheels {', '.join(wheels) or '-'}")

    emit(data, output, table)


def _verify_built(name: str, version: str | None, catalog: Path | None, state_dir: Path | None, output: Output) -> None:
    from xzctl.images.build import verify_built

    version = version or load_catalog(catalog).get(name).info.version
    digest = verify_built(name, version, state_dir=state_dir_of(state_dir), catalog_dir=catalog)
    data = {"image": name, "version": version, "digest": digest, "valid": True}
    emit(data, output, lambda console: console.print(f"[green]ok[/] {name} {version} {digest} matches the lock"))


def _verify_inputs(catalog: Path | None, output: Output) -> None:
    from xzctl.images.provenance import input_drift

    drift = input_drift(load_catalog(catalog))
    data = {"valid": not drift, "images": [vars(d) for d in drift]}
    columns = [Column("IMAGE"), Column("VERSION"), Column("PROBLEM", text=True), Column("FIX", 1, text=True)]

    def table(console: Console) -> None:
        if not drift:
            console.print("[green]ok[/] every image folder's version was released from the tree's inputs")
            return
        rows = [[d.image, d.version, escape(d.problem), escape(d.fix)] for d in drift]
        print_table(console, columns, rows, wide=output is Output.WIDE)
        console.print(f"verdict: {len(drift)} image(s) changed without a new release (exit 1)")

    emit(data, output, table)
    if drift:
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
    from xzctl.cli._live import live

    with live(fleet, prom, window=None, history=None, scrape_interval=None, rates=False) as ctx:
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
