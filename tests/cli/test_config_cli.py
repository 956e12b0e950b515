"""`xzctl config ...` and the one rule: flags > environment > context > sandbox, for every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.prometheus import refused_url
from xzctl.cli import run


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"current_context: lab\ncontexts:\n  lab: {{state_dir: {tmp_path / 'lab-state'}}}\n  other: {{}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("XZCTL_CONFIG", str(path))
    monkeypatch.delenv("XZCTL_STATE_DIR", raising=False)
    monkeypatch.delenv("XZCTL_PROMETHEUS_URL", raising=False)
    return path


@pytest.mark.usefixtures("config")
def test_get_use_view(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "get-contexts", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["current_context"] == "lab" and set(listed["contexts"]) == {"lab", "other"}
    assert run(["config", "use-context", "other"]) == 0
    assert "switched to context other" in capsys.readouterr().err
    assert run(["config", "view", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["current_context"] == "other"
    assert run(["config", "use-context", "nope"]) == 2
    assert "known contexts: lab, other" in capsys.readouterr().err


@pytest.mark.usefixtures("config")
def test_the_context_state_dir_is_a_default_below_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "status"]) == 2
    assert str(tmp_path / "lab-state") in capsys.readouterr().err
    assert run(["sandbox", "status", "--state-dir", str(tmp_path / "flag")]) == 2
    assert str(tmp_path / "flag") in capsys.readouterr().err


def test_the_context_prometheus_is_asked_below_env_and_shown_in_the_header(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with refused_url() as context_url, refused_url() as env_url:
        config.write_text(f"current_context: lab\ncontexts:\n  lab: {{prometheus: {context_url}}}\n", encoding="utf-8")
        argv = ["check", "cost", "--example", "--retries", "0", "--timeout", "2"]
        assert run(argv) == 3
        assert f"cannot reach Prometheus at {context_url}" in capsys.readouterr().err
        monkeypatch.setenv("XZCTL_PROMETHEUS_URL", env_url)
        assert run(argv) == 3
        assert f"cannot reach Prometheus at {env_url}" in capsys.readouterr().err


def test_the_context_kube_context_is_the_provision_default(config: Path) -> None:
    from xzctl.cli._context import kube_context_option

    config.write_text("current_context: bj\ncontexts:\n  bj: {kube_context: k3s-beijing-prod}\n", encoding="utf-8")
    assert kube_context_option(None) == "k3s-beijing-prod"
    assert kube_context_option("from-the-flag") == "from-the-flag"


def test_set_context_creates_and_changes_keeping_the_file(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text("# our contexts\n" + config.read_text(encoding="utf-8"), encoding="utf-8")
    url = "http://127.0.0.1:9090"
    assert run(["config", "set-context", "staging", "--prometheus", url, "--bearer-token-env", "PROM_TOKEN"]) == 0
    assert "context staging created" in capsys.readouterr().err
    assert run(["config", "set-context", "--current", "--deployer", "sandbox"]) == 0  # lab is current
    assert "context lab modified" in capsys.readouterr().err
    assert run(["config", "set-context", "staging", "--prometheus", ""]) == 0  # "" removes a key, as kubectl's --unset
    assert run(["config", "view", "-o", "json"]) == 0
    contexts = json.loads(capsys.readouterr().out)["contexts"]
    assert contexts["staging"] == {"prometheus_auth": {"bearer_token_env": "PROM_TOKEN"}}
    assert contexts["lab"]["deployer"] == "sandbox" and "state_dir" in contexts["lab"]
    assert config.read_text(encoding="utf-8").startswith("# our contexts\n")  # comments stay
    before = config.read_text(encoding="utf-8")
    assert run(["config", "set-context", "staging", "--deployer", "argo"]) == 2  # checked before written
    assert "context staging: deployer: String should match pattern" in capsys.readouterr().err
    assert run(["config", "set-context", "staging", "--current"]) == 2
    assert config.read_text(encoding="utf-8") == before  # nothing half-applied
