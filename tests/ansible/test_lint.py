"""ansible-lint (production profile) and yamllint are clean on ansible/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "argv",
    [
        ["yamllint", "--strict", "ansible/", ".yamllint", ".ansible-lint"],
        # half a minute of CPU: a slow external linter, in the tools tier beside checkov; beside a second test run
        # (load average 41) it took over 240 s
        pytest.param(
            ["ansible-lint", "-c", ".ansible-lint", "--offline", "ansible/"],
            marks=[pytest.mark.tools, pytest.mark.timeout(900)],
        ),
    ],
    ids=["yamllint", "ansible-lint"],
)
def test_linter_is_clean(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is not installed: pip install -e '.[dev]'")
    # stdin of its own: ansible refuses a non-blocking stdin, and the test run's inherited one is shared with every
    # process the run starts, any of which may set it non-blocking (seen once, in a run alone)
    done = subprocess.run(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
