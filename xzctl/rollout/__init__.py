"""Node-by-node canary rollouts of inference images, gated on live metrics."""

from xzctl.rollout.analysis import CHECKS, Analyzer, Check
from xzctl.rollout.deploy import Deployer, SimulatorDeployer, StackDeployer
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import EXIT_CODES, Phase, RolloutState, Settings, StateStore, Thresholds
from xzctl.rollout.status import summarize

__all__ = [
    "CHECKS",
    "EXIT_CODES",
    "Analyzer",
    "Check",
    "Deployer",
    "Phase",
    "RolloutEngine",
    "RolloutState",
    "Settings",
    "SimulatorDeployer",
    "StackDeployer",
    "StateStore",
    "Thresholds",
    "new_rollout",
    "summarize",
]
