"""How a rollout comes to be: from the operator's flags (`new_rollout`), or as the undo of a promoted one.

An undo is a rollout like any other (the same steps, analysis and locks), of the image the promoted rollout
replaced, over the nodes it promoted, with the settings and thresholds it recorded: going back to a release is
judged like going forward to one (`kubectl argo rollouts undo` also runs the steps again).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from xzctl.errors import BadInputError, ConflictError, NotFoundError
from xzctl.manifests.pins import ImagePins
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.plan import canary_nodes, normalise_service, plan_steps, scoped, step_locks, with_lock_units
from xzctl.rollout.state import UNDOABLE, RolloutState, Settings, StateStore, Thresholds
from xzctl.spec.models import Fleet


def file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def new_rollout(
    fleet: Fleet,
    fleet_path: str,
    service: str,
    image: str,
    *,
    rollout_id: str,
    baseline: ImagePins,
    settings: Settings,
    thresholds: Thresholds,
    deployer: Deployer,
    prometheus_url: str,
    first_region: str | None = None,
    only_nodes: list[str] | None = None,
    skip_nodes: dict[str, str] | None = None,
) -> RolloutState:
    """A rollout ready to run (not yet saved nor locked). `skip_nodes`: node -> why the operator left it out."""
    skip = dict(skip_nodes or {})
    steps = plan_steps(fleet, service, first_region, only=only_nodes, skip=list(skip))
    nodes = [n for s in steps for n in s.nodes]
    missing = [n for n in nodes if service not in baseline.nodes.get(n, {})]
    if missing:
        raise BadInputError(f"the deploy target does not know {service} on {', '.join(missing)}")
    busy = [n for n in nodes if baseline.get(n, service).canary]
    if busy:
        raise ConflictError(
            f"{', '.join(busy)} already run a {service} canary",
            hint="finish or abort that rollout first (xzctl rollout status)",
        )
    if all(baseline.get(n, service).stable == image for n in nodes):
        raise BadInputError(f"{image} already runs as the stable {service} on every node; nothing to roll out")
    steps = with_lock_units(fleet, steps, per_region=deployer.config().get("kind") == "pulumi")
    locked = step_locks(steps, list(range(len(steps))))
    baseline = scoped(baseline, locked)
    now = time.time()
    return RolloutState(
        id=rollout_id,
        service=service,
        image=image,
        fleet=fleet_path,
        spec_hash=file_hash(fleet_path),
        settings=settings,
        thresholds=thresholds,
        deployer=deployer.config(),
        prometheus_url=prometheus_url,
        nodes=locked,
        steps=steps,
        baseline=baseline.to_json(),
        applied=baseline.to_json(),
        skipped_nodes=skip,
        created=now,
        updated=now,
    )


def undo_source(store: StateStore, service: str | None, rollout_id: str | None) -> tuple[RolloutState, str]:
    """The promoted rollout an undo reverses (the one named, else the latest promoted or partial one of
    `service`) and the image it replaced on every node it promoted."""
    if rollout_id:
        source = store.load(rollout_id)
        if source.phase not in UNDOABLE:
            raise BadInputError(
                f"rollout {source.id} is {source.phase.value}: only a promoted (or partial) rollout can be undone",
                hint=f"a rollout that did not finish goes back with: xzctl rollout abort {source.id}",
            )
    else:
        if service is None:
            raise BadInputError("name the service (or a rollout id) to undo", hint="xzctl rollout undo asr")
        name = normalise_service(service)
        done = [s for s in store.all() if s.service == name and s.phase in UNDOABLE]
        if not done:
            raise NotFoundError(
                f"no promoted {name} rollout recorded in {store.dir}: no previous release to return to",
                hint="see: xzctl rollout status",
            )
        source = max(done, key=lambda s: s.updated)
    nodes = canary_nodes(source.steps, len(source.steps) - 1)
    baseline = ImagePins.from_json(source.baseline)
    previous = {n: baseline.get(n, source.service).stable for n in nodes}
    images = sorted(set(previous.values()))
    if len(images) != 1:
        per_node = ", ".join(f"{n}: {i}" for n, i in previous.items())
        raise BadInputError(
            f"rollout {source.id} replaced more than one {source.service} image ({per_node})",
            hint=f"return each group with: xzctl rollout canary {source.service.replace('_', '-')} IMAGE --node NODE",
        )
    return source, images[0]
