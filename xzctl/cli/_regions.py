"""`provision region --all`: every region's update at once, bounded, and the one table that sums them up."""

from __future__ import annotations

import dataclasses

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import Output, emit, stderr
from xzctl.cli._layout import Column, print_table, summarise
from xzctl.provision.regions import RegionOutcome, RegionRun, up_regions

# At 80 columns the region and its result stay; the error folds under the table (see _layout).
REGION_COLUMNS = [
    Column("region"),
    Column("result"),
    Column("changes", 1),
    Column("seconds", 2, "right"),
    Column("error", text=True),
]


def _region_done(outcome: RegionOutcome) -> None:
    if outcome.ok:
        stderr.print(f"{escape(outcome.region)}: done in {outcome.seconds:.1f} s")
    else:
        stderr.print(
            f"[red]{escape(outcome.region)}: failed[/] in {outcome.seconds:.1f} s: {escape(outcome.error or '')}"
        )


def _regions_table(outcomes: list[RegionOutcome], console: Console, *, preview: bool, wide: bool) -> None:
    shown, left_out = summarise(
        outcomes, lambda x: "ok" if x.ok else "failed", ["failed", "ok"], wide=wide, noun="regions"
    )
    rows = []
    for x in shown:
        changes = x.result.get("changes", {})
        counts = ", ".join(f"{n} {op}" for op, n in sorted(changes.items()) if op != "same") or "-"
        result = "[green]ok[/]" if x.ok else f"[red]failed (exit {x.exit_code})[/]"
        rows.append([escape(x.region), result, escape(counts), f"{x.seconds:.1f}", escape(x.error or "-")])
    failed = sum(not x.ok for x in outcomes)
    verb = "previewed" if preview else "provisioned"
    title = f"{len(outcomes) - failed} of {len(outcomes)} regions {verb}" + (f", {failed} failed" if failed else "")
    print_table(console, REGION_COLUMNS, rows, wide=wide, title=title, left_out=left_out)


def provision_every_region(run: RegionRun, *, at_once: int, ask: bool, output: Output) -> None:
    """Every region of the fleet spec (`ask`: preview them all first and ask); exit with the first failed
    region's code once the table is printed."""
    from xzctl.spec import load_fleet

    regions = list(load_fleet(run.fleet_path).fleet.regions)
    wide = output is Output.WIDE

    def batch(preview: bool) -> list[RegionOutcome]:
        return up_regions(regions, dataclasses.replace(run, preview=preview), at_once=at_once, on_done=_region_done)

    if ask and not run.preview:
        _regions_table(batch(True), stderr, preview=True, wide=wide)
        typer.confirm(f"Apply these changes to {len(regions)} regions?", abort=True)
    outcomes = batch(run.preview)
    data = {
        "preview": run.preview,
        "regions": [x.to_dict() for x in outcomes],
        "failed": [x.region for x in outcomes if not x.ok],
    }
    emit(data, output, lambda console: _regions_table(outcomes, console, preview=run.preview, wide=wide))
    failed = [x for x in outcomes if not x.ok]
    if failed:  # each failure is in the table (stdout) and was said on stderr as it happened
        raise typer.Exit(failed[0].exit_code)
