"""`xzctl config get-contexts|use-context|set-context|view`: named contexts (fleet, Prometheus, state dir), like kubectl's."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import Output, OutputOption, emit, stderr
from xzctl.cli._layout import Column, print_table
from xzctl.config import config_path, current_context_name, load_config, set_context, use_context
from xzctl.errors import BadInputError

app = typer.Typer(
    help="Named contexts in $XDG_CONFIG_HOME/xzctl/config.yaml: fleet, Prometheus, state dir, kube context, "
    "deployer. Flags > environment > context > sandbox.\n\nExample: xzctl config use-context staging",
    no_args_is_help=True,
)


def _document() -> dict[str, Any]:
    config = load_config()
    current = current_context_name(config)
    return {
        "path": str(config_path()),
        "current_context": current,
        "contexts": {name: c.model_dump(exclude_none=True) for name, c in config.contexts.items()},
    }


@app.command("get-contexts")
def get_contexts(output: Output = OutputOption) -> None:
    """List the contexts; `*` marks the current one.

    Example: xzctl config get-contexts -o json
    """
    data = _document()

    columns = [Column("current"), Column("name"), Column("fleet", 1), Column("prometheus", 2), Column("state dir", 3)]

    def table(console: Console) -> None:
        keys = ("fleet", "prometheus", "state_dir")
        current = data["current_context"]
        rows = [
            ["*" if name == current else "", escape(name), *(escape(str(c.get(k, "-"))) for k in keys)]
            for name, c in data["contexts"].items()
        ]
        if rows:
            print_table(console, columns, rows, wide=output is Output.WIDE)
        else:
            console.print(f"no contexts in {escape(data['path'])}")

    emit(data, output, table)


@app.command("use-context")
def use(name: str = typer.Argument(..., help="Context to make current.")) -> None:
    """Make a context the current one (writes current_context in the config file).

    Example: xzctl config use-context staging
    """
    where = use_context(name)
    stderr.print(f"switched to context {escape(name)} ({escape(str(where))})")


@app.command("set-context")
def set_(
    name: str | None = typer.Argument(None, help="Context to create or change (default with --current: the current)."),
    *,
    current: bool = typer.Option(False, "--current", help="Change the current context."),
    fleet: str | None = typer.Option(None, "--fleet", help='Fleet spec path ("" removes the key, as for all).'),
    prometheus: str | None = typer.Option(None, "--prometheus", help="Prometheus URL."),
    state_dir: str | None = typer.Option(None, "--state-dir", help="State dir (sandbox, Pulumi backend, rollouts)."),
    kube_context: str | None = typer.Option(None, "--kube-context", help="kubectl context for provisioning."),
    deployer: str | None = typer.Option(None, "--deployer", help="auto, sandbox or pulumi."),
    bearer_token_env: str | None = typer.Option(None, "--bearer-token-env", help="Variable holding the token."),
    basic_auth_env: str | None = typer.Option(None, "--basic-auth-env", help="Variable holding USER:PASSWORD."),
) -> None:
    """Create a context or set some of its keys, like `kubectl config set-context` (the file's comments stay).

    Example: xzctl config set-context staging --prometheus http://prometheus.staging:9090 --fleet fleet.yaml
    """
    if current == (name is not None):
        raise BadInputError("name a context or give --current, not both", hint="xzctl config set-context NAME ...")
    target = name or current_context_name(load_config())
    if target is None:
        raise BadInputError("no current context to change", hint="xzctl config set-context NAME ... first")
    auth = {
        k: v
        for k, v in {"bearer_token_env": bearer_token_env, "basic_auth_env": basic_auth_env}.items()
        if v is not None
    }
    values = {
        "fleet": fleet,
        "prometheus": prometheus,
        "state_dir": state_dir,
        "kube_context": kube_context,
        "deployer": deployer,
        "prometheus_auth": auth or None,
    }
    known = target in load_config().contexts
    where, _ = set_context(target, values)
    verb = "modified" if known else "created"
    stderr.print(f"context {escape(target)} {verb} ({escape(str(where))}); use it: xzctl config use-context {target}")


@app.command()
def view(output: Output = typer.Option(Output.YAML, "--output", "-o", help="Output format.")) -> None:
    """Print the config file as xzctl reads it (secrets are never in it: auth names variables).

    Example: xzctl config view -o json
    """
    data = _document()
    emit(data, Output.JSON if output is Output.JSON else Output.YAML, lambda _console: None)
