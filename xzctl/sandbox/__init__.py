"""Local sandbox: a real Prometheus scraping the fleet simulator."""

from xzctl.sandbox.client import SimulatorClient
from xzctl.sandbox.run import (
    SandboxAlreadyUpError,
    SandboxInfo,
    current_prometheus_url,
    sandbox_status,
    start_sandbox,
    stop_sandbox,
    target_health,
)
from xzctl.state import state_dir as default_state_dir

__all__ = [
    "SandboxAlreadyUpError",
    "SandboxInfo",
    "SimulatorClient",
    "current_prometheus_url",
    "default_state_dir",
    "sandbox_status",
    "start_sandbox",
    "stop_sandbox",
    "target_health",
]
