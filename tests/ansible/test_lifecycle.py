"""upgrade.yml moves the K3s pin and nothing else; reset.yml removes what site.yml wrote, idempotently.

Both run on a copy of the files the session's bootstrap of beijing wrote (tests/fixtures/bootstrap.py), on its two
reachable nodes: bj-edge-01 (the server) and bj-edge-03 (an agent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.bootstrap import REACHABLE, SITE_GROUP, Run, SiteRuns, copy_roots, node_roots, run_bootstrap
from tests.fixtures.sshd import SshServer
from xzctl.bootstrap import Playbook
from xzctl.spec import Fleet

pytestmark = [pytest.mark.ssh, pytest.mark.xdist_group(SITE_GROUP), pytest.mark.timeout(900)]

NEW_PIN = {"k3s_version": "v1.31.5+k3s1"}


@pytest.fixture(scope="module")
def roots(beijing_site: SiteRuns, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_roots(beijing_site, tmp_path_factory.mktemp("lifecycle") / "roots")


def _run(fleet: Fleet, ssh: SshServer, roots: Path, playbook: Playbook, **extravars: str) -> Run:
    extra = node_roots(roots) | extravars
    return run_bootstrap(fleet, ssh, roots.parent / "state", playbook=playbook, limit=REACHABLE, extravars=extra)


@pytest.fixture(scope="module")
def upgraded(loopback_fleet: Fleet, sshd: SshServer, roots: Path) -> Run:
    return _run(loopback_fleet, sshd, roots, Playbook.UPGRADE, **NEW_PIN)


@pytest.fixture(scope="module")
def resets(loopback_fleet: Fleet, sshd: SshServer, roots: Path, upgraded: Run) -> tuple[Run, Run]:
    assert upgraded.result.succeeded, upgraded.result.log  # reset must undo an upgraded node, not a half-upgraded one
    first = _run(loopback_fleet, sshd, roots, Playbook.RESET)
    return first, _run(loopback_fleet, sshd, roots, Playbook.RESET)


def test_upgrade_changes_only_the_k3s_unit(upgraded: Run, roots: Path) -> None:
    assert upgraded.result.succeeded, upgraded.result.log
    for host in REACHABLE:
        assert upgraded.changed(host) == ["Write the K3s systemd unit"]
        # the restart is due, and left to systemd only where services are managed
        assert upgraded.statuses(host, "Restart K3s") == ["skipped"]
    unit = (roots / "bj-edge-03" / "etc/systemd/system/k3s-agent.service").read_text()
    assert "Lightweight Kubernetes (agent, v1.31.5+k3s1)" in unit


def test_reset_removes_every_file_and_is_idempotent(resets: tuple[Run, Run], roots: Path) -> None:
    first, second = resets
    assert first.result.succeeded, first.result.log
    assert second.result.succeeded, second.result.log
    for host in REACHABLE:
        assert "Remove what site.yml installed" in first.changed(host)
        assert second.changed(host) == []
        assert [p for p in (roots / host).rglob("*") if p.is_file()] == []
