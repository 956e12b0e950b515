"""Tables at 80 columns and with -o wide: wide means longer lines, never more of them (kubectl's -o wide)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from xzctl.cli._layout import SUMMARY_ROWS, Column, print_table, summarise

COLUMNS = [Column("lost"), Column("kind"), Column("devices", 1, "right"), Column("why", text=True)]
WHY = "142 devices of sh-edge-01: sh-edge-02 takes 8, the 5 nodes of the other regions 8 each, 94 stay unserved"
ROWS = [[f"guangzhou-edge-{i:04d}", "node", "142", WHY] for i in range(3)]


def printed(width: int, *, wide: bool) -> list[str]:
    out = io.StringIO()
    print_table(Console(file=out, width=width, color_system=None), COLUMNS, ROWS, wide=wide, title="failover")
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 100])
def test_wide_has_one_line_per_row_whatever_the_terminal(width: int) -> None:
    table = printed(width, wide=False)
    wide = printed(width, wide=True)
    rows = [line for line in wide if "guangzhou-edge-" in line]
    assert len(rows) == len(ROWS) and all(WHY in line for line in rows)  # nothing folded or cut
    assert len(wide) <= len(table)  # -o wide never adds lines, it makes them longer
    assert max(map(len, wide)) > width
    assert all("guangzhou-edge-" in line for line in table if "edge-" in line)  # 80 columns: IDs whole


WORST_FIRST = ["crit", "warn", "ok"]


def fleet_rows(crit: int, warn: int, ok: int) -> list[tuple[str, str]]:
    """(node, status) rows, the bad ones spread through the fleet as a report lists them (by name)."""
    statuses = ["ok"] * ok + ["warn"] * warn + ["crit"] * crit
    statuses = statuses[::2] + statuses[1::2]  # interleave so the worst are not already first
    return [(f"edge-{i:05d}", s) for i, s in enumerate(statuses)]


@pytest.mark.parametrize(
    ("rows", "wide", "shown", "left_out"),
    [
        (fleet_rows(0, 1, SUMMARY_ROWS - 1), False, SUMMARY_ROWS, None),  # at the limit: every row
        (fleet_rows(3, 40, 9_957), True, 10_000, None),  # -o wide: every row
        (fleet_rows(3, 40, 9_957), False, SUMMARY_ROWS, "10,000 edge nodes (3 crit, 40 warn, 9,957 ok)"),
        (fleet_rows(0, 0, 500), False, SUMMARY_ROWS, "500 edge nodes (500 ok)"),
    ],
)
def test_summarise_keeps_the_worst_rows_and_counts_the_rest(
    rows: list[tuple[str, str]], wide: bool, shown: int, left_out: str | None
) -> None:
    kept, note = summarise(rows, lambda r: r[1], WORST_FIRST, wide=wide, noun="edge nodes")
    assert len(kept) == shown
    assert kept == sorted(kept)  # the given order (here by name) stays
    if left_out is None:
        assert note is None and kept == rows
        return
    assert note is not None and note.startswith(left_out) and "-o wide" in note
    statuses = [s for _, s in kept]
    bad = [s for _, s in rows if s != "ok"]
    # every crit and warn row before any ok row is picked (the ok ones fill what is left)
    assert statuses.count("crit") + statuses.count("warn") == min(len(bad), SUMMARY_ROWS)
    if len(bad) >= SUMMARY_ROWS:
        assert statuses.count("crit") == bad.count("crit")


def test_a_summarised_table_says_what_it_left_out() -> None:
    rows = fleet_rows(1, 2, 97)
    kept, note = summarise(rows, lambda r: r[1], WORST_FIRST, wide=False, noun="edge nodes")
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None)
    print_table(console, COLUMNS, [[n, "node", "1", s] for n, s in kept], wide=False, left_out=note)
    text = out.getvalue()
    assert sum("edge-" in line for line in text.splitlines()) == SUMMARY_ROWS
    assert "100 edge nodes (1 crit, 2 warn, 97 ok)" in " ".join(text.split())
