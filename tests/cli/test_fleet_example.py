"""`xzctl fleet example`: the bundled example, or a generated fleet of N edge nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from xzctl.cli import run
from xzctl.spec import bundled_example_path, load_fleet


def test_example_is_the_bundled_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "example"]) == 0
    assert capsys.readouterr().out == bundled_example_path().read_text(encoding="utf-8")


def test_generated_example_is_a_valid_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "example", "--nodes", "60", "--seed", "7"]) == 0
    spec = tmp_path / "fleet.yaml"
    spec.write_text(capsys.readouterr().out, encoding="utf-8")
    fleet = load_fleet(spec).fleet
    assert len(fleet.edge_nodes()) == 60
    assert list(fleet.regions) == ["beijing", "shanghai", "guangzhou"]
    assert run(["fleet", "example", "--nodes", "60", "--seed", "7"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load(spec.read_text(encoding="utf-8"))


def test_zero_nodes_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "example", "--nodes", "0"]) == 2
    assert "--nodes" in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--nodes", "30"]])
def test_every_host_is_an_unresolvable_documentation_name(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistaken run on the example must send nothing anywhere: no address, only names under .example (RFC 2606).
    assert run(["fleet", "example", *args]) == 0
    spec = tmp_path / "fleet.yaml"
    spec.write_text(capsys.readouterr().out, encoding="utf-8")
    hosts = [(n.host.address, n.public_hostname) for n in load_fleet(spec).fleet.edge_nodes()]
    assert hosts
    for address, public in hosts:
        assert address.endswith(".xiaozhi.example") and public.endswith(".xiaozhi.example"), (address, public)
