"""`xzctl bootstrap`: exit codes, JSON for CI, the per-node summary table."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from tests.fixtures.bootstrap import SITE_GROUP, SiteRuns, write_fleet
from tests.fixtures.sshd import close_ssh_masters
from xzctl.bootstrap import BootstrapResult, HostSummary, Playbook
from xzctl.cli import run
from xzctl.cli.bootstrap import _summary_table
from xzctl.spec import Fleet, bundled_example_path

GOLDEN = Path(__file__).parent / "golden"
SAMPLES = Path(__file__).resolve().parents[2] / "ansible" / "inventory"


def test_inventory_command_prints_the_sample_inventory(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bootstrap", "inventory", "shanghai", "--fleet", str(bundled_example_path())]) == 0
    assert capsys.readouterr().out == (SAMPLES / "shanghai.yml").read_text(encoding="utf-8")


@pytest.mark.ssh
@pytest.mark.xdist_group(SITE_GROUP)
@pytest.mark.timeout(900)  # the session's bootstrap of beijing may run in this test's time
@pytest.mark.usefixtures("ansible_env")
def test_check_run_reports_every_node_and_exits_1_on_unreachable(
    loopback_fleet: Fleet, beijing_site: SiteRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = write_fleet(loopback_fleet, tmp_path / "fleet.yaml")
    before = sorted(beijing_site.roots.rglob("*"))
    # reset in check mode on the bootstrapped nodes: what it would remove, with nothing removed (no --yes needed)
    argv = ["bootstrap", "region", "beijing", "--fleet", str(fleet), "--check", "-p", "reset", "-o", "json"]
    argv += ["-e", f"xzctl_root={beijing_site.roots}/{{{{ inventory_hostname }}}}", "-e", "xzctl_manage_services=false"]
    code = run(argv)
    out, err = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert (data["region"], data["playbook"], data["check"], data["succeeded"]) == ("beijing", "reset", True, False)
    assert [(h["host"], h["status"]) for h in data["hosts"]] == [
        ("bj-edge-01", "changed"),
        ("bj-edge-02", "unreachable"),
        ("bj-edge-03", "changed"),
    ]
    assert data["hosts"][0]["failed"] == 0
    assert "xzctl: error: reset.yml on region beijing: bj-edge-02 unreachable" in err
    # progress in CI logs (no terminal): one line per change or failure, per host
    assert "bj-edge-01: changed: Remove what site.yml installed" in err
    assert "bj-edge-02: unreachable: Gathering Facts" in err
    assert sorted(beijing_site.roots.rglob("*")) == before


@pytest.mark.ssh
@pytest.mark.usefixtures("ansible_env")
def test_new_host_keys_are_refused_unless_accepted(
    loopback_fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", f"-o UserKnownHostsFile={known_hosts} -o IdentitiesOnly=yes")
    # fresh ssh masters: a persistent connection from another test would skip host key checking
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    fleet = write_fleet(loopback_fleet, tmp_path / "fleet.yaml")
    # reset needs no token and, with an empty root, changes nothing: a cheap way to log in
    argv = [
        "bootstrap",
        "region",
        "beijing",
        "-f",
        str(fleet),
        "-p",
        "reset",
        "--yes",
        "-l",
        "bj-edge-01",
        "-o",
        "json",
    ]
    argv += ["-e", f"xzctl_root={tmp_path / 'root'}", "-e", "xzctl_manage_services=false"]
    assert run(argv) == 1
    refused = json.loads(capsys.readouterr().out)["hosts"][0]
    assert refused["status"] == "unreachable"
    assert "Host key verification failed" in refused["message"]
    try:
        assert run([*argv, "--accept-new-host-keys"]) == 0
    finally:
        close_ssh_masters(tmp_path / "cp")
    assert json.loads(capsys.readouterr().out)["hosts"][0]["status"] == "ok"
    port = loopback_fleet.node("bj-edge-01").host.ssh_port
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{port}", "-f", str(known_hosts)], check=False, timeout=10)
    assert found.returncode == 0  # the key was learnt (ssh stores it hashed)


def test_ansible_missing_exits_4(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("K3S_TOKEN", "bootstrap-test-token-0123456789")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run(["bootstrap", "region", "beijing", "--fleet", str(bundled_example_path())]) == 4
    assert "xzctl: error: ansible-playbook is not installed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-e", "novalue"], "--extra-var 'novalue' is not KEY=VALUE"),
        (["--limit", "sh-edge-01"], "no edge node 'sh-edge-01' in region 'beijing'"),
        (["--playbook", "destroy"], "Invalid value for '--playbook'"),
        (
            ["--playbook", "reset", "-l", "bj-edge-02"],
            "reset.yml stops K3s and removes it from 1 edge node(s) of region beijing: bj-edge-02 (add --yes",
        ),
    ],
)
def test_bad_input_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bootstrap", "region", "beijing", "--fleet", str(bundled_example_path()), *argv]) == 2
    assert message in capsys.readouterr().err


def test_summary_table_golden() -> None:
    result = BootstrapResult(
        "beijing",
        Playbook.SITE,
        False,
        [
            HostSummary("bj-edge-01", ok=31, changed=14, skipped=9),
            HostSummary(
                "bj-edge-02", unreachable=1, message="Failed to connect to the host via ssh: Connection refused"
            ),
            HostSummary("bj-edge-03", ok=20, changed=2, failed=1, skipped=3, message="no K3s join token"),
        ],
    )
    console = Console(width=80, record=True, color_system=None, force_terminal=False)  # an 80-column terminal
    _summary_table(result, console)
    text = console.export_text()
    golden = GOLDEN / "summary.txt"
    if os.environ.get("XZCTL_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
