"""The simulated fleet's daily pattern as hourly series per region, without a Prometheus in between.

The same model and seed as the sandbox's history (`sandbox up --history`), sampled every 15 minutes and
averaged per hour as the forecast's query does (`avg_over_time(...[1h])`): tests and benchmarks judge the
forecast on the pattern the sandbox serves, in a fraction of a second.
"""

from __future__ import annotations

from xzctl.simulator.model import FleetModel
from xzctl.spec.models import Fleet

SAMPLES_PER_HOUR = 4
HOUR = 3600


def hourly_active_devices(fleet: Fleet, *, seed: int, end: float, hours: int) -> dict[str, list[float]]:
    """Per region, devices in a session averaged over each of the `hours` hours ending at `end`."""
    model = FleetModel(fleet, seed=seed, start=end - hours * HOUR)
    out: dict[str, list[float]] = {name: [] for name in fleet.regions}
    step = HOUR / SAMPLES_PER_HOUR
    for h in range(hours):
        hour_end = end - (hours - 1 - h) * HOUR
        totals = dict.fromkeys(fleet.regions, 0.0)
        for k in range(SAMPLES_PER_HOUR):
            t = hour_end - k * step
            for node in model.nodes.values():
                totals[node.region] += model.base_sessions(node, t)
        for name, total in totals.items():
            out[name].append(total / SAMPLES_PER_HOUR)
    return out
