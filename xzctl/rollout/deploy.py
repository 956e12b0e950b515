"""How a rollout step reaches the fleet: a Deployer makes the desired `ImagePins` real.

Two real deployers share one protocol:
- `StackDeployer`: production. Runs the Pulumi stack update with the new pins (the stack program computes
  every Deployment, `<service>-canary` included, from the pins). The update function is injected by the
  caller (the CLI passes xzctl.provision's), which keeps the rollout free of Pulumi imports.
- `SimulatorDeployer`: the sandbox. Tells the fleet simulator what runs where, one `deploy` control
  action per changed (node, service, track).

`apply` must be idempotent: after a crash the rollout re-applies the pins it had recorded as pending.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from xzctl.errors import BadInputError, ExternalToolError, XzctlError
from xzctl.manifests.pins import ImagePins, ServicePin


class Deployer(Protocol):
    def config(self) -> dict[str, Any]:
        """What the rollout state records to rebuild this deployer on resume (`kind` + parameters)."""
        ...

    def apply(self, pins: ImagePins, previous: ImagePins | None) -> None:
        """Make `pins` the fleet's desired state; `previous` (None: unknown) lets a deployer send only changes."""
        ...

    def current(self) -> ImagePins | None:
        """What runs now, when the target can tell (None: the fleet spec's pins are taken as the baseline)."""
        ...


class StackDeployer:
    """One Pulumi stack per region: a step updates only the stacks whose nodes' pins changed."""

    def __init__(
        self,
        update: Callable[[str, ImagePins], Any],
        regions: Mapping[str, Sequence[str]],
        config: dict[str, Any],
        current: Callable[[], ImagePins | None] | None = None,
    ) -> None:
        self._update = update
        self._regions = regions
        self._current = current
        self._config = {"kind": "pulumi", **config}

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def current(self) -> ImagePins | None:
        return self._current() if self._current is not None else None

    def apply(self, pins: ImagePins, previous: ImagePins | None) -> None:
        known = previous if previous is not None else self.current()  # after a crash: what the stacks run
        for region, nodes in self._regions.items():
            if not any(n in pins.nodes for n in nodes):
                continue  # not this rollout's region: another rollout may be changing it
            if previous is None or any(pins.nodes.get(n) != previous.nodes.get(n) for n in nodes):
                first = canaries_removed_first(pins, known, nodes) if known is not None else None
                if first is not None:
                    self._update(region, first)
                self._update(region, pins)


def canaries_removed_first(pins: ImagePins, previous: ImagePins, nodes: Sequence[str]) -> ImagePins | None:
    """The pins of a first update when `pins` promotes canaries of `nodes`: those canaries gone, their stable
    not yet changed (None when nothing is promoted). Pulumi deletes only after it has updated, so in one update
    the stable Deployment's surge pod waits for the room the canary's pod holds, and the update never ends on a
    full node (seen on the real engine)."""
    first = pins
    for node in nodes:
        for service, pin in pins.nodes.get(node, {}).items():
            old = previous.nodes.get(node, {}).get(service)
            if old is not None and old.canary is not None and pin.canary is None and pin.stable != old.stable:
                first = first.with_pin(node, service, ServicePin(old.stable))
    return None if first is pins else first


class SimulatorDeployer:
    """The sandbox: the simulator's nodes, and with `real_node` the sandbox real node's own services too (its
    `apply` starts and stops real replicas: xzctl.sandbox.realcanary), after the simulator's copy of it."""

    def __init__(
        self,
        control: Callable[[dict[str, Any]], Any],
        read_state: Callable[[], dict[str, Any]],
        simulator_url: str,
        instance: str = "",
        real_node: tuple[str, Callable[[ImagePins, ImagePins | None], None]] | None = None,
    ) -> None:
        self._control = control
        self._read_state = read_state
        self.url = simulator_url
        self.instance = instance  # which sandbox run: a resume must not deploy to a newer one
        self.real_node = real_node  # (node id, apply)

    def current(self) -> ImagePins:
        """The images the simulator runs now (its /state), per node, service and track."""
        nodes = self._read_state().get("nodes", {})
        return ImagePins.from_json({node: data["images"] for node, data in nodes.items()})

    def config(self) -> dict[str, Any]:
        config = {"kind": "sandbox", "simulator_url": self.url, "instance": self.instance}
        return config | ({"real_node": self.real_node[0]} if self.real_node else {})

    def apply(self, pins: ImagePins, previous: ImagePins | None) -> None:
        for node, services in sorted(pins.nodes.items()):
            for service, pin in sorted(services.items()):
                old = previous.nodes.get(node, {}).get(service) if previous is not None else None
                for track, image in (("stable", pin.stable), ("canary", pin.canary)):
                    if old is not None and getattr(old, track) == image:
                        continue
                    action = {"action": "deploy", "node": node, "service": service, "track": track, "image": image}
                    try:
                        self._control(action)
                    except XzctlError as exc:
                        raise ExternalToolError(
                            f"simulator at {self.url} refused to deploy {image} on {node}/{service}/{track}: "
                            f"{exc.message}"
                        ) from exc
        if self.real_node is not None:
            self.real_node[1](pins, previous)


def choose_deployer(explicit: str | None, environment: str, sandbox_up: bool) -> str:
    """`--deployer`, else the spec's environment: production rolls out with Pulumi, anything else in the
    sandbox. Never silently the other one: a staging spec with no sandbox is an error, not a Pulumi run."""
    if explicit not in (None, "sandbox", "pulumi"):
        raise BadInputError(f"--deployer must be sandbox or pulumi, not {explicit!r}")
    kind = explicit or ("pulumi" if environment == "production" else "sandbox")
    if kind == "sandbox" and not sandbox_up:
        why = "--deployer sandbox" if explicit else f"a {environment} fleet spec rolls out in the sandbox by default"
        raise BadInputError(f"{why}, but no sandbox runs", hint="xzctl sandbox up, or pass --deployer pulumi")
    return kind
