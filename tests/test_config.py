"""Contexts: the config file read, validated and switched, table-driven; no CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl.config import current_context, load_config, use_context
from xzctl.errors import BadInputError

CONFIG = """\
# the operator's comment
current_context: staging
contexts:
  staging:
    fleet: ~/fleets/staging.yaml
    prometheus: http://127.0.0.1:9
    prometheus_auth: {bearer_token_env: STAGING_TOKEN}
    state_dir: /tmp/xz-staging
  prod: {fleet: /srv/fleet.yaml, deployer: pulumi, kube_context: k3s-beijing}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_no_file_is_no_context(tmp_path: Path) -> None:
    assert current_context(tmp_path / "absent.yaml") is None


def test_current_context_and_its_values(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGING_TOKEN", "t0k3n")
    name, context = current_context(config) or ("", None)
    assert name == "staging" and context is not None
    assert context.fleet_path() == Path.home() / "fleets" / "staging.yaml"
    assert context.bearer_token() == "t0k3n" and context.basic_auth() is None
    assert context.state_path() == Path("/tmp/xz-staging")
    monkeypatch.setenv("XZCTL_CONTEXT", "prod")  # one command in another context
    assert current_context(config) == ("prod", load_config(config).contexts["prod"])


def test_use_context_switches_and_keeps_the_rest(config: Path) -> None:
    use_context("prod", config)
    assert load_config(config).current_context == "prod"
    # every other byte stays: the comment, the flow mappings, the order
    assert config.read_text(encoding="utf-8") == CONFIG.replace("current_context: staging", "current_context: prod")
    assert set(load_config(config).contexts) == {"staging", "prod"}
    with pytest.raises(BadInputError, match=r"context 'qa' is not in "):
        use_context("qa", config)
    with pytest.raises(BadInputError) as raised:
        use_context("qa", config)
    assert raised.value.hint == "known contexts: prod, staging"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contexts: {a: {fleet: x, colour: red}}", "contexts.a.colour: Extra inputs are not permitted"),
        ("contexts: {a: {deployer: ftp}}", "contexts.a.deployer"),
        ("contexts: {a: {prometheus_auth: {bearer_token_env: 'not a name'}}}", "bearer_token_env"),
        ("contexts: [", "not YAML"),
        ("current_context: nowhere\ncontexts: {a: {}}", "context 'nowhere' is not in"),
    ],
)
def test_bad_configs_are_bad_input_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match=message):
        current_context(path)


@pytest.mark.parametrize("name", ["on", "1", "a: b", "null", "plain"])
def test_use_context_writes_a_name_that_reads_back_as_itself(tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"contexts:\n  {name!r}: {{}}  # kept\n", encoding="utf-8")
    use_context(name, path)
    assert load_config(path).current_context == name
    assert "# kept" in path.read_text(encoding="utf-8")


def test_use_context_refuses_a_file_it_cannot_edit_in_place(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = "contexts:\n  a: {}\n  a: {}\n"  # the reader takes the last `a`; a round trip would lose one
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match="cannot edit in place"):
        use_context("a", path)
    assert path.read_text(encoding="utf-8") == text
