"""The simulator's scenario controls: one function per action of `FleetModel.control`, each validating its
JSON body (BadInputError, HTTP 400 on bad input) and changing the model's state. Every handler takes
(model, action, now) because `HANDLERS` dispatches on the action name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator.load import ImageProfile, NodeState, spec_images

if TYPE_CHECKING:
    from xzctl.simulator.model import FleetModel


def node_or_error(model: FleetModel, node_id: Any) -> NodeState:
    if not isinstance(node_id, str) or node_id not in model.nodes:
        raise BadInputError(f"unknown edge node {node_id!r}")
    return model.nodes[node_id]


def node_down(model: FleetModel, action: dict[str, Any], now: float) -> dict[str, Any]:
    node = node_or_error(model, action.get("node"))
    window = action.get("reconnect_seconds")
    if window is not None:
        if (
            not isinstance(window, list)
            or len(window) != 2
            or not all(isinstance(v, int | float) and v >= 0 for v in window)
            or window[0] > window[1]
        ):
            raise BadInputError('"reconnect_seconds" must be [min, max] seconds, 0 <= min <= max')
        model.reconnect_seconds = (float(window[0]), float(window[1]))
    if not node.up:
        return {"node": node.id, "moving": 0}
    moving = model.active_sessions(node, now)
    node.up = False
    node.moved_in = 0
    for targets in model.moved.values():
        # devices that had failed over to this node move on as its own: their first home no longer owes them back
        targets.pop(node.id, None)
    model.schedule_reconnects(node, now, moving)
    return {"node": node.id, "moving": moving}


def node_up(model: FleetModel, action: dict[str, Any], now: float) -> dict[str, Any]:
    node = node_or_error(model, action.get("node"))
    if not node.up:
        node.up = True
        node.last = now  # a node that was off integrates nothing for its downtime
        model.return_home(node)
    return {"node": node.id}


def set_devices(model: FleetModel, action: dict[str, Any], _now: float) -> dict[str, Any]:
    if "node" in action:
        node = node_or_error(model, action["node"])
        devices = action.get("devices")
        # null unpins: the node follows the fleet's load again (what a real node's rollout gives back)
        if devices is not None and (
            not isinstance(devices, int) or isinstance(devices, bool) or not 0 <= devices <= 100_000
        ):
            raise BadInputError('"devices" must be an integer 0..100000, or null to follow the load again')
        node.pinned = devices
        return {"nodes": {node.id: devices}}
    region = action.get("region")
    if region not in model.fleet.regions:
        raise BadInputError(f'set_devices needs "node" or a known "region"; unknown region {region!r}')
    utilization = action.get("utilization")
    if not isinstance(utilization, int | float) or isinstance(utilization, bool) or not 0 <= utilization <= 10:
        raise BadInputError('"utilization" must be a number 0..10 (share of each node\'s max_devices)')
    pinned: dict[str, int] = {}
    for node in model.nodes.values():
        if node.region == region:
            node.pinned = round(utilization * node.max_devices)
            pinned[node.id] = node.pinned
    return {"nodes": pinned}


def image_profile(model: FleetModel, action: dict[str, Any], _now: float) -> dict[str, Any]:
    image = action.get("image")
    if not isinstance(image, str) or not image:
        raise BadInputError('"image" must be an image reference')
    factor = action.get("latency_factor", 1.0)
    error_rate = action.get("error_rate", 0.0)
    if not isinstance(factor, int | float) or not 0.01 <= factor <= 100:
        raise BadInputError('"latency_factor" must be a number 0.01..100')
    if not isinstance(error_rate, int | float) or not 0 <= error_rate <= 1:
        raise BadInputError('"error_rate" must be a number 0..1')
    model.profiles[image] = ImageProfile(float(factor), float(error_rate))
    return {"image": image}


def deploy(model: FleetModel, action: dict[str, Any], _now: float) -> dict[str, Any]:
    node = node_or_error(model, action.get("node"))
    service = action.get("service")
    if service not in node.images:
        raise BadInputError(f"unknown service {service!r} on {node.id}; one of: {', '.join(sorted(node.images))}")
    track = action.get("track")
    if track not in c.TRACKS:
        raise BadInputError('"track" must be "stable" or "canary"')
    image = action.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise BadInputError('"image" must be an image reference or null')
    if track == "stable" and image is None:
        raise BadInputError("the stable track always runs an image; give one")
    node.images[service][track] = image
    return {"node": node.id, "service": service, "track": track, "image": image}


def metrics_gap(model: FleetModel, action: dict[str, Any], now: float) -> dict[str, Any]:
    node = node_or_error(model, action.get("node"))
    seconds = action.get("seconds")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
        raise BadInputError('"seconds" must be a number 0 < s <= 86400')
    node.gap_until = now + float(seconds)
    return {"node": node.id, "until": node.gap_until}


def stale(model: FleetModel, action: dict[str, Any], _now: float) -> dict[str, Any]:
    node = node_or_error(model, action.get("node"))
    enabled = action.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadInputError('"enabled" must be true or false')
    node.stale = enabled
    if not enabled:
        node.stale_body = None
    return {"node": node.id, "stale": enabled}


def reset(model: FleetModel, _action: dict[str, Any], now: float) -> dict[str, Any]:
    """Back to the start: every node up, nothing pinned, spec images, autoscaler off; counters keep counting."""
    model.autoscaler.control({"enabled": False})
    model.profiles.clear()
    model.arrivals.clear()
    model.moved.clear()
    model.disconnected.clear()
    model.reconnect_seconds = (2.0, 8.0)
    for node in model.nodes.values():
        if not node.up:
            node.last = now
        node.up = True
        node.pinned = None
        node.moved_in = 0
        node.gap_until = 0.0
        node.stale = False
        node.stale_body = None
        node.images = spec_images(node.spec)
        node.backlog.clear()
    return {}


def autoscaling(model: FleetModel, action: dict[str, Any], _now: float) -> dict[str, Any]:
    return model.autoscaler.control(action)


HANDLERS: dict[str, Callable[[FleetModel, dict[str, Any], float], dict[str, Any]]] = {
    "node_down": node_down,
    "node_up": node_up,
    "set_devices": set_devices,
    "image_profile": image_profile,
    "deploy": deploy,
    "metrics_gap": metrics_gap,
    "stale": stale,
    "reset": reset,
    "autoscaling": autoscaling,
}
