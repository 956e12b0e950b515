"""`xzctl bootstrap region|inventory`: turn bare-metal edge servers into K3s nodes with Ansible."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from xzctl.bootstrap import BootstrapResult, HostStatus, HostSummary, Playbook, TaskEvent, bootstrap_region
from xzctl.bootstrap.inventory import inventory_yaml, region_of
from xzctl.cli._common import FleetOption, Output, OutputOption, duration, emit, print_warnings, stderr
from xzctl.cli._fleet import load
from xzctl.cli._layout import Column, print_table, summarise
from xzctl.errors import BadInputError, CheckFailedError

app = typer.Typer(
    help="Bootstrap bare-metal edge servers into K3s nodes with Ansible.\n\nExample: xzctl bootstrap region beijing --check",
    no_args_is_help=True,
)

_STATUS_STYLE = {
    HostStatus.OK: "green",
    HostStatus.CHANGED: "yellow",
    HostStatus.FAILED: "red",
    HostStatus.UNREACHABLE: "red",
    HostStatus.NOT_RUN: "dim",
}
_WORST_FIRST = [HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.NOT_RUN, HostStatus.CHANGED, HostStatus.OK]


def _extra_vars(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise BadInputError(f"--extra-var {pair!r} is not KEY=VALUE", hint="e.g. -e registry_mirror_mirrors={}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise BadInputError(f"--extra-var {key}: value is not YAML: {exc}") from None
    return out


class _Progress:
    """Per-host progress on stderr: a live table on a terminal, one line per change or failure in CI logs."""

    def __init__(self, hosts: list[str]) -> None:
        self.rows = {h: HostSummary(h) for h in hosts}
        self.last_task = dict.fromkeys(hosts, "")
        self.live = Live(self._table(), console=stderr, transient=True) if stderr.is_terminal else None

    def _table(self) -> Table:
        table = Table("edge node", "task", "ok", "changed", "failed", "unreachable", box=None)
        for host, row in self.rows.items():
            table.add_row(
                host, escape(self.last_task[host]), str(row.ok), str(row.changed), str(row.failed), str(row.unreachable)
            )
        return table

    def __call__(self, event: TaskEvent) -> None:
        row = self.rows.setdefault(event.host, HostSummary(event.host))
        if event.status in ("ok", "changed", "failed", "unreachable"):  # the HostSummary counters
            setattr(row, event.status, getattr(row, event.status) + 1)
        self.last_task[event.host] = event.task
        if self.live is not None:
            self.live.update(self._table())
        elif event.status in ("changed", "failed", "unreachable"):
            detail = f": {event.message}" if event.message else ""
            stderr.print(f"{escape(event.host)}: {event.status}: {escape(event.task)}{escape(detail)}")

    def __enter__(self) -> _Progress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.live is not None:
            self.live.stop()


# At 80 columns the node and its status stay; the counts go from the least telling (see _layout).
SUMMARY_COLUMNS = [
    Column("edge node"),
    Column("status"),
    Column("ok", 3, "right"),
    Column("changed", 2, "right"),
    Column("failed", 1, "right"),
    Column("unreachable", 1, "right"),
    Column("skipped", 4, "right"),
]


def _summary_table(result: BootstrapResult, console: Console, *, wide: bool = False) -> None:
    mode = " (check mode: nothing changed)" if result.check else ""
    counts = [c.header for c in SUMMARY_COLUMNS[2:]]
    hosts, left_out = summarise(result.hosts, lambda h: h.status.value, _WORST_FIRST, wide=wide, noun="edge nodes")
    rows = [
        [escape(h.host), f"[{_STATUS_STYLE[h.status]}]{h.status}[/]", *(str(getattr(h, c)) for c in counts)]
        for h in hosts
    ]
    title = f"{result.playbook}.yml on region {escape(result.region)}{mode}"
    print_table(console, SUMMARY_COLUMNS, rows, wide=wide, title=title, left_out=left_out)
    # Errors below the table, whole: a narrow column would chop the one line an operator needs.
    for h in result.hosts:
        if h.message:
            console.print(f"[red]{escape(h.host)}[/]: {escape(' '.join(h.message.split())[:400])}")
    if result.log:
        console.print(f"full output: {escape(result.log)}")


@app.command()
def region(  # noqa: PLR0917 (each Typer option is a parameter)
    name: str = typer.Argument(..., help="Region of the fleet spec, e.g. beijing."),
    check: bool = typer.Option(False, "--check", help="Dry run (ansible --check --diff): report what would change."),
    limit: list[str] = typer.Option([], "--limit", "-l", help="Only this edge node (repeatable)."),
    playbook: Playbook = typer.Option(
        Playbook.SITE, "--playbook", "-p", help="site: install; upgrade: new K3s pin, node by node; reset: remove."
    ),
    extra_vars: list[str] = typer.Option(
        [], "--extra-var", "-e", help="Role variable KEY=VALUE (YAML value), as ansible-playbook -e."
    ),
    timeout: float = typer.Option(
        "1h", "--timeout", parser=duration, metavar="DURATION", help="Give up on the whole run after this long."
    ),
    accept_new_host_keys: bool = typer.Option(
        False,
        "--accept-new-host-keys",
        help="Trust SSH host keys of servers seen for the first time (never changed ones).",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --playbook reset (it removes K3s from the nodes)."),
    fleet: Path | None = FleetOption,
    output: Output = OutputOption,
) -> None:
    """Run an Ansible playbook on every edge node of a region and summarise per node.

    The K3s join token comes from the variable named by secrets.k3s_join_token (e.g. K3S_TOKEN).
    Exit code 1 when any edge node failed or was unreachable.

    Example: K3S_TOKEN=... xzctl bootstrap region beijing --check --limit bj-edge-02 -o json
    """
    loaded = load(fleet)
    print_warnings(loaded.warnings)
    variables = _extra_vars(extra_vars)
    hosts = limit or [n.id for n in region_of(loaded.fleet, name).edge_nodes]
    if playbook is Playbook.RESET and not (check or yes):
        raise BadInputError(
            f"reset.yml stops K3s and removes it from {len(hosts)} edge node(s) of region {name}: {', '.join(hosts)}",
            hint="add --yes, or --check to see what it would remove",
        )
    with _Progress(hosts) as progress:
        result = bootstrap_region(
            loaded.fleet,
            name,
            playbook=playbook,
            check=check,
            limit=limit,
            extravars=variables,
            on_event=progress,
            timeout_seconds=max(1, round(timeout)),
            accept_new_host_keys=accept_new_host_keys,
        )
    emit(result.to_json(), output, lambda console: _summary_table(result, console, wide=output is Output.WIDE))
    if not result.succeeded:
        bad = [f"{h.host} {h.status}" for h in result.hosts if h.status not in (HostStatus.OK, HostStatus.CHANGED)]
        raise CheckFailedError(f"{playbook}.yml on region {name}: {', '.join(bad)}")


@app.command()
def inventory(
    name: str = typer.Argument(..., help="Region of the fleet spec, e.g. beijing."),
    fleet: Path | None = FleetOption,
) -> None:
    """Print the Ansible inventory xzctl builds for a region (to run the playbooks by hand).

    Example: xzctl bootstrap inventory beijing > ansible/inventory/beijing.yml
    """
    sys.stdout.write(inventory_yaml(load(fleet).fleet, name))
