"""Run the playbooks of ansible/ with ansible-runner against the test sshd, as `xzctl bootstrap` does."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner

from tests.ansible.sshd import SshServer
from xzctl.spec.sinks import ansible_yaml, read_ansible_yaml

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
TOKEN = "xzctl-test-join-token-0123456789abcdef"
# Config files only: the sandbox has no systemd as PID 1 and no internet.
FILES_ONLY = {"xzctl_manage_system": False, "xzctl_manage_services": False}


def loopback_inventory(region: str, ssh: SshServer, roots: Path, *, port: int | None = None) -> dict[str, Any]:
    """The sample inventory of `region`, every host reached at the test sshd, each with its own root."""
    inventory = read_ansible_yaml((ANSIBLE_DIR / "inventory" / f"{region}.yml").read_text(encoding="utf-8"))
    for group in inventory["all"]["children"]["k3s_cluster"]["children"].values():
        for host, hostvars in (group.get("hosts") or {}).items():
            hostvars.update(
                ansible_host="127.0.0.1",
                ansible_port=port or ssh.port,
                ansible_user=ssh.user,
                ansible_ssh_private_key_file=str(ssh.key),
                ansible_python_interpreter=ssh.python,
                ansible_become=False,  # the test sshd logs in as root
                xzctl_root=str(roots / host),
            )
    return inventory


@dataclass(frozen=True)
class Run:
    rc: int
    stats: dict[str, dict[str, int]]
    output: str
    tasks: list[tuple[str, str, str]]  # (host, task, ok|changed|failed|unreachable|skipped) in order

    def statuses(self, host: str, task: str) -> list[str]:
        return [status for h, t, status in self.tasks if h == host and t == task]

    def changed_tasks(self, host: str) -> list[str]:
        return [t for h, t, status in self.tasks if h == host and status == "changed"]

    def totals(self, key: str) -> dict[str, int]:
        """Per-host counts of a play-recap column (ok, changed, failures, dark, skipped)."""
        return dict(self.stats.get(key) or {})


EVENT_STATUS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def task_status(event: dict[str, Any]) -> tuple[str, str, str]:
    data = event["event_data"]
    status = EVENT_STATUS[event["event"]]
    if status == "ok" and (data.get("res") or {}).get("changed"):
        status = "changed"
    return data["host"], data["task"], status


def run_playbook(
    playbook: str,
    inventory: dict[str, Any],
    ssh: SshServer,
    *,
    extravars: dict[str, Any] | None = None,
    check: bool = False,
) -> Run:
    with tempfile.TemporaryDirectory(prefix="xzctl-ansible-test-") as tmp:
        path = Path(tmp) / "hosts.yml"
        path.write_text(ansible_yaml(inventory), encoding="utf-8")
        runner = ansible_runner.run(
            private_data_dir=tmp,
            project_dir=str(ANSIBLE_DIR),
            playbook=playbook,
            inventory=str(path),
            extravars=extravars or {},
            envvars={"XZCTL_K3S_TOKEN": TOKEN, **ssh.ansible_env()},
            cmdline="--check" if check else None,
            quiet=True,
            timeout=600,
        )
        # events and stdout live in the private data dir: read them before it goes
        return Run(
            rc=runner.rc,
            stats=runner.stats or {},
            output=runner.stdout.read(),
            tasks=[task_status(e) for e in runner.events if e.get("event") in EVENT_STATUS],
        )
