"""Which image runs on which edge node, per service and track: the desired state a rollout changes.

The fleet spec names one image per service. A canary rollout pins a new image on the canary track of
some nodes, then promotes it to stable. The stack program and the manifests builder take `ImagePins`
and emit, for every pinned canary, a `<service>-canary` Deployment beside the stable one; so the
desired state of every rollout step is computed by the same code that `pulumi up` runs.
Serialised as JSON (Pulumi stack config `xzctl:imagePins`, rollout state files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError
from xzctl.spec.models import Fleet

# Services a rollout may change on an edge node (the keys of EdgeServices with an image).
ROLLABLE_SERVICES = ("xiaozhi_server", "vad", "asr", "tts", "llm", "coordinator")


@dataclass(frozen=True)
class ServicePin:
    stable: str
    canary: str | None = None


@dataclass
class ImagePins:
    """node id -> service -> ServicePin."""

    nodes: dict[str, dict[str, ServicePin]] = field(default_factory=dict)

    def get(self, node: str, service: str) -> ServicePin:
        return self.nodes[node][service]

    def with_pin(self, node: str, service: str, pin: ServicePin) -> ImagePins:
        """A copy with one pin changed (pins are values: a rollout step never mutates the previous one)."""
        nodes = {n: dict(s) for n, s in self.nodes.items()}
        nodes.setdefault(node, {})[service] = pin
        return ImagePins(nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            n: {s: {"stable": p.stable, "canary": p.canary} for s, p in sorted(svcs.items())}
            for n, svcs in sorted(self.nodes.items())
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImagePins:
        return cls(
            {
                str(n): {str(s): ServicePin(str(p["stable"]), p.get("canary")) for s, p in svcs.items()}
                for n, svcs in data.items()
            }
        )


def spec_pins(fleet: Fleet) -> ImagePins:
    """The pins the fleet spec itself asks for: every service stable on its spec image, no canary."""
    nodes: dict[str, dict[str, ServicePin]] = {}
    for node in fleet.edge_nodes():
        services = node.services
        images = {
            "xiaozhi_server": services.xiaozhi_server.image,
            "vad": services.vad.image,
            "asr": services.asr.image,
            "tts": services.tts.image,
        }
        for name, optional in (("coordinator", services.coordinator), ("llm", services.llm)):
            if optional is not None:
                images[name] = optional.image
        nodes[node.id] = {svc: ServicePin(stable=img) for svc, img in images.items()}
    return ImagePins(nodes)


def load_pins(path: Path) -> ImagePins:
    """Image pins from a JSON file (`ImagePins.to_json` shape), or BadInputError saying what is wrong."""
    try:
        return ImagePins.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise BadInputError(f"pins file {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"pins file {path} is not image pins JSON ({type(exc).__name__}: {exc})") from None
