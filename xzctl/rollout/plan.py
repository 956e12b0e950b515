"""The steps of a node-by-node canary and the desired pins of each.

Steps: one edge node of the first region (its canary track beside stable), then the rest of that region,
then each other region in spec order. The canary nodes of step k are the nodes of steps 0..k; after the
last step the image is promoted to stable on every node that took the canary and the canary track goes.
"""

from __future__ import annotations

from xzctl.errors import BadInputError, NotFoundError
from xzctl.manifests.pins import ROLLABLE_SERVICES, ImagePins, ServicePin
from xzctl.rollout.state import Step
from xzctl.spec.models import Fleet

# The metrics `service` label the analysis reads for each rollable service: the front services are judged
# on what devices feel, end to end.
METRIC_SERVICE = {
    "vad": "vad",
    "asr": "asr",
    "tts": "tts",
    "llm": "llm",
    "xiaozhi_server": "end_to_end",
    "coordinator": "end_to_end",
}


def normalise_service(service: str) -> str:
    name = service.replace("-", "_")
    if name == "edge_coordinator":
        name = "coordinator"
    if name not in ROLLABLE_SERVICES:
        raise BadInputError(
            f"{service!r} is not a service a rollout can change", hint=f"one of: {', '.join(ROLLABLE_SERVICES)}"
        )
    return name


def plan_steps(
    fleet: Fleet,
    service: str,
    first_region: str | None = None,
    *,
    only: list[str] | None = None,
    skip: list[str] | None = None,
) -> list[Step]:
    """The steps over every node running `service`, or only the `only` nodes; `skip` nodes are left out."""
    if first_region is not None and first_region not in fleet.regions:
        raise NotFoundError(f"no region {first_region!r} in the fleet", hint=f"one of: {', '.join(fleet.regions)}")
    known = {n.id for n in fleet.edge_nodes()}
    unknown = [n for n in [*(only or []), *(skip or [])] if n not in known]
    if unknown:
        raise NotFoundError(f"no edge node {', '.join(unknown)} in the fleet", hint="see: xzctl fleet plan")
    order = list(fleet.regions)
    if first_region is not None:
        order.remove(first_region)
        order.insert(0, first_region)
    # llm and coordinator are optional: only the nodes that run them carry them
    carriers = {n.id for n in fleet.edge_nodes() if getattr(n.services, service) is not None}
    carriers = {n for n in carriers if (only is None or n in only) and n not in (skip or [])}
    if not carriers:
        raise BadInputError(f"no edge node left to roll {service} out to")
    steps: list[Step] = []
    for region in order:
        nodes = [n.id for n in fleet.regions[region].edge_nodes if n.id in carriers]
        if not nodes:
            continue
        if not steps:
            steps.append(Step(name=f"canary node {nodes[0]}", region=region, nodes=nodes[:1]))
            nodes = nodes[1:]
            if not nodes:
                continue
            steps.append(Step(name=f"rest of {region}", region=region, nodes=nodes))
        else:
            steps.append(Step(name=f"region {region}", region=region, nodes=nodes))
    return steps


def canary_nodes(steps: list[Step], upto: int) -> list[str]:
    """Nodes carrying the canary once step `upto` is applied."""
    return [n for s in steps[: upto + 1] for n in s.nodes]


def step_pins(baseline: ImagePins, service: str, image: str, nodes: list[str]) -> ImagePins:
    pins = baseline
    for node in nodes:
        pins = pins.with_pin(node, service, ServicePin(stable=baseline.get(node, service).stable, canary=image))
    return pins


def promoted_pins(baseline: ImagePins, service: str, image: str, nodes: list[str]) -> ImagePins:
    pins = baseline
    for node in nodes:
        pins = pins.with_pin(node, service, ServicePin(stable=image, canary=None))
    return pins


def scoped(pins: ImagePins, nodes: list[str]) -> ImagePins:
    """Only the pins of `nodes`: a rollout deploys nothing outside the nodes it locks."""
    return ImagePins({n: pins.nodes[n] for n in nodes if n in pins.nodes})


def with_lock_units(fleet: Fleet, steps: list[Step], per_region: bool) -> list[Step]:
    """`steps` with what each one's deploy changes: its nodes, or every node of its region when one deploy rewrites a
    whole region (a Pulumi stack update sets every node's pins, so two rollouts in one region would undo each other)."""
    if not per_region:
        return steps
    return [s.model_copy(update={"locks": [n.id for n in fleet.regions[s.region].edge_nodes]}) for s in steps]


def step_locks(steps: list[Step], indices: list[int]) -> list[str]:
    """The nodes the deploys of steps `indices` change (a node once)."""
    return list(dict.fromkeys(n for i in indices for n in steps[i].locks or steps[i].nodes))
