"""`--watch`: each round headed by its time for people; one JSON document per line (NDJSON) for machines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml
from rich.console import Console

from xzctl.cli._common import Output, stdout


def watch_round(data: dict[str, Any], output: Output, draw: Callable[[Console], None], interval: float) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if output is Output.JSON:
        sys.stdout.write(json.dumps({"time": now, **data}, default=str, separators=(",", ":")) + "\n")
        sys.stdout.flush()  # a reader of the stream sees each round when it is made
    elif output is Output.YAML:
        sys.stdout.write("---\n" + yaml.safe_dump({"time": now, **data}, sort_keys=False, allow_unicode=True))
        sys.stdout.flush()
    else:
        if stdout.is_terminal:
            stdout.clear()
        stdout.print(f"every {interval:g}s, {now}", style="bold", markup=False)
        draw(stdout)
