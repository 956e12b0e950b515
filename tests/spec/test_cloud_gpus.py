"""Cloud LLM replicas against the cloud's GPU servers: placed whole, largest first."""

from __future__ import annotations

import pytest

from xzctl.spec.models import Fleet
from xzctl.spec.validate import cloud_unplaced_replicas


@pytest.mark.parametrize(
    ("servers", "per_server", "replicas", "left"),
    [
        (4, 8, {"qwen-72b": 4, "qwen-14b": 8}, 0),  # the bundled example: exactly full
        (4, 8, {"qwen-72b": 8, "qwen-14b": 12}, 12),  # the seed plan's 56 GPUs: the 4-GPU replicas fill all 32
        (5, 7, {"qwen-72b": 4, "qwen-14b": 8}, 1),  # 35 GPUs for 32, but every server keeps an unusable GPU
        (8, 2, {"qwen-72b": 1, "qwen-14b": 0}, 1),  # a replica larger than any server
        (0, 8, {"qwen-72b": 0, "qwen-14b": 0}, 0),  # nothing asked, nothing needed
    ],
)
def test_unplaced_replicas(
    example_fleet: Fleet, servers: int, per_server: int, replicas: dict[str, int], left: int
) -> None:
    cloud = example_fleet.cloud.model_copy(
        update={
            "gpu_servers": example_fleet.cloud.gpu_servers.model_copy(
                update={"count": servers, "gpus_per_server": per_server}
            ),
            "llm_models": [
                m.model_copy(update={"replicas": replicas[m.name], "autoscaling": None})
                for m in example_fleet.cloud.llm_models
            ],
        }
    )
    assert cloud_unplaced_replicas(cloud) == left
