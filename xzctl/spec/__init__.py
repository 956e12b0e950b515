"""The typed fleet spec: models, loading with located errors, cross-field rules."""

from xzctl.spec.load import LoadedFleet, bundled_example_path, load_fleet, resolve_fleet_path
from xzctl.spec.models import EdgeNode, Fleet, Region

__all__ = [
    "EdgeNode",
    "Fleet",
    "LoadedFleet",
    "Region",
    "bundled_example_path",
    "load_fleet",
    "resolve_fleet_path",
]
