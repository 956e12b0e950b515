"""Options and output rendering shared by every command."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os
import re
import sys
import typing
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from xzctl.cli._context import state_dir_option
from xzctl.cli._fleet import fleet_option
from xzctl.errors import BadInputError
from xzctl.prom.client import DEFAULT_MAX_RESPONSE_BYTES
from xzctl.prom.target import PrometheusTarget, parse_basic_auth, parse_headers, resolve_url


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 as for a failed check; `xzctl.cli.run` makes a closed pipe exit 0.
        raise BrokenPipeError


def _console(*, stderr: bool) -> Console:
    # Off a terminal (CI logs, pipes) rich would squeeze wide tables into 80 columns; COLUMNS still wins.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    # No emoji codes: names are data, and Pulumi types such as xzctl:cloud:X would print a cloud emoji.
    return _Console(stderr=stderr, width=width, highlight=False, soft_wrap=False, emoji=False)


stdout = _console(stderr=False)
stderr = _console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"  # the table with every column, whatever the terminal's width
    JSON = "json"
    YAML = "yaml"


FleetOption = typer.Option(
    None,
    "--fleet",
    "-f",
    envvar="XZCTL_FLEET",
    help="Fleet spec file. Default: the context's, else ./fleet.yaml, else the bundled example (read commands only).",
    show_default=False,
    callback=fleet_option,
)
StateDirOption = typer.Option(
    None,
    "--state-dir",
    envvar="XZCTL_STATE_DIR",
    help="State directory: sandbox, Pulumi file backend, rollouts. Default: the context's, else ./.xzctl",
    show_default=False,
    callback=state_dir_option,
)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, flag: str) -> float:
    """Seconds from a duration flag: PromQL's own form (500ms, 30s, 5m, 6h, 7d) or a bare number of seconds.

    The one duration type of every flag."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)|(\d+(?:\.\d+)?)", text.strip())
    if not match:
        raise BadInputError(f"{flag} {text!r} is not a duration", hint="e.g. 30 (seconds), 500ms, 30s, 5m, 6h, 7d")
    if match.group(3) is not None:
        return float(match.group(3))
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def promql_duration(text: str, flag: str) -> str:
    """The flag as a PromQL range: a bare number of seconds gets its unit (`30` -> `30s`)."""
    seconds = parse_duration(text, flag)
    return text.strip() if not re.fullmatch(r"[\d.]+", text.strip()) else f"{max(1, round(seconds))}s"


def duration(text: str) -> float:
    """Typer parser of duration options (`--interval 30s`, `--interval 30`)."""
    try:
        return parse_duration(text, "")
    except BadInputError:
        raise typer.BadParameter(f"{text!r} is not a duration: e.g. 30 (seconds), 500ms, 30s, 5m, 6h, 7d") from None


# The running command's format, and whether it printed a document already: the root answers a failure in kind,
# once (xzctl.cli.run).
CHOSEN_OUTPUT: list[Output] = []
DOCUMENTS_PRINTED: list[Output] = []


def remember_output(value: Output) -> Output:
    """Option callback: note the format, defaults included (`check all` prints JSON unless told otherwise)."""
    CHOSEN_OUTPUT[:] = [value]
    return value


OutputOption = typer.Option(
    Output.TABLE, "--output", "-o", help="Output format.", case_sensitive=False, callback=remember_output
)


def emit(data: Any, output: Output, table: Callable[[Console], None]) -> None:
    """Print `data` as JSON/YAML for machines, or call `table` to draw it for people."""
    if output in (Output.JSON, Output.YAML):
        DOCUMENTS_PRINTED.append(output)
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    elif output is Output.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        table(stdout)


def print_warnings(warnings: list[Any]) -> None:
    """One line each (a terminal may fold it; grep and CI logs keep it whole), each said once."""
    for text in dict.fromkeys(w.render() for w in warnings):
        stderr.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)


