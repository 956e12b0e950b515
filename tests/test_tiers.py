"""The tier check (tests/fixtures/tiers.py): a skipped tier test fails the run unless its opt-out variable is set."""

from __future__ import annotations

import pytest

MODULE = """
import pytest

@pytest.mark.live
def test_needs_prometheus():
    pytest.skip("prometheus not installed")

@pytest.mark.live
def test_runs():
    pass

def test_untiered_skip():
    pytest.skip("not a tier")

def test_uses_the_sandbox_fixture(sandbox):
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(
        'import pytest\npytest_plugins = ["tests.fixtures.tiers"]\n\n'
        "@pytest.fixture\ndef sandbox():\n    pytest.skip('prometheus not installed')\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    live: x\n    ssh: x\n    engine: x\n    tools: x\n")
    pytester.makepyfile(test_tiered=MODULE)
    return pytester


def test_a_skipped_tier_test_fails_the_run(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XZCTL_SKIP_LIVE", raising=False)
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    # the marked skip fails, a live fixture's skip is a setup error; an untiered skip stays a skip
    result.assert_outcomes(failed=1, errors=1, passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*live test skipped (prometheus not installed)*XZCTL_SKIP_LIVE=1*"])


def test_the_opt_out_variable_allows_it(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XZCTL_SKIP_LIVE", "1")
    suite.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=3)
