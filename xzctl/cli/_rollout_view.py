"""How `rollout` commands show a rollout: live progress, the plan, status tables, and the final result's exit."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import Output, emit, stderr
from xzctl.errors import CheckFailedError, UnknownStateError
from xzctl.rollout.analysis import describe
from xzctl.rollout.specpin import write_pin
from xzctl.rollout.state import EXIT_CODES, TERMINAL, Phase, RolloutState, StateStore, Step
from xzctl.rollout.status import summarize

COLOURS = {"success": "green", "failure": "red", "inconclusive": "yellow", "error": "magenta", "pending": "cyan"}
SETTLED = {p.value for p in TERMINAL} | {Phase.PAUSED.value}
PHASE_COLOURS = {"rolled_back": "red", "aborted": "red", "promoted": "green", "paused": "yellow", "partial": "yellow"}


def live(kind: str, state: RolloutState, detail: dict[str, Any]) -> None:
    """Progress on stderr as it happens, so `--output json` keeps stdout for the final document."""
    stamp = time.strftime("%H:%M:%S")
    message = escape(str(detail.get("message", "")))
    if kind == "analysis":
        result = str(detail.get("result"))
        step = int(detail.get("step", 0)) + 1
        stderr.print(f"{stamp} step {step}/{len(state.steps)} [{COLOURS.get(result, 'white')}]{result}[/]: {message}")
    else:
        stderr.print(f"{stamp} [{PHASE_COLOURS.get(kind, 'cyan')}]{kind}[/] {message}")


def say_plan(plan: dict[str, Any], target: str) -> None:
    """The start line: deployer, Prometheus, cadence, thresholds and node order, before anything happens."""
    s, t = plan["settings"], plan["thresholds"]
    stderr.print(
        f"{plan['service']} -> {escape(plan['image'])}: deployer {plan['deployer']} ({target}), "
        f"Prometheus {escape(plan['prometheus'])}; {len(plan['steps'])} steps x {s['checks']} checks every "
        f"{s['interval_seconds']:g}s (window {s['window_seconds']:g}s, warm-up {s['warmup_seconds']:g}s); "
        f"thresholds: errors {t['error_ratio']:.3%}, p95 {t['p95_seconds'] * 1000:.0f} ms, "
        f"inference errors {t['inference_error_ratio']:.3%}"
        + "".join(f", {describe(name, value)}" for name, value in sorted(t.get("extra", {}).items()))
        + f"; node order {', '.join(plan['node_order'])}",
        soft_wrap=True,
    )


def dry_run(plan: dict[str, Any], steps: list[Step], skips: dict[str, str], output: Output) -> None:
    def table(console: Console) -> None:
        for i, s in enumerate(steps, 1):
            console.print(f"  {i}. {s.name}: canary on {', '.join(s.nodes)}")
        console.print("  then promote: the new image becomes stable on every node that took the canary")
        for n, why in skips.items():
            console.print(f"  left out: {n} ({escape(why)}): the rollout would end partial")

    emit(plan, output, table)


def _offer_spec_pin(state: RolloutState, write_spec: bool | None) -> None:
    if state.phase != Phase.PROMOTED:
        return
    if write_spec is None and sys.stdin.isatty() and sys.stderr.isatty():
        write_spec = typer.confirm(f"pin {state.image} for {state.service} in {state.fleet}?", default=False, err=True)
    if not write_spec:
        stderr.print(
            f"next: pin {escape(state.image)} for {state.service} in {escape(state.fleet)} "
            f"(or rerun with --write-spec); a provision from the spec would otherwise put the previous image back"
        )
        return
    old = {pin["stable"] for node, pins in state.baseline.items() if node in state.nodes for s, pin in pins.items()
           if s == state.service}  # fmt: skip
    # the image itself too: an undo returns to the release the spec may still pin (then nothing changes)
    changed = write_pin(Path(state.fleet), state.service, old | {state.image}, state.image)
    stderr.print(f"pinned {escape(state.image)} in {escape(state.fleet)}: {', '.join(changed)}")


def finish(state: RolloutState, store: StateStore, output: Output, write_spec: bool | None = False) -> None:
    """Show the final state; a phase other than promoted becomes its error (exit code) with what to do next."""
    data = summarize(store, state)
    emit(data, output, lambda console: _draw(console, data))
    _offer_spec_pin(state, write_spec)
    code = EXIT_CODES[state.phase]
    if code == 0:
        return
    if code == CheckFailedError.exit_code:
        raise CheckFailedError(f"rollout {state.id} rolled back: {state.reason}")
    raise UnknownStateError(
        f"rollout {state.id} {state.phase.value.replace('_', ' ')}: {state.reason}", hint=_next(state) or None
    )


def _next(state: RolloutState) -> str:
    """What the operator can do with a rollout that ended neither promoted nor rolled back."""
    if state.phase == Phase.PAUSED:
        verb = "promote" if state.cause == "inconclusive" else "resume"
        return f"xzctl rollout {verb} {state.id} or xzctl rollout abort {state.id}"
    if not state.terminal:
        return f"xzctl rollout resume {state.id} or xzctl rollout abort {state.id}"
    if state.phase == Phase.PARTIAL:
        return "converge the nodes left behind with the command above"
    return ""


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h" if seconds < 172800 else f"{seconds / 86400:.0f}d"


def _draw(console: Console, data: dict[str, Any]) -> None:
    phase = data["phase"] + (" (interrupted: no process drives it)" if data["interrupted"] else "")
    console.print(f"[bold]{data['id']}[/]: {data['service']} -> {escape(data['image'])}", soft_wrap=True)
    colour = PHASE_COLOURS.get(data["phase"], "cyan")
    console.print(f"  [{colour}]{escape(phase)}[/] (exit {data['exit_code']}), age {_age(data['age_seconds'])}")
    if data["reason"]:
        console.print(f"  {escape(data['reason'])}", soft_wrap=True)
    if data["pending_deploy"]:
        console.print(f"  [yellow]a {data['pending_deploy']} deploy may be half-applied[/]")
    if data["locked_nodes"]:
        console.print(f"  locks edge node(s) {', '.join(data['locked_nodes'])}")
    steps = Table("#", "STEP", "NODES", "STATUS", "CHECKS")
    for i, s in enumerate(data["steps"], 1):
        steps.add_row(str(i), s["name"], ", ".join(s["nodes"]) or "-", s["status"], str(s["successes"]))
    console.print(steps)
    for node, why in data["skipped_nodes"].items():
        console.print(f"  [yellow]left out[/] {node}: {escape(why)}")
    if data["analysis"]:
        results = Table("STEP", "RESULT", "DETAIL", title="last analysis results")
        for m in data["analysis"]:
            results.add_row(
                str(m["step"] + 1), f"[{COLOURS.get(m['result'], 'white')}]{m['result']}[/]", escape(m["reason"])
            )
        console.print(results)


def status_rows(store: StateStore, rollout_id: str | None) -> list[dict[str, Any]]:
    if rollout_id:
        return [summarize(store, store.load(rollout_id))]
    return [summarize(store, s, analyses=1) for s in store.all()]


def _draw_list(console: Console, rows: list[dict[str, Any]], where: Path) -> None:
    width = max([len(r["id"]) for r in rows] + [2])
    table = Table(title=f"rollouts in {where}")
    table.add_column("ID", no_wrap=True, min_width=width)  # never cut: the operator needs it to act
    table.add_column("SERVICE", no_wrap=True)
    table.add_column("PHASE", no_wrap=True)
    table.add_column("STEPS", no_wrap=True)
    table.add_column("AGE", no_wrap=True)
    table.add_column("DRIVER", overflow="fold")
    for r in rows:
        driver = f"pid {r['driver_pid']}" if r["driver_pid"] else ("interrupted" if r["interrupted"] else "-")
        table.add_row(r["id"], r["service"], r["phase"], r["progress"], _age(r["age_seconds"]), driver)
    console.print(table)


def show(rows: list[dict[str, Any]], rollout_id: str | None, store: StateStore, output: Output, *, watch: bool) -> None:
    """One rendering: a document (or one NDJSON line per redraw under --watch), or tables under a timestamp."""
    data: Any = rows[0] if rollout_id else rows
    if watch and output is Output.JSON:
        sys.stdout.write(json.dumps({"at": time.time(), "rollouts": rows}, default=str) + "\n")
        sys.stdout.flush()
        return

    def draw(console: Console) -> None:
        if watch:
            console.print(f"[dim]{time.strftime('%Y-%m-%d %H:%M:%S')}[/]")
        if rollout_id:
            _draw(console, rows[0])
        else:
            _draw_list(console, rows, store.dir)

    emit(data, output, draw)
