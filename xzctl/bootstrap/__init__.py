"""Bare-metal edge host bootstrap with Ansible (ansible-runner): inventory from the fleet spec, per-host results."""

from xzctl.bootstrap.inventory import build_inventory
from xzctl.bootstrap.run import BootstrapResult, HostStatus, HostSummary, Playbook, TaskEvent, bootstrap_region

__all__ = [
    "BootstrapResult",
    "HostStatus",
    "HostSummary",
    "Playbook",
    "TaskEvent",
    "bootstrap_region",
    "build_inventory",
]
