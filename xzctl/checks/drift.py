"""`images diff`: the images the spec pins against the images that run, per node, service and track.

What runs comes from the build-info gauge every service exposes (`xiaozhi_build_info`), one query for the
fleet. A node that exposes nothing is `unknown`, never "same".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from xzctl.manifests.pins import spec_pins
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.spec import Fleet


@dataclass(frozen=True)
class ImageDrift:
    node: str
    region: str
    service: str
    track: str
    pinned: str | None  # what the spec asks for (None: the spec pins no such track)
    running: str | None  # what the metrics say runs (None: nothing reported)
    status: str  # same | drift | canary | unknown | extra

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _status(track: str, pinned: str | None, running: str | None, node_reports: bool) -> str:
    if running is None:
        return "unknown" if not node_reports or pinned is not None else "same"
    if pinned is None:
        return "canary" if track == "canary" else "extra"
    return "same" if running == pinned else "drift"


def image_drift(client: PrometheusClient, fleet: Fleet) -> list[ImageDrift]:
    """Every (node, service, track) pinned or running, with its status; unchanged rows included."""
    running: dict[tuple[str, str, str], str] = {}
    for sample in client.query(q.running_images()):
        labels = sample.labels
        key = (labels.get(c.NODE, ""), labels.get(c.SERVICE, ""), labels.get(c.TRACK, ""))
        running[key] = labels.get(c.IMAGE, "")
    reporting = {node for node, _, _ in running}
    pins = spec_pins(fleet)
    rows = []
    for node in fleet.edge_nodes():
        services = pins.nodes.get(node.id, {})
        keys = {(s, "stable") for s in services} | {(s, t) for n, s, t in running if n == node.id}
        for service, track in sorted(keys):
            pinned = services[service].stable if track == "stable" and service in services else None
            now = running.get((node.id, service, track))
            status = _status(track, pinned, now, node.id in reporting)
            rows.append(ImageDrift(node.id, node.region, service, track, pinned, now, status))
    return rows
