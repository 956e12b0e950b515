"""`xzctl provision`: every check that runs before Pulumi, and `status` read from the file backend.

The pulumi CLI cannot be installed on development machines, so the Automation API run itself is
not exercised here; what comes before it is, with the CLI forced absent or (for the later checks)
a stand-in `pulumi` file on PATH that only `shutil.which` sees and nothing executes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.golden import assert_golden
from tests.fixtures.pulumi_backend import write_stack
from xzctl.cli import _common, run
from xzctl.errors import BadInputError
from xzctl.provision import ProvisionEvent
from xzctl.provision.backend import find_lock, stack_for, stack_statuses
from xzctl.spec import Fleet

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.mark.usefixtures("no_pulumi")
def test_missing_pulumi_cli_exits_4_with_the_install_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert run(["--example", "provision", "region", "beijing", "--preview", "--state-dir", str(state)]) == 4
    err = capsys.readouterr().err
    assert "the pulumi CLI is not installed" in err
    assert "https://get.pulumi.com" in err
    assert not state.exists()  # nothing written


@pytest.mark.usefixtures("no_pulumi")
def test_applying_without_a_terminal_needs_yes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--example", "provision", "cloud"]) == 2
    assert "needs --yes when stdin is not a terminal" in capsys.readouterr().err


@pytest.mark.usefixtures("no_pulumi")
def test_unknown_region_is_bad_input_before_any_tool(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--example", "provision", "region", "chengdu", "--preview"]) == 2
    assert "no region or stack 'chengdu'" in capsys.readouterr().err


@pytest.mark.usefixtures("pulumi_on_path")
def test_passphrase_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    assert run(["--example", "provision", "region", "beijing", "--preview", "--state-dir", str(tmp_path / "s")]) == 2
    assert "PULUMI_CONFIG_PASSPHRASE is not set" in capsys.readouterr().err


@pytest.mark.usefixtures("pulumi_on_path")
def test_a_missing_secret_env_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("XIAOZHI_AUTH_KEY")
    assert run(["--example", "provision", "region", "shanghai", "--yes", "--state-dir", str(tmp_path / "s")]) == 2
    assert "stack edge-shanghai needs the secret(s) in XIAOZHI_AUTH_KEY" in capsys.readouterr().err


def _write_lock(state: Path, stack: str) -> Path:
    lock = state / "pulumi" / ".pulumi" / "locks" / "organization" / "xzctl" / stack / "6f1c.json"
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps({"pid": 4242, "username": "ops", "hostname": "jump-1", "timestamp": "2026-11-24T21:00:00Z"}),
        encoding="utf-8",
    )
    return lock


@pytest.mark.usefixtures("pulumi_on_path")
def test_a_locked_stack_exits_5_naming_the_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    lock = _write_lock(state, "edge-beijing")
    assert run(["--example", "provision", "region", "beijing", "--yes", "--state-dir", str(state)]) == 5
    err = capsys.readouterr().err
    assert "stack edge-beijing is locked by another update: ops@jump-1 (pid 4242) since 2026-11-24T21:00:00Z" in err
    assert str(lock) in err
    assert not (state / "pulumi-workspace").exists()
    # Another stack is not blocked by that lock.
    assert find_lock(state, "cloud") is None


def test_stack_names(example_fleet: Fleet) -> None:
    assert stack_for(example_fleet, "beijing") == ("beijing", "edge-beijing")
    assert stack_for(example_fleet, "edge-beijing") == ("beijing", "edge-beijing")
    assert stack_for(example_fleet, "organization/xzctl/guangzhou") == ("guangzhou", "edge-guangzhou")
    assert stack_for(example_fleet, "cloud") == ("cloud", "cloud")
    for bad in ("org/other/beijing", "a/b", "edge-chengdu", ""):
        with pytest.raises(BadInputError):
            stack_for(example_fleet, bad)


def test_status_lists_stacks_with_last_update_and_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    assert run(["--example", "provision", "status", "--state-dir", str(state)]) == 0
    assert "no stacks in" in capsys.readouterr().out
    write_stack(
        state,
        "cloud",
        42,
        [{"kind": "update", "result": "succeeded", "endTime": 1764017000, "resourceChanges": {"create": 42}}],
    )
    write_stack(
        state,
        "edge-beijing",
        87,
        [
            {"kind": "update", "result": "succeeded", "endTime": 1764010000, "resourceChanges": {"create": 87}},
            {"kind": "update", "result": "failed", "endTime": 1764018000, "resourceChanges": {"update": 2, "same": 85}},
        ],
    )
    _write_lock(state, "edge-beijing")
    assert run(["--example", "provision", "status", "--state-dir", str(state), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stacks = {s["stack"]: s for s in data["stacks"]}
    assert stacks["cloud"] == {
        "stack": "cloud",
        "resources": 42,
        "last_update": "update",
        "result": "succeeded",
        "finished": "2025-11-24T20:43:20Z",
        "changes": {"create": 42},
        "locked_by": None,
    }
    assert stacks["edge-beijing"]["result"] == "failed"
    assert stacks["edge-beijing"]["changes"] == {"update": 2, "same": 85}
    assert stacks["edge-beijing"]["locked_by"].startswith("ops@jump-1 (pid 4242)")
    assert [s.stack for s in stack_statuses(state)] == ["cloud", "edge-beijing"]
    assert run(["--example", "provision", "status", "--state-dir", str(state)]) == 0
    table = capsys.readouterr().out
    assert "edge-beijing" in table and "failed" in table and "succeeded" in table
    monkeypatch.setattr(_common.stdout, "width", 80)
    assert run(["--example", "provision", "status", "--state-dir", str(state)]) == 0
    assert_golden(GOLDEN / "status-80.txt", capsys.readouterr().out)


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    path = state / "pulumi" / ".pulumi" / "stacks" / "xzctl" / "cloud.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    assert run(["--example", "provision", "status", "--state-dir", str(state)]) == 2
    assert "cannot read the state of stack cloud" in capsys.readouterr().err


def test_engine_events_become_progress_events() -> None:
    from pulumi.automation import events

    from xzctl.provision.automation import _simplify

    urn = "urn:pulumi:edge-beijing::xzctl::xzctl:edge:EdgeNode$kubernetes:apps/v1:Deployment::xiaozhi/bj-edge-01-asr"
    meta = events.StepEventMetadata(op=events.OpType.CREATE, urn=urn, type="kubernetes:apps/v1:Deployment", provider="")
    pre = events.EngineEvent(sequence=1, timestamp=0, resource_pre_event=events.ResourcePreEvent(metadata=meta))
    assert _simplify(pre) == ProvisionEvent(
        phase="start", op="create", type="kubernetes:apps/v1:Deployment", name="xiaozhi/bj-edge-01-asr"
    )
    diag = events.DiagnosticEvent(message="boom\n", color="never", severity="error")
    assert _simplify(events.EngineEvent(sequence=2, timestamp=0, diagnostic_event=diag)) == ProvisionEvent(
        phase="diagnostic", op="error", message="boom"
    )
    info = events.DiagnosticEvent(message="fyi", color="never", severity="info")
    assert _simplify(events.EngineEvent(sequence=3, timestamp=0, diagnostic_event=info)) is None


@pytest.mark.usefixtures("no_pulumi")
def test_rollout_api_up_names_the_missing_cli(tmp_path: Path, example_fleet: Fleet) -> None:
    """What a rollout step calls: up(stack, fleet, pins=...) fails closed, before any state is written."""
    from xzctl.errors import ExternalToolError
    from xzctl.manifests.pins import spec_pins
    from xzctl.provision import up
    from xzctl.spec import bundled_example_path

    with pytest.raises(ExternalToolError) as caught:
        up("organization/xzctl/beijing", bundled_example_path(), pins=spec_pins(example_fleet), state=tmp_path / "s")
    assert caught.value.exit_code == 4
    assert "get.pulumi.com" in (caught.value.hint or "")
    assert not (tmp_path / "s").exists()


def test_pulumi_secrets_can_come_from_the_environment(example_fleet: Fleet) -> None:
    from xzctl.provision.automation import secret_config_from_env
    from xzctl.provision.objects import target_objects

    secrets = target_objects(example_fleet, "cloud").secrets
    environ = {"XZCTL_SECRET_BACKUP_CREDENTIALS": "RESTIC_PASSWORD=x", "XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD": ""}
    # An empty variable is not a secret: the stack keeps what it has.
    assert secret_config_from_env(secrets, environ) == {"xzctl:backupCredentials": "RESTIC_PASSWORD=x"}
    edge = target_objects(example_fleet, "beijing").secrets
    assert secret_config_from_env(edge, {"XZCTL_SECRET_REDIS_PASSWORD": "r", "XIAOZHI_AUTH_KEY": "k"}) == {
        "xzctl:redisPassword": "r"
    }


def test_a_lock_of_another_project_does_not_block(tmp_path: Path) -> None:
    lock = tmp_path / "pulumi" / ".pulumi" / "locks" / "organization" / "other" / "cloud" / "1.json"
    lock.parent.mkdir(parents=True)
    lock.write_text("{}", encoding="utf-8")
    assert find_lock(tmp_path, "cloud") is None
    legacy = tmp_path / "pulumi" / ".pulumi" / "locks" / "cloud" / "2.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text("not json", encoding="utf-8")  # unreadable still locks
    found = find_lock(tmp_path, "cloud")
    assert found is not None and found.path == legacy and found.user == "?"


def test_status_ignores_the_attrs_files_beside_the_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    update = {"kind": "update", "result": "succeeded", "endTime": 1764017000, "resourceChanges": {"same": 3}}
    write_stack(state, "cloud", 3, [update])
    folder = state / "pulumi" / ".pulumi" / "history" / "xzctl" / "cloud"
    # The file backend writes a .attrs file beside each history and checkpoint; it sorts after them.
    (folder / "cloud-1764000000000000000.history.json.attrs").write_text('{"md5": "x"}', encoding="utf-8")
    (state / "pulumi" / ".pulumi" / "stacks" / "xzctl" / "cloud.json.attrs").write_text("{}", encoding="utf-8")
    [status] = stack_statuses(state)
    assert (status.stack, status.last_kind, status.last_result, status.changes) == (
        "cloud",
        "update",
        "succeeded",
        {"same": 3},
    )


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _write_interrupted(state: Path, stack: str, *, lock: bool, pending: int) -> Path:
    import socket

    write_stack(state, stack, 3, [])
    checkpoint_path = state / "pulumi" / ".pulumi" / "stacks" / "xzctl" / f"{stack}.json"
    checkpoint = json.loads(checkpoint_path.read_text(encoding="utf-8"))
    urn = f"urn:pulumi:{stack}::xzctl::kubernetes:apps/v1:Deployment::xiaozhi/bj-edge-01-asr"
    ops = [{"type": "creating", "resource": {"urn": urn}}] * pending
    checkpoint["checkpoint"]["latest"]["pending_operations"] = ops
    checkpoint_path.write_text(json.dumps(checkpoint), encoding="utf-8")
    path = state / "pulumi" / ".pulumi" / "locks" / "organization" / "xzctl" / stack / "dead.json"
    if lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        holder = {"pid": _dead_pid(), "username": "ops", "hostname": socket.gethostname(), "timestamp": "t"}
        path.write_text(json.dumps(holder), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("lock", "pending", "says"),
    [
        (True, 1, "was interrupted and left 1 pending operation(s) (creating xiaozhi/bj-edge-01-asr)"),
        (True, 0, "was interrupted and left its lock"),
        (False, 2, "an earlier update was interrupted and left 2 pending operation(s)"),
    ],
)
@pytest.mark.usefixtures("pulumi_on_path")
def test_an_interrupted_update_is_refused_until_the_operator_consents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *, lock: bool, pending: int, says: str
) -> None:
    from xzctl.provision.backend import ensure_unlocked

    state = tmp_path / "state"
    lock_path = _write_interrupted(state, "edge-beijing", lock=lock, pending=pending)
    assert run(["--example", "provision", "region", "beijing", "--yes", "--state-dir", str(state)]) == 5
    err = capsys.readouterr().err
    assert says in err and "--recover" in err
    assert (
        run(["--example", "provision", "region", "beijing", "--recover", "--state-dir", str(state)]) == 2
    )  # needs --yes
    # With consent: the dead update's lock goes, its pending operations are handed to the update to clear.
    assert len(ensure_unlocked(state, "edge-beijing", recover=True)) == pending
    assert not lock_path.exists()


def test_a_checkpoint_sidecar_a_kill_left_empty_is_removed_only_with_consent(tmp_path: Path) -> None:
    """The backend writes a checkpoint's `.attrs` in place: a kill can leave it empty, and Pulumi then fails on
    every load ("failed to load checkpoint: EOF"). Seen in the engine tier's SIGKILL test."""
    from xzctl.errors import ConflictError
    from xzctl.provision.backend import ensure_unlocked

    state = tmp_path / "state"
    write_stack(state, "edge-beijing", 3, [])
    folder = state / "pulumi" / ".pulumi" / "stacks" / "xzctl"
    (folder / "edge-beijing.json.attrs").write_bytes(b"")
    (folder / "edge-beijing.json.bak.attrs").write_text('{"md5": "x"}', encoding="utf-8")
    (folder / "edge-beijing.json.18ed2498c840aae3.tmp").write_text("{", encoding="utf-8")
    (folder / "cloud.json.attrs").write_bytes(b"")  # another stack's: not this recovery's business
    with pytest.raises(ConflictError, match=r"an earlier update was interrupted and left half-written edge-beijing"):
        ensure_unlocked(state, "edge-beijing")
    assert ensure_unlocked(state, "edge-beijing", recover=True) == []
    assert sorted(p.name for p in folder.iterdir()) == [
        "cloud.json.attrs",
        "edge-beijing.json",
        "edge-beijing.json.bak.attrs",
    ]


def test_a_live_lock_is_never_recovered(tmp_path: Path) -> None:
    from xzctl.errors import ConflictError
    from xzctl.provision.backend import ensure_unlocked

    state = tmp_path / "state"
    lock = _write_lock(state, "cloud")  # another host's update: xzctl cannot know it is gone
    with pytest.raises(ConflictError, match="locked by another update"):
        ensure_unlocked(state, "cloud", recover=True)
    assert lock.exists()
