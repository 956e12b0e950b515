"""Named contexts, like kubectl's: which fleet, Prometheus, state dir, kube context and deployer a command uses.

The file is `$XZCTL_CONFIG`, else `$XDG_CONFIG_HOME/xzctl/config.yaml` (default `~/.config/xzctl/config.yaml`):

    current_context: staging
    contexts:
      staging:
        fleet: ~/fleets/staging.yaml
        prometheus: https://prometheus.staging.example:9090
        prometheus_auth: {bearer_token_env: STAGING_PROM_TOKEN}
        state_dir: ~/.local/state/xzctl/staging
        kube_context: k3s-beijing
        deployer: pulumi

`$XZCTL_CONTEXT` picks another context for one command. Every value is a default: flags > environment >
context > sandbox, the same rule for every command. Secrets never live here: auth names the variable holding them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xzctl.errors import BadInputError
from xzctl.state import atomic_write

CONFIG_ENV = "XZCTL_CONFIG"
CONTEXT_ENV = "XZCTL_CONTEXT"
MAX_CONFIG_BYTES = 256 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrometheusAuth(_Strict):
    """Where the Prometheus credentials are, never the credentials themselves."""

    bearer_token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    basic_auth_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="USER:PASSWORD")


class Context(_Strict):
    fleet: str | None = None
    prometheus: str | None = None
    prometheus_auth: PrometheusAuth | None = None
    state_dir: str | None = None
    kube_context: str | None = None
    deployer: str | None = Field(default=None, pattern=r"^(auto|sandbox|pulumi)$")

    def fleet_path(self) -> Path | None:
        return Path(self.fleet).expanduser() if self.fleet else None

    def state_path(self) -> Path | None:
        return Path(self.state_dir).expanduser() if self.state_dir else None

    def bearer_token(self) -> str | None:
        """The token from the variable the context names (None when it names none or it is unset)."""
        name = self.prometheus_auth.bearer_token_env if self.prometheus_auth else None
        return os.environ.get(name) if name else None

    def basic_auth(self) -> str | None:
        name = self.prometheus_auth.basic_auth_env if self.prometheus_auth else None
        return os.environ.get(name) if name else None


class Config(_Strict):
    current_context: str | None = None
    contexts: dict[str, Context] = Field(default_factory=dict)


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "xzctl" / "config.yaml"


def _read(where: Path) -> str | None:
    """The config file's text (bounded), or None when there is none."""
    try:
        if where.stat().st_size > MAX_CONFIG_BYTES:
            raise BadInputError(f"{where}: more than {MAX_CONFIG_BYTES:,} bytes, not an xzctl config")
        return where.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{where}: cannot read the xzctl config: {exc}") from None


def load_config(path: Path | None = None) -> Config:
    """The config file, or an empty config when there is none."""
    where = path or config_path()
    text = _read(where)
    return Config() if text is None else _parse(where, text)


def _parse(where: Path, text: str) -> Config:
    try:
        raw: Any = yaml.safe_load(text) or {}
        return Config.model_validate(raw)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{where}: not YAML: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where_in = ".".join(str(p) for p in first["loc"])
        raise BadInputError(
            f"{where}: {where_in}: {first['msg']}", hint="see `xzctl config view` and the README's Contexts"
        ) from None


def current_context_name(config: Config) -> str | None:
    return os.environ.get(CONTEXT_ENV) or config.current_context


def current_context(path: Path | None = None) -> tuple[str, Context] | None:
    """The context in use (name and values), or None when no config or no current context."""
    config = load_config(path)
    name = current_context_name(config)
    if name is None:
        return None
    if name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise BadInputError(f"context {name!r} is not in {path or config_path()}", hint=f"known contexts: {known}")
    return name, config.contexts[name]


def _reads_back(name: str) -> bool:
    try:
        return bool(yaml.safe_load(name) == name)
    except yaml.YAMLError:
        return False


def _edit(where: Path, text: str, change: Callable[[Any], None]) -> None:
    """Apply `change` to the file's YAML in round trip (comments, key order and quotes stay) and write it atomically."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    editor = YAML()
    editor.preserve_quotes = True
    editor.width = MAX_CONFIG_BYTES  # never re-wrap a long line
    try:
        document = editor.load(text) if text.strip() else None
    except YAMLError as exc:  # stricter than the reader: e.g. a key given twice
        raise BadInputError(f"{where}: cannot edit in place: {str(exc).splitlines()[0]}") from None
    if document is None:
        from ruamel.yaml.comments import CommentedMap

        document = CommentedMap()
    change(document)
    out = io.StringIO()
    editor.dump(document, out)
    atomic_write(where, out.getvalue())


def _name(name: str) -> Any:
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    # ruamel writes YAML 1.2, the reader is YAML 1.1: quote a name such as `on` or `1` that 1.1 reads otherwise.
    return name if _reads_back(name) else SingleQuotedScalarString(name)


def use_context(name: str, path: Path | None = None) -> Path:
    """Make `name` the current context; rewrites only that key (comments and order stay), atomically."""
    where = path or config_path()
    text = _read(where)
    config = Config() if text is None else _parse(where, text)
    if text is None or name not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise BadInputError(f"context {name!r} is not in {where}", hint=f"known contexts: {known}")

    def change(document: Any) -> None:
        document["current_context"] = _name(name)

    _edit(where, text, change)
    return where


def set_context(name: str, values: dict[str, Any], path: Path | None = None) -> tuple[Path, Context]:
    """Create context `name` or set the given keys of it (kubectl's `config set-context`); checked, then written.

    `values` are Context fields (`prometheus_auth` a dict merged into the one there); None leaves a key as it is,
    "" removes it."""
    where = path or config_path()
    text = _read(where) or ""
    config = _parse(where, text) if text else Config()
    merged: dict[str, Any] = config.contexts[name].model_dump(exclude_none=True) if name in config.contexts else {}
    for key, given in values.items():
        value = given
        if isinstance(given, dict):
            value = {k: v for k, v in {**merged.get(key, {}), **given}.items() if v is not None and v != ""} or ""
        if value == "":
            merged.pop(key, None)
        elif value is not None:
            merged[key] = value
    try:
        context = Context.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadInputError(f"context {name}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None

    def change(document: Any) -> None:
        from ruamel.yaml.comments import CommentedMap

        contexts = document.setdefault("contexts", CommentedMap())
        entry = contexts.get(name)
        if not isinstance(entry, dict):
            entry = contexts[_name(name)] = CommentedMap()
        for key in [k for k in entry if k not in merged]:
            del entry[key]
        for key, value in context.model_dump(exclude_none=True).items():
            entry[key] = value

    where.parent.mkdir(parents=True, exist_ok=True)
    _edit(where, text, change)
    return where, context
