"""Pulumi Automation API driver: `xzctl provision region|cloud|status`.

`up(stack, fleet_path, pins=None, preview=False, on_event=None)` is what a rollout calls for each step.
"""

from xzctl.provision.automation import ProvisionEvent, ProvisionResult, check_pulumi_cli, up
from xzctl.provision.backend import StackStatus, stack_statuses
from xzctl.state import state_dir

__all__ = [
    "ProvisionEvent",
    "ProvisionResult",
    "StackStatus",
    "check_pulumi_cli",
    "stack_statuses",
    "state_dir",
    "up",
]
