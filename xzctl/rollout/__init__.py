"""Node-by-node canary rollouts of inference images, gated on live metrics."""

from xzctl.rollout.analysis import Analyzer, Thresholds
from xzctl.rollout.deploy import Deployer, SimulatorDeployer, StackDeployer
from xzctl.rollout.engine import RolloutEngine, Settings, analyzer_for, new_rollout, summarize
from xzctl.rollout.state import RolloutState, StateStore

__all__ = [
    "Analyzer",
    "Deployer",
    "RolloutEngine",
    "RolloutState",
    "Settings",
    "SimulatorDeployer",
    "StackDeployer",
    "StateStore",
    "Thresholds",
    "analyzer_for",
    "new_rollout",
    "summarize",
]
