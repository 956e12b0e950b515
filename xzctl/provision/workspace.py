"""The Automation API's LocalWorkspace over the local file backend under a state dir, reading from the backend's files
what they hold rather than through the pulumi CLI.

A no-op region up ran seven CLI processes; three of them only read: `stack select` (0.13 s; every command a stack
runs names it with --stack anyway) and, after the update, `stack output` twice (0.14 s and 0.38 s: the second
decrypts the secrets, which xzctl never reads). A new stack's `stack select` only failed (0.15 s). Imported only when
a stack opens: it imports pulumi.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from pulumi import automation as auto

from xzctl.provision.backend import SECRET_MASK, output_values, stack_exists


def pulumi_command() -> auto.PulumiCommand:
    """The pulumi CLI on PATH, its version checked once per process and binary: every PulumiCommand runs `pulumi
    version` (0.13 s), and a rollout opens a workspace per step."""
    return _command_for(shutil.which("pulumi"))


@functools.cache
def _command_for(_binary: str | None) -> auto.PulumiCommand:
    return auto.PulumiCommand()


class BackendWorkspace(auto.LocalWorkspace):
    """A LocalWorkspace whose stacks live in the file backend of `state` (see xzctl.provision.backend)."""

    def __init__(self, state: Path, **options: Any) -> None:
        super().__init__(**options)
        self.state = state

    def select_stack(self, stack_name: str) -> None:
        """A stack the backend holds needs no CLI run; one it lacks is not found, as the CLI would say (so
        Stack.create_or_select creates it)."""
        if not stack_exists(self.state, stack_name):
            raise auto.StackNotFoundError(
                auto.CommandResult(stdout="", stderr=f"no stack named '{stack_name}'", code=255)
            )

    def stack_outputs(self, stack_name: str) -> auto.OutputMap:
        """The outputs of the stack's last update; a secret one as `pulumi stack output` masks it."""
        return {
            name: auto.OutputValue(value=SECRET_MASK if secret else value, secret=secret)
            for name, (value, secret) in (output_values(self.state, stack_name) or {}).items()
        }
