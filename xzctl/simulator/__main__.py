"""`python -m xzctl.simulator --fleet F --port P --seed S`: serve a simulated fleet on 127.0.0.1.

The sandbox starts this as a subprocess. `--ready-file` receives the bound port once the server
listens (so `--port 0` works without a race on a pre-picked port).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from xzctl.errors import XzctlError
from xzctl.simulator.server import Simulator, serve
from xzctl.spec import load_fleet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xzctl.simulator", description=__doc__)
    parser.add_argument("--fleet", required=True, help="fleet spec file")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--ready-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)
    try:
        fleet = load_fleet(args.fleet).fleet
    except XzctlError as exc:
        print(f"simulator: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code

    def ready(port: int) -> None:
        print(f"simulator: serving {len(fleet.edge_nodes())} edge nodes on http://127.0.0.1:{port}", flush=True)
        if args.ready_file:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(str(port))
            os.replace(tmp, args.ready_file)  # atomic: the sandbox never reads half a number

    try:
        serve(Simulator(fleet, seed=args.seed), args.port, ready=ready)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"simulator: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
