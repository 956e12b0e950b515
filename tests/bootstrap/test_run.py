"""bootstrap_region over SSH: per-host summary, an unreachable node beside good ones, fail-closed input."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fixtures.bootstrap import REACHABLE, SITE_GROUP, TOKEN, SiteRuns, node_roots
from xzctl.bootstrap import HostStatus, Playbook, bootstrap_region
from xzctl.bootstrap.inventory import inventory_yaml
from xzctl.bootstrap.run import ansible_dir, region_lock, ssh_reason, state_folder
from xzctl.errors import BadInputError, ConflictError, ExternalToolError
from xzctl.spec import Fleet
from xzctl.spec.models import SecretRef

# The session's bootstrap of beijing (tests/fixtures/bootstrap.py) counts against the time limit of its first test.
pytestmark = [pytest.mark.xdist_group(SITE_GROUP), pytest.mark.timeout(900)]


@pytest.mark.ssh
def test_unreachable_node_does_not_hide_the_others(beijing_site: SiteRuns) -> None:
    result = beijing_site.first.result
    by_host = {h.host: h for h in result.hosts}
    assert list(by_host) == ["bj-edge-01", "bj-edge-02", "bj-edge-03"]
    assert by_host["bj-edge-02"].status is HostStatus.UNREACHABLE
    assert by_host["bj-edge-02"].unreachable == 1
    assert "Connection refused" in by_host["bj-edge-02"].message
    for good in REACHABLE:
        assert by_host[good].status is HostStatus.CHANGED
        assert by_host[good].failed == 0
        assert by_host[good].changed > 5
    assert not result.succeeded
    assert result.to_json()["hosts"][1] == {
        "host": "bj-edge-02",
        "ok": 0,
        "changed": 0,
        "failed": 0,
        "unreachable": 1,
        "skipped": 0,
        "message": by_host["bj-edge-02"].message,
        "status": "unreachable",
    }


@pytest.mark.ssh
def test_progress_events_per_host(beijing_site: SiteRuns) -> None:
    events = beijing_site.first.events
    assert {e.host for e in events} == {"bj-edge-01", "bj-edge-02", "bj-edge-03"}
    assert [e.status for e in events if e.host == "bj-edge-02"] == ["unreachable"]
    server_tasks = [e.task for e in events if e.host == "bj-edge-01" and e.status == "changed"]
    assert "Deploy the NVIDIA device plugin with GPU time-slicing" in server_tasks
    assert (beijing_site.roots / "bj-edge-03" / "etc/rancher/k3s/config.yaml").is_file()


@pytest.mark.ssh
def test_the_full_output_is_kept_without_the_token(beijing_site: SiteRuns) -> None:
    log = Path(beijing_site.first.result.log)
    assert log.parent == beijing_site.state / "bootstrap"
    assert log.name.startswith("beijing-site-")
    text = log.read_text()
    assert "PLAY RECAP" in text
    assert "bj-edge-02" in text
    assert TOKEN not in text


@pytest.mark.ssh
def test_limit_runs_only_those_nodes_and_a_second_run_changes_nothing(beijing_site: SiteRuns) -> None:
    result = beijing_site.again.result
    assert [(h.host, h.status, h.changed, h.failed) for h in result.hosts] == [
        (host, HostStatus.OK, 0, 0) for host in REACHABLE
    ]
    assert result.succeeded


def test_missing_token_stops_before_anything_runs(
    loopback_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("K3S_TOKEN", raising=False)
    with pytest.raises(BadInputError) as exc:
        bootstrap_region(loopback_fleet, "beijing", extravars={"xzctl_root": str(tmp_path)})
    assert exc.value.one_line() == "the K3s join token is not set: $K3S_TOKEN is empty (export K3S_TOKEN=...)"
    assert list(tmp_path.iterdir()) == []


def test_short_token_is_refused_before_anything_runs(example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K3S_TOKEN", "abc123")
    with pytest.raises(BadInputError, match="shorter than 16 characters"):
        bootstrap_region(example_fleet, "beijing")


@pytest.mark.ssh
@pytest.mark.usefixtures("ansible_env")
def test_a_failing_node_is_reported_with_its_error(loopback_fleet: Fleet, tmp_path: Path) -> None:
    # a token given by hand (extra var) bypasses xzctl's check: the role refuses it on the node
    bad_token = node_roots(tmp_path) | {"k3s_token": "short"}
    result = bootstrap_region(loopback_fleet, "beijing", limit=["bj-edge-03"], extravars=bad_token)
    [host] = result.hosts
    assert (host.host, host.status, host.failed) == ("bj-edge-03", HostStatus.FAILED, 1)
    assert "no K3s join token (at least 16 characters)" in host.message
    assert not result.succeeded


def test_token_must_come_from_the_environment(example_fleet: Fleet) -> None:
    fleet = example_fleet.model_copy(
        update={"secrets": example_fleet.secrets.model_copy(update={"k3s_join_token": SecretRef(pulumi_secret="k3s")})}
    )
    with pytest.raises(BadInputError, match="pulumi-secret:k3s"):
        bootstrap_region(fleet, "beijing")


def test_reset_needs_no_token_but_unknown_nodes_are_refused(
    example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("K3S_TOKEN", raising=False)
    with pytest.raises(BadInputError, match="no edge node 'bj-edge-7'"):
        bootstrap_region(example_fleet, "beijing", playbook=Playbook.RESET, limit=["bj-edge-7"])


def test_a_second_run_on_the_same_region_is_refused(
    example_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K3S_TOKEN", TOKEN)
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))
    with region_lock(state_folder(), "beijing"):
        with pytest.raises(ConflictError) as exc:
            bootstrap_region(example_fleet, "beijing")
        assert exc.value.exit_code == 5
        assert exc.value.message == "another xzctl bootstrap is running on region 'beijing'"
        with region_lock(state_folder(), "shanghai"):  # other regions are independent
            pass
    assert sorted(p.name for p in (tmp_path / "bootstrap").iterdir()) == ["beijing.lock", "shanghai.lock"]


def test_missing_ansible_playbook_is_an_external_tool_error(
    example_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K3S_TOKEN", "bootstrap-test-token-0123456789")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ExternalToolError) as exc:
        bootstrap_region(example_fleet, "beijing")
    assert exc.value.exit_code == 4
    assert exc.value.one_line() == "ansible-playbook is not installed (pip install 'xzctl[ansible]')"


@pytest.mark.ssh
@pytest.mark.usefixtures("ansible_env")
def test_a_playbook_that_does_not_parse_is_an_external_tool_error(
    loopback_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks:\n    - no_such_module_xyz: {}\n", encoding="utf-8")
    monkeypatch.setenv("XZCTL_ANSIBLE_DIR", str(tmp_path))
    with pytest.raises(ExternalToolError, match=r"ansible-playbook site.yml failed \(rc [1-9]"):
        bootstrap_region(loopback_fleet, "beijing")


def _unreachable(host: str, message: str) -> dict[str, Any]:
    return {
        "event": "runner_on_unreachable",
        "event_data": {"host": host, "task": "Gathering Facts", "res": {"msg": message}},
    }


VAGUE = 'Data could not be sent to remote host "127.0.0.1". Make sure this host can be reached over ssh: '
REFUSED = "Failed to connect to the host via ssh: Host key verification failed."


@pytest.mark.parametrize(
    "case",
    [
        (VAGUE, REFUSED, REFUSED, 1),  # ssh's own words, asked for once
        (VAGUE, None, VAGUE, 1),  # the node answered the second time: ansible's words are all there is
        (REFUSED, REFUSED, REFUSED, 0),  # already ssh's words: no second ssh
    ],
)
def test_an_unreachable_node_is_reported_in_ssh_words(
    example_fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, str | None, str, int],
) -> None:
    playbook_says, raw_says, reported, asked = case
    import ansible_runner

    runs: list[dict[str, Any]] = []

    def fake_run(**kwargs: Any) -> SimpleNamespace:
        runs.append(kwargs)
        says = raw_says if kwargs.get("module") == "raw" else playbook_says
        if says is not None:
            kwargs["event_handler"](_unreachable("bj-edge-01", says))
        recap = {"dark": {"bj-edge-01": 1}}
        return SimpleNamespace(stdout=io.StringIO("PLAY RECAP"), status="failed", rc=4, stats=recap)

    monkeypatch.setattr(ansible_runner, "run", fake_run)
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))
    result = bootstrap_region(example_fleet, "beijing", playbook=Playbook.RESET, limit=["bj-edge-01"])
    assert [(h.status, h.message) for h in result.hosts] == [(HostStatus.UNREACHABLE, reported)]
    raw = [r for r in runs if r.get("module") == "raw"]
    assert len(raw) == asked
    for again in raw:  # the same inventory, variables and ansible.cfg as the playbook, on that node only
        assert (again["host_pattern"], again["module_args"], again["inventory"]) == (
            "bj-edge-01",
            "true",
            runs[0]["inventory"],
        )
        assert again["envvars"]["ANSIBLE_CONFIG"].endswith("ansible.cfg")
        assert again["timeout"] > 0


@pytest.mark.ssh
@pytest.mark.usefixtures("ansible_env")
def test_ssh_asked_again_names_the_refused_host_key(
    loopback_fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ansible_runner

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    monkeypatch.setenv("ANSIBLE_SSH_COMMON_ARGS", f"-o UserKnownHostsFile={known_hosts} -o IdentitiesOnly=yes")
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp"))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(inventory_yaml(loopback_fleet, "beijing"))
    settings = {"private_data_dir": str(tmp_path), "inventory": str(inventory), "quiet": True}
    envvars = {"ANSIBLE_HOST_KEY_CHECKING": "True"}
    reason = ssh_reason(ansible_runner, "bj-edge-01", settings, envvars, ansible_dir())
    assert "Host key verification failed" in reason
    assert known_hosts.read_text() == ""  # asking does not accept the key
