"""The session check (tests/fixtures/leftovers.py): a process a test started and left running fails the run,
named, and is stopped; a process a test stopped is not blamed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]  # where `tests.fixtures` is imported from

MODULE = """
import subprocess, sys

def test_starts_a_server_and_forgets_it():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # leaked-server"], start_new_session=True)
"""

TIDY = """
import subprocess, sys

def test_starts_a_server_and_stops_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    proc.kill()
    proc.wait()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # the inner session runs in a folder of its own: it imports the check from this checkout
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(
        'from tests.fixtures import leftovers\n\npytest_plugins = ["tests.fixtures.leftovers"]\n'
        "leftovers.GRACE_SECONDS = 0.5\n"
    )
    return pytester


def test_a_process_left_running_fails_the_session_naming_it_and_only_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_leaky=MODULE, test_tidy=TIDY)
    # In a process of its own: its session mark is its own, as in an xdist worker.
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)  # the error: the teardown of the session's last test
    result.stdout.fnmatch_lines(["*1 process(es) started by this test session outlived it (now killed)*leaked-server*"])
    from xzctl import reaper

    assert not [p for p, _ in reaper.marked("XZCTL_TEST_SESSION") if "leaked-server" in p.command]
