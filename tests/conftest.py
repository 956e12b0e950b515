"""Shared fixtures. Each fixture family lives in tests/fixtures/ and is loaded here as a plugin."""

import pytest

from xzctl.spec import Fleet, bundled_example_path, load_fleet

pytest_plugins = ["tests.fixtures.sandbox", "tests.fixtures.pulumi_mocks", "tests.fixtures.engine"]


@pytest.fixture(scope="session")
def example_fleet() -> Fleet:
    """The bundled example fleet (1000 devices, 7 edge nodes, 3 regions)."""
    return load_fleet(bundled_example_path()).fleet
