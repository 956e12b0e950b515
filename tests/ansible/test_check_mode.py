"""site.yml in check mode with the system tasks on (packages, kernel modules, sysctl, swap): nothing is written.

On the reachable nodes of the loopback fleet (tests/fixtures/bootstrap.py): bj-edge-01, the K3s server with GPUs,
and bj-edge-03, an agent without GPUs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.bootstrap import REACHABLE, Run, run_bootstrap
from tests.fixtures.sshd import SshServer
from xzctl.spec import Fleet

# The module fixture's playbook run counts against the time limit of its first test; the suite runs it beside
# other xdist workers, so it gets the headroom of a slow machine.
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("check-roots")


@pytest.fixture(scope="module")
def check_run(loopback_fleet: Fleet, sshd: SshServer, roots: Path) -> Run:
    # The sandbox has no systemd as PID 1, so services cannot even be queried; everything else runs in check mode.
    extravars = {"xzctl_manage_services": False, "xzctl_root": f"{roots}/{{{{ inventory_hostname }}}}"}
    return run_bootstrap(
        loopback_fleet, sshd, roots.parent / "check-state", check=True, limit=REACHABLE, extravars=extravars
    )


def test_check_mode_succeeds_and_reports_changes(check_run: Run) -> None:
    result = check_run.result
    assert result.succeeded, result.log
    assert [(h.host, str(h.status), h.failed) for h in result.hosts] == [(h, "changed", 0) for h in REACHABLE]
    assert check_run.statuses("bj-edge-01", "Write the K3s configuration") == ["changed"]


@pytest.mark.usefixtures("check_run")
def test_check_mode_writes_nothing(roots: Path) -> None:
    assert list(roots.iterdir()) == []


def test_packages_are_checked_not_installed(check_run: Run) -> None:
    # chrony is resolved against the host's apt sources: it would be installed
    assert check_run.statuses("bj-edge-03", "Install the time sync daemon") in (["changed"], ["ok"])
    # the NVIDIA repository is not configured yet, so its packages cannot be resolved in check mode
    assert check_run.statuses("bj-edge-01", "Install the driver and the container toolkit") == ["skipped"]
    # downloads never happen in check mode
    assert check_run.statuses("bj-edge-01", "Install the pinned K3s binary") == ["skipped"]


def test_nvidia_role_skips_hosts_without_gpus(check_run: Run) -> None:
    for task in ["Write the NVIDIA apt sources", "Install the driver and the container toolkit"]:
        assert check_run.statuses("bj-edge-03", task) == ["skipped"]
    assert check_run.statuses("bj-edge-01", "Write the NVIDIA apt sources") == ["changed"]
