"""Tables that stay readable at 80 columns: drop columns by priority, never cut an ID, a node or a region.

Each column has a priority: 0 is never dropped (names, status); higher numbers go first when the terminal is
narrow. `-o wide` keeps every column, one line per row as long as it needs (kubectl's). Free text (a reason)
is the one column that folds onto more lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    header: str
    priority: int = 0
    justify: str = "left"
    text: bool = False  # free text that may fold onto more lines (at most one per table)


def _table(columns: list[Column], rows: list[list[str]], keep: list[int], title: str | None) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for i in keep:
        c = columns[i]
        if c.text:
            table.add_column(c.header, overflow="fold", ratio=1)
        else:
            table.add_column(c.header, no_wrap=True, justify=c.justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _needs(console: Console, table: Table) -> int:
    unbounded = console.options.update_width(1_000_000)  # measure what it needs, not what it is given
    return Measurement.get(console, unbounded, table).maximum


def _fits(console: Console, table: Table) -> bool:
    return _needs(console, table) <= console.width


def print_table(
    console: Console, columns: list[Column], rows: list[list[str]], *, wide: bool, title: str | None = None
) -> None:
    """Print the table with the columns that fit `console.width`: the free-text column moves under the table
    (one `name: text` line per row) when it would not fit whole, then columns go by priority (highest first)."""
    keep = list(range(len(columns)))
    notes: list[tuple[str, str]] = []
    if not wide and not _fits(console, _table(columns, rows, keep, title)):
        for i in [i for i in keep if columns[i].text]:
            keep.remove(i)
            notes = [(row[0], row[i]) for row in rows if Text.from_markup(row[i]).plain not in ("", "-")]
        for i in sorted(keep, key=lambda i: -columns[i].priority):
            if columns[i].priority == 0 or _fits(console, _table(columns, rows, keep, title)):
                break
            keep.remove(i)
    table = _table(columns, rows, keep, title)
    if wide:  # kubectl's -o wide: every column, one line per row however long, never folded to the terminal
        terminal = console.width  # rich clamps print(width=) to the console's: widen the console itself
        console.width = max(terminal, _needs(console, table))
        try:
            console.print(table)
        finally:
            console.width = terminal
        return
    console.print(table)
    for name, text in notes:
        console.print(f"[bold]{name}[/]: {text}")  # wrapped at spaces: no ID is split
    hidden = len(columns) - len(keep) - (1 if notes else 0)
    if hidden > 0:
        console.print(f"[dim]{hidden} more column(s) with -o wide[/]")
