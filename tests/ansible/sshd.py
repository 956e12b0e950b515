"""A real OpenSSH server on 127.0.0.1 for the Ansible tests: temporary host key, user key and known_hosts.

Ansible reaches it like an edge node. Host key checking stays on (the tests trust the temporary host
key through their own known_hosts file), as it does for operators.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    key: Path  # the client's private key
    known_hosts: Path
    control_dir: Path  # Ansible's persistent ssh connections to this server, closed at teardown
    # The system Python, as on an edge node (discovery would find the developer's pyenv shims here).
    python: str = "/usr/bin/python3"

    def ansible_env(self) -> dict[str, str]:
        """Environment for Ansible: trust exactly the temporary host key; keep its ssh masters where teardown finds them."""
        return {
            "ANSIBLE_HOST_KEY_CHECKING": "True",  # ansible-runner's default is off; xzctl turns it on
            "ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={self.known_hosts} -o IdentitiesOnly=yes",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
        }


def close_ssh_masters(control_dir: Path) -> None:
    """End the ControlPersist ssh masters Ansible left (they would linger for a minute with their sshd sessions)."""
    for socket_path in control_dir.iterdir():
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "xzctl-test"],
            capture_output=True,
            timeout=10,
            check=False,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout}s")


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text(encoding="ascii").strip()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """sshd on a free loopback port; root logs in with a temporary key only. Killed at teardown."""
    if not os.path.exists(SSHD) or shutil.which("ansible-playbook") is None:
        pytest.skip("needs /usr/sbin/sshd (openssh-server) and ansible-playbook")
    if os.geteuid() != 0:
        pytest.skip("sshd for the tests runs as root (privilege separation needs it)")
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_ed25519")
    (d / "authorized_keys").write_text(_keygen(d / "client_ed25519") + "\n", encoding="ascii")
    port = free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n", encoding="ascii")
    control_dir = d / "cp"
    control_dir.mkdir()
    config = d / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {d / 'host_ed25519'}",
                f"PidFile {d / 'sshd.pid'}",
                f"AuthorizedKeysFile {d / 'authorized_keys'}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                # the temp dir is not root-owned all the way up; the key files are still 0600
                "StrictModes no",
                "MaxStartups 50",
                "MaxSessions 50",
                "Subsystem sftp /usr/lib/openssh/sftp-server",
                "",
            ]
        ),
        encoding="ascii",
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    log = (d / "sshd.log").open("wb")
    # its own process group: teardown ends the listener and any per-connection sshd left behind
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        _wait_listening(port, proc)
        yield SshServer(
            port=port, user="root", key=d / "client_ed25519", known_hosts=d / "known_hosts", control_dir=control_dir
        )
    finally:
        close_ssh_masters(control_dir)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
