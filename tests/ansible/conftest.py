"""The sshd fixture for the playbook tests (shared with tests/bootstrap)."""

from tests.fixtures.sshd import sshd

__all__ = ["sshd"]
