"""The xdist grouping (tests/fixtures/distribution.py): a tier module's tests stay in one worker, fast tests spread."""

from __future__ import annotations

import re

import pytest

TIERED = """
import os
import pytest

pytestmark = pytest.mark.live

@pytest.mark.parametrize("n", range(6))
def test_live(n):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.xdist_group("own")
def test_named_group():
    pass
"""


def test_a_tier_module_runs_in_one_worker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["tests.fixtures.tiers", "tests.fixtures.distribution"]\n')
    pytester.makeini("[pytest]\nmarkers =\n    live: x\n    ssh: x\n    engine: x\n    images: x\n    tools: x\n")
    pytester.makepyfile(test_tiered=TIERED, test_fast="def test_fast():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup", "-v")
    result.assert_outcomes(passed=8)
    ran = re.findall(r"\[(gw\d)\] .*PASSED (test_tiered\.py::test_live\[\d\])@test_tiered\.py", result.stdout.str())
    assert len(ran) == 6 and len({worker for worker, _ in ran}) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*PASSED test_tiered.py::test_named_group@own*"])
    assert "test_fast.py::test_fast@" not in result.stdout.str()  # untiered tests are not grouped
