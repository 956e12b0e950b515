"""Tables that stay readable at 80 columns: drop columns by priority, never cut an ID, a node or a region.

Each column has a priority: 0 is never dropped (names, status); higher numbers go first when the terminal is
narrow. `-o wide` keeps every column, one line per row as long as it needs (kubectl's). Free text (a reason)
is the one column that folds onto more lines.

A table whose rows grow with the fleet (one per edge node, region or lost node) goes through `summarise`: past
`SUMMARY_ROWS` rows it shows the worst ones and a count per status; `-o wide` and `-o json` keep every row. Drawing
10,000 rows costs more than the work behind them and no one reads them on a terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

SUMMARY_ROWS = 20


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
    console: Console,
    columns: list[Column],
    rows: list[list[str]],
    *,
    wide: bool,
    title: str | None = None,
    left_out: str | None = None,
) -> None:
    """Print the table with the columns that fit `console.width`: the free-text column moves under the table
    (one `name: text` line per row) when it would not fit whole, then columns go by priority (highest first).
    `left_out` is `summarise`'s line about the rows not shown, printed under the table."""
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
    if left_out:
        console.print(f"[dim]{escape(left_out)}[/]")
    for name, text in notes:
        console.print(f"[bold]{name}[/]: {text}")  # wrapped at spaces: no ID is split
    hidden = len(columns) - len(keep) - (1 if notes else 0)
    if hidden > 0:
        console.print(f"[dim]{hidden} more column(s) with -o wide[/]")


def summarise(
    items: Sequence[T], status: Callable[[T], str], worst_first: Sequence[str], *, wide: bool, noun: str
) -> tuple[list[T], str | None]:
    """The rows a table shows, and the line that says what it left out (None: every row shown).

    Every row with `wide` or up to SUMMARY_ROWS; beyond that the SUMMARY_ROWS worst by `worst_first` (a status not
    listed counts as the least bad), in their given order (a sort the operator chose stays), and the count per status.
    """
    if wide or len(items) <= SUMMARY_ROWS:
        return list(items), None
    rank = {s: i for i, s in enumerate(worst_first)}
    chosen = sorted(range(len(items)), key=lambda i: rank.get(status(items[i]), len(rank)))[:SUMMARY_ROWS]
    counts = Counter(status(item) for item in items)
    order = [*worst_first, *sorted(counts.keys() - set(worst_first))]
    per_status = ", ".join(f"{counts[s]:,} {s}" for s in order if counts[s])
    note = f"{len(items):,} {noun} ({per_status}): the {SUMMARY_ROWS} worst shown; every row with -o wide or -o json"
    return [items[i] for i in sorted(chosen)], note
