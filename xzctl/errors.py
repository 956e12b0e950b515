"""Typed errors of the core. The CLI turns each into one line on stderr and its exit code.

`EXIT_CODES` is the one table of exit codes; the README's table is generated from it (scripts/readme.py).
"""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    UNKNOWN = 3
    EXTERNAL = 4
    CONFLICT = 5
    INTERNAL = 70
    INTERRUPTED = 130


EXIT_CODES: dict[int, str] = {
    ExitCode.OK: "ok (warnings do not fail); also when the reader of a pipe closes it (`xzctl fleet plan | head -1`)",
    ExitCode.CHECK_FAILED: "a check failed: a crit verdict, a plan row failing under `--check`, a rollout rolled "
    "back, a host failed. A verdict is a result: its reasons are on stdout",
    ExitCode.BAD_INPUT: "bad input: fleet spec, flags, files, config; a name that does not exist; no sandbox "
    "running or no Prometheus to ask; the bundled example refused by a command that touches the world",
    ExitCode.UNKNOWN: "unknown: metrics missing, stale, NaN or Prometheus unreachable, so no verdict; never "
    "reported as ok",
    ExitCode.EXTERNAL: "an external tool failed or is missing (prometheus, pulumi, ansible-playbook)",
    ExitCode.CONFLICT: "conflict: another rollout holds an edge node (locks are per node), the Pulumi stack is locked, a sandbox with "
    "other options is up",
    ExitCode.INTERNAL: "internal error (a bug): one line; rerun with `--debug` for the traceback",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


class XzctlError(Exception):
    """Base of every error the core raises on purpose."""

    exit_code: int = ExitCode.EXTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInputError(XzctlError):
    exit_code = ExitCode.BAD_INPUT


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a fleet spec: where it is, what is wrong, how to fix it."""

    file: str
    path: str
    message: str
    fix: str = ""
    line: int | None = None
    severity: str = "error"  # "error" refuses the spec; "warning" is reported and allowed

    def location(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}" if self.path else where

    def render(self) -> str:
        text = f"{self.location()}: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


class FleetSpecError(BadInputError):
    """The fleet spec is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"] or problems
        head = errors[0].render() if errors else "invalid fleet spec"
        more = len(errors) - 1
        msg = head if more <= 0 else f"{head} (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(msg)


class NotFoundError(BadInputError):
    """A name given on the command line (node, region, alert, image) does not exist."""


class UnknownStateError(XzctlError):
    """Metrics are missing, stale, NaN or unreachable: no verdict can be made."""

    exit_code = ExitCode.UNKNOWN


class NoSandboxError(BadInputError):
    """A command needs the local sandbox and none runs: bad input (nothing to ask), as for live commands given
    no Prometheus at all; one message and one exit code everywhere."""

    def __init__(self, state_dir: object) -> None:
        super().__init__(f"no sandbox is running (state dir {state_dir})", hint="start one with: xzctl sandbox up")


class ExternalToolError(XzctlError):
    """A tool xzctl drives (prometheus, promtool, pulumi, ansible) is missing or failed."""

    exit_code = ExitCode.EXTERNAL


class ConflictError(XzctlError):
    """Another operation holds the lock (a running rollout, a locked Pulumi stack)."""

    exit_code = ExitCode.CONFLICT


class CheckFailedError(XzctlError):
    exit_code = ExitCode.CHECK_FAILED
