"""Turn paths of the real node: a canary ASR replica gets its own xiaozhi server and probe, so real turns of both
tracks are measured (what the turn_* canary checks compare)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.xiaozhi import NODE, xiaozhi_source
from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.sandbox.realnode import RealNode, start_asr_replica, start_real_node, stop_real_node
from xzctl.sandbox.turnpath import start_turn_path
from xzctl.spec import Fleet

WAIT = 300.0  # the first turn of each path on 2 loaded cores (a turn took 4-38 s), after the servers' start


def test_a_node_without_xiaozhi_has_no_turn_path() -> None:
    real = RealNode(NODE, "beijing", {})
    with pytest.raises(BadInputError, match="no xiaozhi server"):
        start_turn_path(real, None, track="canary")  # type: ignore[arg-type]


def _ok_turns(probe_url: str) -> dict[str, float]:
    text = requests.get(f"{probe_url}/metrics", timeout=10).text
    pattern = rf'^{c.TURNS.name}{{track="(\w+)",result="ok"}} (\S+)$'
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text, re.MULTILINE)}


@pytest.mark.images
def test_a_canary_replica_gets_real_turns_of_its_own_track(tmp_path: Path, example_fleet: Fleet) -> None:
    source = xiaozhi_source()
    real = start_real_node(
        example_fleet, NODE, state_dir=tmp_path / "state", log_dir=tmp_path / "logs", xiaozhi_source=source
    )
    try:
        canary = start_asr_replica(real, state_dir=tmp_path / "state", log_dir=tmp_path / "logs", track="canary")
        urls = start_turn_path(real, canary, track="canary")
        assert urls["websocket_url"] != real.xiaozhi["websocket_url"]
        processes = 2 * real.server_processes  # each path runs the node's count
        assert [s.name for s in real.upstream].count("xiaozhi-server") == processes == len(real.server_dirs)
        assert [s.name for s in real.upstream].count("balancer") == 2
        probes = {p.image: p.url for p in real.probes}
        assert set(probes) == {"sandbox/probe-stable", "sandbox/probe-canary"}
        assert {t["targets"][0] for t in real.scrape_targets()} >= {u.removeprefix("http://") for u in probes.values()}
        deadline = time.monotonic() + WAIT
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = {
                track: _ok_turns(url).get(track.removeprefix("sandbox/probe-"), 0.0) for track, url in probes.items()
            }
            if min(seen.values()) >= 1:
                break
            time.sleep(2.0)
        else:
            pytest.fail(f"no ok turn on each path within {WAIT:.0f} s: {seen}")
    finally:
        stop_real_node(real)
    assert all(s.process.poll() is not None for s in real.all())
