"""`xzctl provision destroy|refresh|outputs`, and `region` before `cloud`: every decision made before the engine
runs (the engine tier runs the real ones), on a backend written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.pulumi_backend import write_stack
from xzctl.cli import run
from xzctl.errors import ConflictError
from xzctl.provision.lifecycle import check_destroy, held_nodes
from xzctl.spec import Fleet

ENDPOINT = {"cloudEndpoint": "https://cloud.xiaozhi.example/v1", "namespace": "xiaozhi-cloud"}


def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.mark.parametrize(
    ("target", "held_by", "held"),
    [
        ("beijing", {"bj-edge-01": "asr-x7k2p"}, {"bj-edge-01": "asr-x7k2p"}),
        ("beijing", {"sh-edge-01": "asr-x7k2p"}, {}),  # another region's rollout does not hold beijing
        ("cloud", {"bj-edge-01": "asr-x7k2p"}, {}),  # the cloud has no edge nodes
        ("beijing", {}, {}),
    ],
)
def test_the_nodes_a_rollout_holds(
    example_fleet: Fleet, target: str, held_by: dict[str, str], held: dict[str, str]
) -> None:
    assert held_nodes(example_fleet, target, held_by) == held


def test_destroy_is_refused_while_a_rollout_holds_the_region(example_fleet: Fleet, tmp_path: Path) -> None:
    with pytest.raises(ConflictError) as err:
        check_destroy(example_fleet, "beijing", {"bj-edge-01": "asr-x7k2p"}, state_dir(tmp_path))
    assert err.value.one_line() == (
        "region beijing: rollout asr-x7k2p holds edge node(s) bj-edge-01 "
        "(finish it first: xzctl rollout status asr-x7k2p, then resume or abort it)"
    )


def test_the_cloud_is_destroyed_only_after_the_regions(example_fleet: Fleet, tmp_path: Path) -> None:
    state = state_dir(tmp_path)
    write_stack(state, "cloud", 40, outputs=ENDPOINT)
    write_stack(state, "edge-shanghai", 0)  # destroyed already: holds nothing
    check_destroy(example_fleet, "cloud", {}, state)
    write_stack(state, "edge-beijing", 87)
    with pytest.raises(ConflictError) as err:
        check_destroy(example_fleet, "cloud", {}, state)
    assert err.value.one_line() == (
        "edge stack(s) edge-beijing still read the cloud stack's endpoint "
        "(destroy them first: xzctl provision destroy region beijing)"
    )


@pytest.mark.usefixtures("pulumi_on_path")
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["destroy", "region", "beijing", "--yes"], 2, "no stack edge-beijing in"),
        (["destroy", "region", "beijing", "--yes"], 2, "(create it: xzctl provision region beijing)"),
        (["refresh", "cloud", "--preview"], 2, "(create it: xzctl provision cloud)"),
        (["outputs", "region", "tianjin"], 2, "no region or stack 'tianjin' in the fleet"),
        (["outputs", "region"], 2, "'region' names no stack (give `region REGION` or `cloud`)"),
        (["destroy", "cloud", "extra"], 2, "'cloud extra' names no stack"),
        (["destroy", "cloud"], 2, "destroy needs --yes when stdin is not a terminal"),
        # Pulumi's raw `unknown stack "organization/xzctl/cloud"` was all an operator got here.
        (["region", "beijing", "--preview"], 2, "which has none yet (run `xzctl provision cloud` first)"),
    ],
)
def test_what_is_refused_before_the_engine_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    assert run(["--example", "provision", *argv, "--state-dir", str(state_dir(tmp_path))]) == code
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (state_dir(tmp_path) / "pulumi-workspace").exists()  # the engine never started


def test_outputs_are_read_from_the_backend_secrets_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:abc"}
    write_stack(state_dir(tmp_path), "cloud", 40, outputs={**ENDPOINT, "routerKey": secret})
    argv = ["--example", "provision", "outputs", "cloud", "--state-dir", str(state_dir(tmp_path))]
    assert run([*argv, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "stack": "cloud",
        "target": "cloud",
        "outputs": {**ENDPOINT, "routerKey": "[secret]"},
    }
    assert run(argv) == 0
    table = capsys.readouterr().out
    assert "cloudEndpoint" in table and '"[secret]"' in table and "v1:abc" not in table


@pytest.mark.usefixtures("pulumi_on_path")
def test_destroy_asks_the_rollouts_of_the_state_dir(
    example_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.rollout_fakes import make_state
    from xzctl.rollout.state import StateStore

    state = state_dir(tmp_path)
    write_stack(state, "edge-beijing", 87)
    StateStore(state).save(make_state(example_fleet, "asr-x7k2p", ["bj-edge-02"]))  # unfinished: it has not run
    argv = ["--example", "provision", "destroy", "region", "beijing", "--yes", "--state-dir", str(state)]
    assert run(argv) == 5
    assert "region beijing: rollout asr-x7k2p holds edge node(s) bj-edge-02" in capsys.readouterr().err
    assert not (state / "pulumi-workspace").exists()
