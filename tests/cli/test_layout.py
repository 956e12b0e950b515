"""Tables at 80 columns and with -o wide: wide means longer lines, never more of them (kubectl's -o wide)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from xzctl.cli._layout import Column, print_table

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
