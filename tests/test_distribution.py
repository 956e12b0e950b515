"""The xdist grouping (tests/fixtures/distribution.py): the tier tests of a module fixture stay in one worker."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

TIERED = """
import os
import pytest

pytestmark = pytest.mark.ssh

@pytest.fixture(scope="module")
def once():
    return os.getpid()

@pytest.mark.parametrize("n", range(6))
def test_ssh(n, once):
    pass

def test_ssh_alone():
    pass

@pytest.mark.engine
def test_engine_a():
    pass

@pytest.mark.engine
def test_engine_b():
    pass

@pytest.mark.xdist_group("own")
def test_named_group():
    pass
"""

LIVE = """
import pytest

@pytest.fixture
def sandbox():
    return None

@pytest.mark.live
def test_marked():
    pass

def test_by_fixture(sandbox):
    pass
"""


def test_tier_tests_of_a_module_fixture_run_in_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the subprocess imports the project's own plugins from the checkout
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])
    )
    pytester.makeconftest('pytest_plugins = ["tests.fixtures.tiers", "tests.fixtures.distribution"]\n')
    pytester.makeini("[pytest]\nmarkers =\n    live: x\n    ssh: x\n    engine: x\n    images: x\n    tools: x\n")
    pytester.makepyfile(test_tiered=TIERED, test_live=LIVE, test_fast="def test_fast():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "-v")
    result.assert_outcomes(passed=13)
    ran = re.findall(r"\[(gw\d)\] .*PASSED (test_tiered\.py::test_ssh\[\d\])@test_tiered\.py", result.stdout.str())
    assert len(ran) == 6 and len({worker for worker, _ in ran}) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*PASSED test_tiered.py::test_named_group@own*"])
    result.stdout.fnmatch_lines(
        ["*PASSED test_tiered.py::test_engine_a@engine*", "*PASSED test_tiered.py::test_engine_b@engine*"]
    )
    result.stdout.fnmatch_lines(["*PASSED test_tiered.py::test_ssh_alone@test_tiered.py::test_ssh_alone*"])
    # live tests, marked or live by their fixtures, spread one by one (each worker has its own session sandbox)
    result.stdout.fnmatch_lines(["*PASSED test_live.py::test_marked@test_live.py::test_marked*"])
    result.stdout.fnmatch_lines(["*PASSED test_live.py::test_by_fixture@test_live.py::test_by_fixture*"])
    assert "test_fast.py::test_fast@" not in result.stdout.str()  # untiered tests are not grouped
