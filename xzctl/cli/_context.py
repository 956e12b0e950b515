"""The current context (see `xzctl.config`) as CLI defaults: below flags and environment, above the sandbox."""

from __future__ import annotations

from pathlib import Path

from xzctl.config import Context, current_context


def active() -> tuple[str, Context] | None:
    return current_context()


def state_dir_option(value: Path | None) -> Path | None:
    """Callback of --state-dir: the flag or $XZCTL_STATE_DIR, else the context's, else None (./.xzctl)."""
    if value is not None:
        return value
    context = active()
    return context[1].state_path() if context else None


def kube_context_option(value: str | None) -> str | None:
    """Callback of provision --context: the flag, else the xzctl context's kube_context, else None (the spec's)."""
    if value is not None:
        return value
    context = active()
    return context[1].kube_context if context else None


def context_url() -> str | None:
    """The context's Prometheus URL: the `context_url` of the Prometheus target resolution."""
    context = active()
    return context[1].prometheus if context else None


def context_heading() -> str:
    """What every live command shows first: which context it runs in."""
    context = active()
    return f"context {context[0]}" if context else "context (none)"
