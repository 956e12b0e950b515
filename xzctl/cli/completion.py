"""`xzctl completion bash|zsh|fish`: the shell completion script."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


def command(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script of a shell: commands, subcommands, options and their choices.

    Example: xzctl completion bash > ~/.local/share/bash-completion/completions/xzctl
    Example: xzctl completion zsh > "${fpath[1]}/_xzctl"; xzctl completion fish > ~/.config/fish/completions/xzctl.fish
    """
    from typer._completion_shared import get_completion_script

    sys.stdout.write(get_completion_script(prog_name="xzctl", complete_var="_XZCTL_COMPLETE", shell=shell.value))
