"""The xzctl command line: parse, call the core, render. The one place errors become exit codes.

Each module in this package is one command group (`fleet.py` -> `xzctl fleet ...`) exposing a Typer
`app`, or one command exposing `command`. A module is imported only when its command runs or its
help is shown, so `xzctl --help` costs no more than Typer itself, whatever the modules import.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperGroup

from xzctl.errors import ExitCode, XzctlError
from xzctl.redact import redact, register_environment

_state = {"debug": False}
_DOCSTRING = re.compile(r'\A\s*(?:#[^\n]*\n\s*)*[rRuU]?("""|\'\'\')\s*(.*?)\s*(?:\n|\1)', re.S)


def _command_modules() -> dict[str, str]:
    """Command name -> module name, found without importing anything."""
    return {
        info.name.replace("_", "-"): info.name
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    }


def _summary(module: str) -> str:
    """The first line of a command module's docstring, read from its source (no import)."""
    try:
        source = (Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8")
    except OSError:
        return ""
    found = _DOCSTRING.match(source)
    if not found:
        return ""
    # "`xzctl fleet validate|plan`: the fleet spec" -> "validate|plan: the fleet spec"
    return re.sub(r"^xzctl \S+ ", "", found.group(2).replace("`", ""))


def _flags_without_type(command: Any) -> Any:
    """`--force`, not `--force <bool>`: an on/off flag takes no value, so its help shows none (kubectl style)."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_without_type(sub)
    return command


def _load(name: str, module_name: str) -> Any:
    module = importlib.import_module(f"{__name__}.{module_name}")
    if isinstance(getattr(module, "app", None), typer.Typer):
        group = typer.main.get_group(module.app)
        group.name = name
        return _flags_without_type(group)
    if callable(getattr(module, "command", None)):
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name=name)(module.command)
        return _flags_without_type(typer.main.get_command(single))
    return None


class _LazyGroup(TyperGroup):
    """The root group: imports a command module on first use, lists commands from source alone."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_command_modules()))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        loaded = super().get_command(ctx, cmd_name)
        module = _command_modules().get(cmd_name)
        if loaded is None and module is not None:
            loaded = _load(cmd_name, module)
            if loaded is not None:
                self.add_command(loaded, cmd_name)
        return loaded

    def format_commands(self, _ctx: Any, formatter: Any) -> None:
        rows = [(name, _summary(module)) for name, module in _command_modules().items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="xzctl",
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Control plane for a Xiaozhi ESP32 voice-assistant fleet: spec, stacks, canaries, live checks.\n\n"
    "Example: xzctl fleet plan --fleet fleet.yaml",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help at the root: rich's help renderer alone costs more than the 1.25x start-up budget.
    # Command groups keep rich help (`xzctl fleet --help`).
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"xzctl {version('xzctl')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    _example: bool = typer.Option(
        False, "--example", help="Use the bundled example fleet, also for commands that touch the world."
    ),
    _show_version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print the version and exit."
    ),
) -> None:
    """xzctl: build, run and check a 1000-device Xiaozhi fleet from one fleet spec.

    Example: xzctl fleet plan --fleet fleet.yaml
    """
    _state["debug"] = debug  # --example is read by the --fleet option of the command that runs


# Flags of the root accepted anywhere before `--`, as kubectl does; options every command has, before it.
_ROOT_FLAGS = ("--debug", "--example")
_COMMAND_OPTIONS = ("-o", "--output", "-f", "--fleet")


def _global_flags_first(argv: list[str]) -> list[str]:
    """`xzctl fleet plan --debug` -> `xzctl --debug fleet plan`; `xzctl -o json fleet plan` -> `... -o json`."""
    end = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:end], argv[end:]
    moved = [a for a in head if a in _ROOT_FLAGS]
    rest = [a for a in head if a not in _ROOT_FLAGS]
    trailing: list[str] = []
    while len(rest) >= 2 and rest[0] in _COMMAND_OPTIONS:
        trailing += rest[:2]
        rest = rest[2:]
    return moved + rest + trailing + tail


def _silence_stdout() -> None:
    # Python would report the same broken pipe again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr, secrets masked."""
    register_environment()
    args = _global_flags_first(sys.argv[1:] if argv is None else argv)
    if "_XZCTL_COMPLETE" in os.environ:  # the shell asks for completions (see `xzctl completion`)
        from typer._completion_classes import completion_init

        completion_init()
    _state["debug"] = False  # set again by the root callback; a usage error fails before it, after an earlier --debug
    common = sys.modules.get("xzctl.cli._common")
    if common is not None:  # run() is called many times in one process by the tests
        common.CHOSEN_OUTPUT.clear()
        common.DOCUMENTS_PRINTED.clear()
    try:
        result = app(args=args, standalone_mode=False, prog_name="xzctl")
    except typer.Abort:
        print("xzctl: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except NoArgsIsHelpError as exc:  # bare `xzctl` or `xzctl fleet`: the help, not an error line
        exc.show()
        return ExitCode.BAD_INPUT
    except typer.TyperException as exc:  # usage errors (typer >= 0.26 carries its own copy of click)
        _error(f"xzctl: error: {exc.format_message()}")
        return ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code
    except XzctlError as exc:
        _error(f"xzctl: error: {exc.one_line()}")
        _error_document(args, exc.exit_code, exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        print("xzctl: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:  # `xzctl fleet plan | head -1`: the reader has what it wanted
        _silence_stdout()
        return ExitCode.OK
    except Exception as exc:  # a bug: still one line, with the way to see more
        _error(f"xzctl: internal error: {type(exc).__name__}: {exc} (rerun with --debug)")
        _error_document(args, ExitCode.INTERNAL, f"{type(exc).__name__}: {exc}", "rerun with --debug")
        return ExitCode.INTERNAL
    return result if isinstance(result, int) else ExitCode.OK


_MACHINE_FORMATS = ("json", "yaml")


def _requested_format(args: list[str]) -> str | None:
    """json or yaml when the command line asks for it (-o json, -ojson, --output=json), else None."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = args[i + 1] if arg in ("-o", "--output") and i + 1 < len(args) else None
        value = value or (arg[2:] if arg.startswith("-o") and not arg.startswith("--") else None)
        value = value or (arg.split("=", 1)[1] if arg.startswith("--output=") else None)
        if value and value.lower() in _MACHINE_FORMATS:
            return value.lower()
    return None


def _error_document(args: list[str], code: int, message: str, hint: str | None) -> None:
    """With -o json|yaml a failure is a document on stdout too, so a CI parser never reads nothing.

    `unknown` when the state could not be read (a dead Prometheus), `error` otherwise; the line on stderr stays."""
    fmt = _requested_format(args)
    common = sys.modules.get("xzctl.cli._common")  # loaded when a command ran far enough to parse its -o
    if fmt is None and common is not None and common.CHOSEN_OUTPUT:
        fmt = str(common.CHOSEN_OUTPUT[0])
    if fmt not in _MACHINE_FORMATS or (common is not None and common.DOCUMENTS_PRINTED):
        return  # a table was asked for, or the command's own document (with its reason) is out already
    document: dict[str, Any] = {
        "status": "unknown" if code == ExitCode.UNKNOWN else "error",
        "error": redact(message),
        "exit_code": int(code),
        **({"hint": redact(hint)} if hint else {}),
    }
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    sys.stdout.flush()


def _error(line: str) -> None:
    """The error line (after the traceback with --debug), with every known secret masked."""
    if _state["debug"]:
        sys.stderr.write(redact(traceback.format_exc()))
    print(redact(line), file=sys.stderr)
