"""site.yml in check mode with the system tasks on (packages, kernel modules, sysctl, swap): nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.playbook_runs import Run, loopback_inventory, run_playbook
from tests.fixtures.sshd import SshServer

# The module fixture's playbook runs count against the time limit of its first test; the suite runs them beside
# other xdist workers, so they get the headroom of their own 600 s ansible-runner timeout.
pytestmark = [pytest.mark.ssh, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("check-roots")


@pytest.fixture(scope="module")
def check_run(sshd: SshServer, roots: Path) -> Run:
    inventory = loopback_inventory("beijing", sshd, roots)
    # bj-edge-03 without GPUs: the nvidia role must skip it
    inventory["all"]["children"]["k3s_cluster"]["children"]["agent"]["hosts"]["bj-edge-03"]["xzctl_gpu_count"] = 0
    # The sandbox has no systemd as PID 1, so services cannot even be queried; everything else runs in check mode.
    return run_playbook("site.yml", inventory, sshd, extravars={"xzctl_manage_services": False}, check=True)


def test_check_mode_succeeds_and_reports_changes(check_run: Run) -> None:
    assert check_run.rc == 0, check_run.output
    assert check_run.totals("failures") == {}
    changed = check_run.totals("changed")
    assert sorted(changed) == ["bj-edge-01", "bj-edge-02", "bj-edge-03"]
    assert "Write the K3s configuration" in check_run.changed_tasks("bj-edge-01")


@pytest.mark.usefixtures("check_run")
def test_check_mode_writes_nothing(roots: Path) -> None:
    assert list(roots.iterdir()) == []


def test_packages_are_checked_not_installed(check_run: Run) -> None:
    # chrony is resolved against the host's apt sources: it would be installed
    assert check_run.statuses("bj-edge-02", "Install the time sync daemon") in (["changed"], ["ok"])
    # the NVIDIA repository is not configured yet, so its packages cannot be resolved in check mode
    assert check_run.statuses("bj-edge-01", "Install the driver and the container toolkit") == ["skipped"]
    # downloads never happen in check mode
    assert check_run.statuses("bj-edge-01", "Install the pinned K3s binary") == ["skipped"]


def test_nvidia_role_skips_hosts_without_gpus(check_run: Run) -> None:
    nvidia_tasks = ["Write the NVIDIA apt sources", "Install the driver and the container toolkit"]
    for task in nvidia_tasks:
        assert check_run.statuses("bj-edge-03", task) == ["skipped"]
    assert check_run.statuses("bj-edge-02", "Write the NVIDIA apt sources") == ["changed"]
