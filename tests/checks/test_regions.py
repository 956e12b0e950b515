"""Checks and the forecast read per region: a region whose Prometheus does not answer is unknown, the others keep
their numbers and verdicts (fake transport behind the real client, tests/fixtures/region_fakes.py)."""

from __future__ import annotations

import pytest

from tests.fixtures.region_fakes import RegionalFake
from xzctl.checks import SnapshotOptions, Status, capacity_report, take_snapshot
from xzctl.checks.forecast import capacity_forecast
from xzctl.errors import UnknownStateError
from xzctl.spec import Fleet

OPTIONS = SnapshotOptions(window="5m", history_seconds=0, scrape_interval_seconds=10)
END = 1_790_000_000.0


@pytest.mark.parametrize("failing", [set(), {"shanghai"}, {"beijing", "guangzhou"}])
def test_a_lost_region_makes_its_nodes_unknown_not_the_fleets(example_fleet: Fleet, failing: set[str]) -> None:
    client = RegionalFake(example_fleet, failing)
    snapshot = take_snapshot(client, example_fleet, OPTIONS, now=END)
    for node in snapshot.nodes.values():
        if node.region in failing:
            assert len(node.problems) == 1 and not node.known
            assert node.problems[0].startswith(f"region {node.region} did not answer: Prometheus {client.url} ")
        else:
            assert node.known, (node.node, node.problems)
    report = capacity_report(snapshot)
    for name, region in report.regions.items():
        assert (region.status is Status.UNKNOWN) == (name in failing), (name, region.status)
    # Twelve queries per region that answered, the failed ones up to their first failure.
    assert set(client.regions_asked) == set(example_fleet.regions)


def test_when_no_region_answers_the_error_says_why(example_fleet: Fleet) -> None:
    client = RegionalFake(example_fleet, failing=set(example_fleet.regions))
    with pytest.raises(UnknownStateError, match="did not answer"):
        take_snapshot(client, example_fleet, OPTIONS, now=END)


def test_regions_are_asked_concurrently_within_a_bound(example_fleet: Fleet) -> None:
    client = RegionalFake(example_fleet, delay=0.02)
    take_snapshot(client, example_fleet, OPTIONS, now=END)
    # Up to 4 regions at once, each with up to 4 queries at once (PrometheusClient.query_many).
    assert 4 < client.peak_in_flight <= 4 * 4
    assert client.query_count == 11 * len(example_fleet.regions)


@pytest.mark.parametrize("failing", [set(), {"guangzhou"}])
def test_the_forecast_of_a_lost_region_is_unknown_the_others_stand(example_fleet: Fleet, failing: set[str]) -> None:
    client = RegionalFake(example_fleet, failing)
    result = capacity_forecast(client, example_fleet, history_hours=5 * 24, horizon=24, end=END)
    assert set(result.regions) == set(example_fleet.regions) - failing
    assert set(result.unknown) == failing
    assert all(why.startswith(f"{region}: ") for region, why in result.unknown.items())
    # Two range queries per region; a lost region stops at its first.
    assert client.query_count == 2 * len(example_fleet.regions) - len(failing)
