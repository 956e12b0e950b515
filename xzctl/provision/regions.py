"""Every edge region at once (`xzctl provision region --all`): each region its own stack, lock and engine.

Each region runs in a child process of its own: the Pulumi Python SDK keeps a running program's state in module
globals (settings, root resource, config; pulumi/pulumi#6052), so two inline programs cannot share one process. At most
`at_once` regions run together; a region that fails is reported beside the others' results, never instead of
them, and the regions not yet started still run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xzctl import reaper
from xzctl.errors import ExitCode, XzctlError
from xzctl.provision.engine import FINISH_SECONDS

DEFAULT_REGIONS_AT_ONCE = 4  # each region holds a Python program, the pulumi CLI and a provider plugin (~0.5 GB)
WORKER = f"{__name__}:up_one"
STOP_MARGIN_SECONDS = 10.0  # beyond the engine's own finish: the child's engine_run then stops what it started


@dataclass(frozen=True)
class RegionRun:
    """What every region's run shares (`up`'s keyword arguments, resource parallelism included)."""

    fleet_path: Path
    preview: bool
    state: Path | None
    kube_context: str | None = None
    kubeconfig: Path | None = None
    parallel: int | None = None  # resource operations at once in each region; None: up's default
    recover: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionRun:
        paths = {"fleet_path", "state", "kubeconfig"}
        fields: dict[str, Any] = {k: Path(v) if k in paths and v is not None else v for k, v in data.items()}
        return cls(**fields)


@dataclass(frozen=True)
class RegionOutcome:
    region: str
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)  # ProvisionResult.to_dict() when it went through
    error: str | None = None
    exit_code: int = ExitCode.OK

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "exit_code": self.exit_code,
            "error": self.error,
            **self.result,
        }


def up_one(region: str, run: RegionRun) -> RegionOutcome:
    """One region's update, its failure caught as an outcome (it crosses a process boundary as plain data)."""
    from xzctl.provision.automation import up

    started = time.monotonic()
    kwargs: dict[str, Any] = {"parallel": run.parallel} if run.parallel else {}
    try:
        result = up(
            region,
            run.fleet_path,
            preview=run.preview,
            kube_context=run.kube_context,
            kubeconfig=run.kubeconfig,
            state=run.state,
            recover=run.recover,
            **kwargs,
        )
    except XzctlError as exc:
        return RegionOutcome(region, time.monotonic() - started, error=exc.one_line(), exit_code=exc.exit_code)
    return RegionOutcome(region, time.monotonic() - started, result=result.to_dict())


def up_regions(
    regions: Sequence[str],
    run: RegionRun,
    *,
    at_once: int = DEFAULT_REGIONS_AT_ONCE,
    on_done: Callable[[RegionOutcome], None] | None = None,
    worker: str = WORKER,
) -> list[RegionOutcome]:
    """Provision `regions`, at most `at_once` together; the outcomes in the order of `regions`.

    A child process per region (`python -m xzctl.provision.regions`), not a pool: a pool's worker that dies takes
    the regions queued on it down too. `on_done` hears each region as it finishes. `worker` ("module:function")
    is what each child runs; tests name one that needs no engine.
    """
    queued = list(regions)
    running: dict[int, tuple[str, subprocess.Popen[bytes], float]] = {}
    outcomes: dict[str, RegionOutcome] = {}
    request = json.dumps(run.to_dict()).encode()
    with selectors.DefaultSelector() as selector:
        try:
            while queued or running:
                while queued and len(running) < max(1, at_once):
                    region = queued.pop(0)
                    child = subprocess.Popen(
                        [sys.executable, "-m", __name__, worker, region], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                    )
                    assert child.stdin is not None and child.stdout is not None  # PIPE asked for both
                    child.stdin.write(request)
                    child.stdin.close()
                    selector.register(child.stdout, selectors.EVENT_READ)
                    running[child.stdout.fileno()] = (region, child, time.monotonic())
                for key, _ in selector.select():  # a child's stdout is readable when it answered or died
                    region, child, started = running.pop(key.fd)
                    selector.unregister(key.fileobj)
                    outcome = _answer(region, child, started)
                    outcomes[region] = outcome
                    if on_done is not None:
                        on_done(outcome)
        except BaseException as exc:  # the regions still running are stopped (their engine_run stops their engines)
            _stop([child for _, child, _ in running.values()], interrupted=isinstance(exc, KeyboardInterrupt))
            raise
    return [outcomes[r] for r in regions]


def _stop(children: list[subprocess.Popen[bytes]], *, interrupted: bool) -> None:
    """SIGTERM, then SIGKILL. After Ctrl-C each child is already cancelling its update (SIGINT reached the whole
    process group): it first gets the engine's time to finish."""
    procs = [p for p in (reaper.find(c.pid) for c in children) if p is not None]
    grace = FINISH_SECONDS + STOP_MARGIN_SECONDS if interrupted else 0.0
    reaper.stop(procs, grace=grace, collect=False)
    for child in children:
        child.wait()  # gone already: this only collects it
        if child.stdout is not None:
            child.stdout.close()


def _answer(region: str, child: subprocess.Popen[bytes], started: float) -> RegionOutcome:
    assert child.stdout is not None
    answer = child.stdout.read()  # the child writes its outcome last, then exits
    child.stdout.close()
    code = child.wait()
    try:
        return RegionOutcome(**json.loads(answer))
    except (ValueError, TypeError):  # it died before it could say how its region went
        message = f"the process provisioning {region} died (exit code {code})"
        return RegionOutcome(region, time.monotonic() - started, error=message, exit_code=ExitCode.EXTERNAL)


def main(argv: Sequence[str]) -> None:
    """A child of `up_regions`: run `worker` on one region, the RegionRun as JSON on stdin, and write its
    outcome as JSON on stdout, last. Anything else the run writes to stdout goes to stderr instead."""
    module, _, function = argv[0].partition(":")
    worker: Callable[[str, RegionRun], RegionOutcome] = getattr(importlib.import_module(module), function)
    run = RegionRun.from_dict(json.loads(sys.stdin.read()))
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    outcome = worker(argv[1], run)
    answer.write(json.dumps(dataclasses.asdict(outcome)))
    answer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
