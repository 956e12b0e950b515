"""The xzctl command line: parse, call the core, render. The one place errors become exit codes.

Each module in this package is one command group (`fleet.py` -> `xzctl fleet ...`) exposing a Typer
`app`, or one command exposing `command`. Modules import only light things at module level so that
`xzctl --help` never pays for pulumi, kubernetes or ansible.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback

import click
import typer

from xzctl.errors import ExitCode, XzctlError

_state = {"debug": False}

app = typer.Typer(
    name="xzctl",
    help="Control plane for a Xiaozhi ESP32 voice-assistant fleet: spec, stacks, canaries, live checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """xzctl: build, run and check a 1000-device Xiaozhi fleet from one fleet spec."""
    _state["debug"] = debug


def _register() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        name = info.name.replace("_", "-")
        if isinstance(getattr(module, "app", None), typer.Typer):
            app.add_typer(module.app, name=name)
        elif callable(getattr(module, "command", None)):
            app.command(name=name)(module.command)


_register()


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; every error becomes one line on stderr."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="xzctl")
    except click.exceptions.Abort:
        print("xzctl: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return ExitCode.BAD_INPUT if exc.exit_code == 2 else exc.exit_code
    except XzctlError as exc:
        if _state["debug"]:
            traceback.print_exc()
        print(f"xzctl: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("xzctl: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: still one line, with the way to see more
        if _state["debug"]:
            traceback.print_exc()
        print(f"xzctl: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr)
        return 70
    return result if isinstance(result, int) else ExitCode.OK
