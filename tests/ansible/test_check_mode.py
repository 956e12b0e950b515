"""site.yml in check mode with the system tasks on (packages, kernel modules, sysctl, swap): nothing is written.

On the reachable nodes of the loopback fleet (tests/fixtures/bootstrap.py): bj-edge-01, the K3s server with GPUs,
and bj-edge-03, an agent without GPUs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.bootstrap import REACHABLE, operator_env
from tests.fixtures.sshd import SshServer
from xzctl.bootstrap import BootstrapResult, TaskEvent, bootstrap_region
from xzctl.spec import Fleet

# The module fixture's playbook run counts against the time limit of its first test; the suite runs it beside
# other xdist workers, so it gets the headroom of a slow machine.
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("check-roots")


@pytest.fixture(scope="module")
def check_run(loopback_fleet: Fleet, sshd: SshServer, roots: Path) -> tuple[BootstrapResult, list[TaskEvent]]:
    # The sandbox has no systemd as PID 1, so services cannot even be queried; everything else runs in check mode.
    extravars = {"xzctl_manage_services": False, "xzctl_root": f"{roots}/{{{{ inventory_hostname }}}}"}
    events: list[TaskEvent] = []
    with operator_env(sshd, roots.parent / "check-state"):
        result = bootstrap_region(
            loopback_fleet, "beijing", check=True, limit=REACHABLE, extravars=extravars, on_event=events.append
        )
    return result, events


def _statuses(run: tuple[BootstrapResult, list[TaskEvent]], host: str, task: str) -> list[str]:
    return [e.status for e in run[1] if e.host == host and e.task == task]


def test_check_mode_succeeds_and_reports_changes(check_run: tuple[BootstrapResult, list[TaskEvent]]) -> None:
    result, _ = check_run
    assert result.succeeded, result.log
    assert [(h.host, str(h.status), h.failed) for h in result.hosts] == [(h, "changed", 0) for h in REACHABLE]
    assert _statuses(check_run, "bj-edge-01", "Write the K3s configuration") == ["changed"]


@pytest.mark.usefixtures("check_run")
def test_check_mode_writes_nothing(roots: Path) -> None:
    assert list(roots.iterdir()) == []


def test_packages_are_checked_not_installed(check_run: tuple[BootstrapResult, list[TaskEvent]]) -> None:
    # chrony is resolved against the host's apt sources: it would be installed
    assert _statuses(check_run, "bj-edge-03", "Install the time sync daemon") in (["changed"], ["ok"])
    # the NVIDIA repository is not configured yet, so its packages cannot be resolved in check mode
    assert _statuses(check_run, "bj-edge-01", "Install the driver and the container toolkit") == ["skipped"]
    # downloads never happen in check mode
    assert _statuses(check_run, "bj-edge-01", "Install the pinned K3s binary") == ["skipped"]


def test_nvidia_role_skips_hosts_without_gpus(check_run: tuple[BootstrapResult, list[TaskEvent]]) -> None:
    for task in ["Write the NVIDIA apt sources", "Install the driver and the container toolkit"]:
        assert _statuses(check_run, "bj-edge-03", task) == ["skipped"]
    assert _statuses(check_run, "bj-edge-01", "Write the NVIDIA apt sources") == ["changed"]
