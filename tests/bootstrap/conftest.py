"""The sshd fixture (tests/ansible/sshd.py) and a fleet whose beijing edge nodes are reached through it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.sshd import SshServer, sshd
from xzctl.spec import Fleet

__all__ = ["ansible_env", "closed_port", "loopback_fleet", "sshd"]


@pytest.fixture(scope="session")
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: SSH to it is refused at once.

    The port stays bound (never listening) for the whole session, so no server another test starts on an
    ephemeral port can take it and turn "refused" into a half-open connection.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def _reach(fleet: Fleet, ssh: SshServer, ports: dict[str, int]) -> Fleet:
    region = fleet.regions["beijing"]
    nodes = [
        n.model_copy(
            update={
                "host": n.host.model_copy(
                    update={
                        "address": "127.0.0.1",
                        "ssh_user": ssh.user,
                        "ssh_port": ports[n.id],
                        "ssh_key": str(ssh.key),
                    }
                )
            }
        )
        for n in region.edge_nodes
    ]
    return fleet.model_copy(
        update={"regions": {**fleet.regions, "beijing": region.model_copy(update={"edge_nodes": nodes})}}
    )


@pytest.fixture(scope="session")
def loopback_fleet(example_fleet: Fleet, sshd: SshServer, closed_port: int) -> Fleet:
    """beijing: bj-edge-01 (server) and bj-edge-03 at the test sshd; bj-edge-02 refuses SSH."""
    return _reach(example_fleet, sshd, {"bj-edge-01": sshd.port, "bj-edge-02": closed_port, "bj-edge-03": sshd.port})


TOKEN = "bootstrap-test-token-0123456789"


def ssh_env(ssh: SshServer, state_dir: Path) -> dict[str, str]:
    """What an operator's shell has: the join token, and ssh trusting the (temporary) host key."""
    return {
        "K3S_TOKEN": TOKEN,
        "XZCTL_STATE_DIR": str(state_dir),
        **ssh.ansible_env(),
        "ANSIBLE_PYTHON_INTERPRETER": ssh.python,
    }


@pytest.fixture
def ansible_env(monkeypatch: pytest.MonkeyPatch, sshd: SshServer, tmp_path: Path) -> None:
    for key, value in ssh_env(sshd, tmp_path / "state").items():
        monkeypatch.setenv(key, value)


def write_fleet(fleet: Fleet, path: Path) -> Path:
    path.write_text(yaml.safe_dump(fleet.model_dump(mode="json", by_alias=True), sort_keys=False), encoding="utf-8")
    return path