def option_set(cls: type[Any], name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every option of the dataclass `cls` (fields with typer.Option defaults), passed as `name`.

    One declaration of a shared option group instead of the same dozen parameters in every command.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(cls)
        own = [p for p in inspect.signature(func).parameters.values() if p.name != name]
        extra = [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
            for f in dataclasses.fields(cls)
        ]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            group = cls(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(cls)})
            return func(*args, **kwargs, **{name: group})

        command.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
        return command

    return decorate


BearerTokenOption = typer.Option(
    None, "--bearer-token", envvar="XZCTL_PROMETHEUS_TOKEN", help="Bearer token for Prometheus.", show_default=False
)
BasicAuthOption = typer.Option(
    None, "--basic-auth", envvar="XZCTL_PROMETHEUS_BASIC_AUTH", help="USER:PASSWORD for Prometheus.", show_default=False
)
HeaderOption = typer.Option(
    None, "--header", "-H", help="Extra HTTP header 'Name: value' (repeatable), e.g. X-Scope-OrgID: fleet-a."
)


@dataclasses.dataclass(frozen=True)
class PrometheusAuth:
    """Credentials and headers for Prometheus, given again to every command that reads it."""

    bearer_token: str | None = BearerTokenOption
    basic_auth: str | None = BasicAuthOption
    header: list[str] | None = HeaderOption

    def given(self) -> list[str]:
        """Which kinds of credentials the flags gave (recorded by name, never by value)."""
        kinds = (("--bearer-token", self.bearer_token), ("--basic-auth", self.basic_auth), ("--header", self.header))
        return [kind for kind, value in kinds if value]

    def bind(self, url: str, source: str) -> PrometheusTarget:
        """A target at `url` with these credentials (a URL's own user:password becomes basic auth)."""
        return PrometheusTarget(
            url,
            source=source,
            bearer_token=self.bearer_token,
            basic_auth=parse_basic_auth(self.basic_auth),
            headers=parse_headers(self.header),
        )


@dataclasses.dataclass(frozen=True)
class PrometheusOptions(PrometheusAuth):
    """The Prometheus options of every live command (check, capacity, images diff, rollout canary)."""

    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        help="Prometheus URL. Default: $XZCTL_PROMETHEUS_URL, else the context's, else the running sandbox's.",
        show_default=False,
    )
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.001, help="Seconds per round of Prometheus queries (connect, answer and retries)."
    )
    retries: int = typer.Option(2, "--retries", min=0, max=10, help="Retries of transient errors (reset, 502/503/504).")
    max_response_size: int = typer.Option(
        DEFAULT_MAX_RESPONSE_BYTES, "--max-response-size", min=1, help="Bytes one Prometheus answer may have."
    )
    state_dir: Path | None = StateDirOption
    show_queries: bool = typer.Option(
        False, "--show-queries", help="Print each PromQL query on stderr as it is sent (paste into Grafana)."
    )

    def target(self) -> PrometheusTarget:
        """The target by the one rule (flag > env > context > running sandbox); a context's URL brings its auth."""
        from xzctl.cli._context import active
        from xzctl.sandbox import current_prometheus_url, default_state_dir

        context = active()
        url, source = resolve_url(
            self.prometheus,
            os.environ,
            context_url=context[1].prometheus if context else None,
            sandbox_url=current_prometheus_url(self.state_dir or default_state_dir()),
        )
        auth: PrometheusAuth = self
        if context is not None and source == "context" and not (self.bearer_token or self.basic_auth):
            auth = PrometheusAuth(context[1].bearer_token(), context[1].basic_auth(), self.header)
        target = auth.bind(url, f"context {context[0]}" if source == "context" and context else source)
        return dataclasses.replace(
            target,
            timeout=self.timeout,
            retries=self.retries,
            max_response_bytes=self.max_response_size,
            on_query=_say_query if self.show_queries else None,
        )


def _say_query(promql: str) -> None:
    print(f"promql: {promql}", file=sys.stderr, flush=True)  # one whole line each, even from parallel queries
