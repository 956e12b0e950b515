"""`xzctl fleet validate|plan|example`: the fleet spec itself and the static plan it implies."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import typer
import yaml
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import FleetOption, Output, OutputOption, emit, print_warnings
from xzctl.cli._fleet import load
from xzctl.cli._layout import summarise
from xzctl.errors import BadInputError, CheckFailedError, FleetSpecError
from xzctl.plan import Plan, PlanRow, Verdict, build_plan
from xzctl.plan.static import money
from xzctl.spec import bundled_example_path

app = typer.Typer(
    help="Validate and inspect the fleet spec.\n\nExample: xzctl fleet plan --fleet fleet.yaml --check",
    no_args_is_help=True,
)


@app.command()
def validate(
    fleet: Path | None = FleetOption,
    strict: bool = typer.Option(False, "--strict", help="Refuse warnings too (contradictions in the spec)."),
    output: Output = OutputOption,
) -> None:
    """Check the fleet spec and list every problem at once.

    Example: xzctl fleet validate --fleet fleet.yaml --strict
    """
    try:
        loaded = load(fleet)
    except FleetSpecError as exc:
        if output is not Output.TABLE:
            emit({"valid": False, "problems": [vars(p) for p in exc.problems]}, output, lambda _: None)
        else:  # every problem on its own line, then a count: the first one is not said twice
            for p in exc.problems:
                print(f"{p.severity}: {p.render()}", file=sys.stderr)
            errors = sum(p.severity == "error" for p in exc.problems)
            raise BadInputError(f"invalid fleet spec: {errors} error(s), listed above") from None
        raise
    from xzctl.provision.objects import chart_sources

    warnings = loaded.warnings
    charts = chart_sources(loaded.fleet)
    data = {
        "valid": not (strict and warnings),
        "source": loaded.source,
        "regions": len(loaded.fleet.regions),
        "edge_nodes": len(loaded.fleet.edge_nodes()),
        "devices": loaded.fleet.devices,
        "problems": [vars(w) for w in warnings],
        "charts": charts,
    }

    def table(console: Console) -> None:
        print_warnings(warnings)
        verdict = "[red]invalid[/]" if strict and warnings else "[green]valid[/]"
        console.print(
            f"{escape(loaded.source)}: {verdict}: {data['regions']} regions, {data['edge_nodes']} edge nodes, "
            f"{data['devices']} devices, {len(warnings)} warning(s)"
        )
        for target, releases in charts.items():
            for release, where in releases.items():
                console.print(f"  chart {escape(target)}/{escape(release)}: {escape(where)}")

    emit(data, output, table)
    if strict and warnings:
        raise FleetSpecError(warnings)


_VERDICT_STYLE = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "bold red"}
_WORST_FIRST = [Verdict.FAIL, Verdict.WARN, Verdict.OK]
_SECTION_TITLES = {
    "capacity": "Capacity: devices vs device slots",
    "n+1": "N+1: each region (and the fleet) loses its largest edge node",
    "edge-gpu": "Edge GPU budget: slots asked vs GPUs x time-slicing",
    "cloud-gpu": "Cloud GPU budget: LLM replicas x GPUs vs GPU servers",
    "autoscaling": "Autoscaling budget: GPU slots at max, N+1 at peak",
    "cost": "Cost and ROI",
}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "years":
        return f"{value:.1f} y"
    if len(unit) == 3 and unit.isupper():  # a currency code
        return money(value, unit)
    return f"{value:,.0f}"


def _grouped(rows: list[PlanRow]) -> list[tuple[str, PlanRow]]:
    """Merge runs of rows that differ only in subject: 1000 identical edge nodes make one line, not 1000."""
    groups: list[list[PlanRow]] = []
    for row in rows:
        if groups and replace(groups[-1][0], subject=row.subject) == row:
            groups[-1].append(row)
        else:
            groups.append([row])
    return [(g[0].subject if len(g) == 1 else f"{g[0].subject} +{len(g) - 1}", g[0]) for g in groups]


def _plan_table(plan: Plan, console: Console, *, wide: bool) -> None:
    # One table per section and the reason under its check: stays readable in an 80-column CI log.
    for section in dict.fromkeys(r.section for r in plan.rows):
        table = Table(title=_SECTION_TITLES.get(section, section), title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("verdict", no_wrap=True)
        table.add_column("subject", no_wrap=True)
        table.add_column("value / limit", no_wrap=True, justify="right")
        table.add_column("check and reason", overflow="fold", ratio=1)
        grouped = _grouped([r for r in plan.rows if r.section == section])
        shown, left_out = summarise(grouped, lambda g: g[1].verdict.value, _WORST_FIRST, wide=wide, noun="rows")
        for subject, r in shown:
            # A zero limit is a sign rule (net > 0, no problems), not a ratio: `¥1,450,000 / ¥0` read as one.
            limit = "" if r.limit is None or r.limit == 0 else f" / {_number(r.limit, r.unit)}"
            table.add_row(
                f"[{_VERDICT_STYLE[r.verdict]}]{r.verdict.value}[/]",
                escape(subject),
                f"{_number(r.value, r.unit)}{limit}",
                f"{escape(r.check)}\n[dim]{escape(r.reason)}[/]",
            )
        console.print(table)
        if left_out:
            console.print(f"[dim]{escape(left_out)}[/]")
    console.print(
        f"{plan.fleet}: {plan.count(Verdict.FAIL)} fail, {plan.count(Verdict.WARN)} warn, {plan.count(Verdict.OK)} ok",
        style="bold red" if plan.failed() else "green",
        markup=False,
    )


@app.command()
def plan(
    fleet: Path | None = FleetOption,
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when any row fails (for CI); without it the plan is a report and exits 0."
    ),
    output: Output = OutputOption,
) -> None:
    """Show the static plan from the spec alone: devices vs capacity per region, N+1 (each region losing its
    largest edge node), edge and cloud GPU budget, cost and ROI. Every row has a verdict ok|warn|fail and a reason.

    Exit codes: 0 (even with fail rows), or with --check 1 when any row fails; 2 for an invalid spec.

    Example: xzctl fleet plan --fleet fleet.yaml --check -o json
    """
    loaded = load(fleet)
    result = build_plan(loaded.fleet)
    emit(result.to_dict(), output, lambda console: _plan_table(result, console, wide=output is Output.WIDE))
    failed = result.failed()
    if check and failed:  # a verdict, not an error: reasons on stdout (the JSON document holds them), exit 1
        if output is Output.TABLE:
            for r in failed:
                print(f"fail: {r.section} {r.subject}: {r.reason}")
        raise typer.Exit(CheckFailedError.exit_code)


@app.command()
def example(
    nodes: int | None = typer.Option(
        None, "--nodes", min=1, help="Generate a fleet of this many edge nodes from the example (for scale tests)."
    ),
    seed: int = typer.Option(0, "--seed", help="With --nodes: seed of the device counts per node."),
    output: Output = typer.Option(
        Output.YAML, "--output", "-o", help="yaml keeps the comments (the file as shipped); json for tools."
    ),
) -> None:
    """Print the bundled example fleet (1000 devices, 7 edge nodes, 3 regions) to start from.

    With --nodes N: a generated fleet of N edge nodes with the example's profile, spread over regions.

    Example: xzctl fleet example > fleet.yaml
    """
    if nodes is None and output in (Output.YAML, Output.TABLE):
        sys.stdout.write(bundled_example_path().read_text(encoding="utf-8"))
        return
    from xzctl.spec.generate import generate_fleet_document

    if nodes is None:
        document = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    else:
        document = generate_fleet_document(nodes, seed=seed)
    if output is Output.JSON:
        emit(document, output, lambda _: None)
    else:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
