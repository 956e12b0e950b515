"""One Automation API run of the pulumi engine: its workspace, its stack, its errors, and what it started.

The engine (the pulumi CLI) starts each provider plugin in a process group of its own, with its own environment
(pulumi sdk v3.274 go/common/resource/plugin/plugin.go: `RegisterProcessGroup` = setpgid, `os.Environ()`), and
pulumi-resource-kubernetes does not exit on SIGTERM: an engine that is killed, or a run that is interrupted,
leaves the plugin running under PID 1, holding a port and memory. So every run marks the engine it starts
(`XZCTL_ENGINE_RUN` in its environment, which each plugin inherits) and, however the run ends (success, a pulumi
failure, a timeout, Ctrl-C), stops whatever still carries the mark: the engine first gets time to finish on its own
(it closes its plugins), then SIGTERM, then SIGKILL. A run killed outright (SIGKILL of xzctl) cannot clean up
after itself: the next run stops what the mark of a dead owner still runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xzctl import reaper
from xzctl.errors import ConflictError, ExternalToolError, NotFoundError
from xzctl.provision.backend import EDGE_PREFIX, PROJECT, backend_url
from xzctl.state import atomic_write

ENGINE_MARK = "XZCTL_ENGINE_RUN"
WORKSPACE = "pulumi-workspace"  # under the state dir: the Automation API's project and stack settings
# After Ctrl-C the engine cancels: it waits for the operations in flight, writes the checkpoint and closes its
# plugins. Past this it is stopped (its stack then needs --recover, as after a kill).
FINISH_SECONDS = 20.0
LEFTOVER_TERM_SECONDS = 2.0
_CANCELED = tuple(f"error: {op} canceled" for op in ("update", "preview", "destroy", "refresh"))
_GENERIC_ERRORS = ("error: update failed", "error: preview failed", "error: destroy failed", "error: refresh failed")


def stop_orphaned_engines() -> list[reaper.Proc]:
    """Stop the engines and plugins whose xzctl is gone (it was killed mid-run); returns them."""
    return reaper.stop([proc for proc, owner in reaper.marked(ENGINE_MARK) if reaper.owner_gone(owner)])


@contextlib.contextmanager
def engine_run() -> Iterator[dict[str, str]]:
    """The environment that marks this run's engine; on leaving, nothing the engine started still runs."""
    stop_orphaned_engines()
    mark = reaper.owner_mark()
    try:
        yield {ENGINE_MARK: mark}
    finally:
        started = [proc for proc, _ in reaper.marked(ENGINE_MARK, mark)]
        engines = [proc for proc in started if Path(proc.command.split(" ")[0]).name == "pulumi"]
        reaper.stop(engines, grace=FINISH_SECONDS)
        # With the engine gone, a plugin still running is left over: no grace, and it ignores SIGTERM anyway.
        reaper.stop([proc for proc in started if proc not in engines], term=LEFTOVER_TERM_SECONDS)


def open_stack(stack_name: str, state: Path, env: Mapping[str, str], program: Callable[[], None] | None = None) -> Any:
    """The stack in the local backend under `state`: created with `program` when given, else it must exist
    (NotFoundError naming the command that creates it)."""
    from pulumi import automation as auto

    work_dir = state / WORKSPACE
    _write_project(
        work_dir,
        auto.ProjectSettings(name=PROJECT, runtime="python", backend=auto.ProjectBackend(url=backend_url(state))),
    )
    from xzctl.provision.workspace import BackendWorkspace, pulumi_command

    # No project_settings: the workspace reads the Pulumi.yaml above instead of rewriting it in place.
    workspace = BackendWorkspace(
        state,
        work_dir=str(work_dir),
        env_vars=dict(env),
        program=program or _no_program,
        pulumi_command=pulumi_command(),
    )
    if program is not None:
        return auto.Stack.create_or_select(stack_name, workspace)
    try:
        # Destroy, refresh: the engine reads the stack's state, never runs the program.
        return auto.Stack.select(stack_name, workspace)
    except auto.StackNotFoundError:
        raise NotFoundError(f"no stack {stack_name} in {state / 'pulumi'}", hint=first_command(stack_name)) from None


def _write_project(work_dir: Path, settings: Any) -> None:
    """The workspace's Pulumi.yaml, replaced whole (temp + rename) and only when it changes: the Automation API
    rewrites it in place (truncate, write) on every run, and several regions provisioned at once share it, so a
    pulumi CLI of one region could read another's half-written file."""
    import yaml

    text = yaml.safe_dump(settings.to_dict())
    path = work_dir / "Pulumi.yaml"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write(path, text)


def _no_program() -> None:
    """The program of a run that does not run it (destroy, refresh)."""


def first_command(stack_name: str) -> str:
    """The command that creates `stack_name`, as a hint."""
    region = stack_name.removeprefix(EDGE_PREFIX)
    return "xzctl provision cloud" if region == stack_name else f"xzctl provision region {region}"


@contextlib.contextmanager
def pulumi_errors(stack_name: str, hint: str = "rerun with --diff or --debug") -> Iterator[None]:
    """Pulumi's failures as xzctl's: a locked stack is a conflict (exit 5), any other failure names its reason."""
    from pulumi import automation as auto

    try:
        yield
    except auto.ConcurrentUpdateError as exc:
        raise ConflictError(f"stack {stack_name} is locked by another update: {reason(exc)}") from None
    except auto.CommandError as exc:
        if reason(exc) in _CANCELED:
            # Ctrl-C reached the engine (it shares xzctl's process group) and it cancelled; Python's own
            # KeyboardInterrupt does not always come first (a loaded machine: 4 runs in 4), so the engine's word
            # counts: an interrupted run, exit 130, not a failed one.
            raise KeyboardInterrupt from None
        raise ExternalToolError(f"pulumi failed on stack {stack_name}: {reason(exc)}", hint=hint) from None


def reason(exc: Exception) -> str:
    """The line that says why: the first specific `error:` line pulumi printed, else the last line of its stderr.

    str(CommandError) is "\\n code: N\\n stdout: ...\\n stderr: ..."; the header words are not the message.
    """
    head, _, err = str(exc).partition("\n stderr: ")
    out = head.partition("\n stdout: ")[2]
    lines = [line.strip() for line in (*out.splitlines(), *err.splitlines()) if line.strip()]
    specific = [line for line in lines if line.startswith("error:") and line not in _GENERIC_ERRORS]
    if specific:
        return specific[0]
    tail = [line.strip() for line in err.splitlines() if line.strip()] or lines
    return tail[-1] if tail else type(exc).__name__
