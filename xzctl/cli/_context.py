"""The current context (see `xzctl.config`) as CLI defaults: below flags and environment, above the sandbox."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from xzctl.config import Context, current_context

if TYPE_CHECKING:
    from xzctl.spec.base import KubernetesTarget


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


def sandbox_kubeconfig(target: KubernetesTarget, kube_context: str | None, state: Path | None) -> Path | None:
    """The kubeconfig of a cluster the spec names by the sandbox's context alone (examples/fleet-sandbox.yaml): the
    running sandbox's, whose path changes at every `sandbox up`. One rule: --kubeconfig > the spec's > $KUBECONFIG >
    the sandbox's, so None when any of those names one, the cluster is another, or no sandbox runs Kubernetes."""
    from xzctl.sandbox import sandbox_status
    from xzctl.sandbox.kubernetes import CONTEXT
    from xzctl.state import state_dir

    if (kube_context or target.context) != CONTEXT or target.kubeconfig or os.environ.get("KUBECONFIG"):
        return None
    running = sandbox_status(state_dir(state))
    if running is None or not running.kubeconfig or not all(running.alive().values()):
        return None
    return Path(running.kubeconfig)
