"""A rollout as `status` shows it: phase, steps, nodes left out, the driving process and the nodes it locks, last
analysis results."""

from __future__ import annotations

import time
from typing import Any

from xzctl.rollout.plan import canary_nodes
from xzctl.rollout.state import Phase, RolloutState, StateStore, StepStatus


def summarize(
    store: StateStore, state: RolloutState, *, analyses: int = 10, now: float | None = None
) -> dict[str, Any]:
    """The rollout as status shows it (and `--output json` prints): phase, steps, last analysis results."""
    driver = store.driver(state) if not state.terminal else None
    done = sum(s.status == StepStatus.PASSED for s in state.steps)
    return {
        "id": state.id,
        "service": state.service,
        "image": state.image,
        "phase": state.phase.value,
        "cause": state.cause.value,
        "reason": state.reason,
        "exit_code": state.exit_code,
        "step": min(state.step + 1, len(state.steps)),
        "progress": f"{done}/{len(state.steps)}",
        "age_seconds": round((now if now is not None else time.time()) - state.created, 1),
        "steps": [
            {"name": s.name, "region": s.region, "nodes": s.nodes, "status": s.status.value, "successes": s.successes}
            for s in state.steps
        ],
        "skipped_nodes": state.skipped_nodes,
        "canary_nodes": canary_nodes(state.steps, min(state.step, len(state.steps) - 1)),
        "driver_pid": driver.pid if driver else None,
        "locked_nodes": store.held(state),  # what it holds now: another rollout waits for these
        "interrupted": not state.terminal and state.phase != Phase.PAUSED and driver is None,
        "pending_deploy": state.pending.purpose.value if state.pending else None,
        "settings": state.settings.model_dump(),
        "thresholds": state.thresholds.model_dump(),
        "deployer": state.deployer,
        "prometheus": state.prometheus_url,
        "analysis": [m.model_dump(mode="json") for m in state.analysis[-analyses:]],
        "created": state.created,
        "updated": state.updated,
    }
