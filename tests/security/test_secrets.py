"""Secrets stay references: a recognisable token given by flag, env var or URL never shows in any output."""

from __future__ import annotations

import json
import socket
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from tests.fixtures.fault_server import Fault, fault_server, response
from xzctl.cli import run
from xzctl.redact import redact, register
from xzctl.spec import bundled_example_path, load_fleet

TOKEN = "tok-4f9c1e7a-RECOGNISABLE"
PASSWORD = "pw-83b1d2-RECOGNISABLE"
ENV_SECRET = "env-5521-RECOGNISABLE"
SECRETS = (TOKEN, PASSWORD, ENV_SECRET, b64encode(f"ops:{PASSWORD}".encode()).decode())


def _echo(fault: Fault) -> Fault:
    """Answer 500 with the request (headers included) as the body: the worst a server can do with auth."""

    def respond(sock: socket.socket) -> None:
        error = {"status": "error", "errorType": "echo", "error": fault.requests[-1].decode()}
        sock.sendall(response(500, json.dumps(error).encode()))

    fault.respond = respond
    return fault


@pytest.mark.parametrize(
    "how",
    [
        ["--bearer-token", TOKEN],
        ["--basic-auth", f"ops:{PASSWORD}"],
        ["-H", f"Authorization: Bearer {TOKEN}"],
        ["--url-credentials"],
    ],
    ids=["bearer", "basic", "header", "url"],
)
def test_no_secret_in_messages_tracebacks_or_state(
    how: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XZCTL_STATE_DIR", str(state))
    monkeypatch.setenv("K3S_TOKEN", ENV_SECRET)
    with fault_server(_echo(Fault(lambda _: None))) as url:
        if how == ["--url-credentials"]:
            how = ["--prometheus", url.replace("http://", f"http://ops:{PASSWORD}@")]
        else:
            how = ["--prometheus", url, *how]
        for debug in ([], ["--debug"]):
            code = run([*debug, "check", "all", "--example", "--retries", "0", "--timeout", "5", *how])
            out, err = capsys.readouterr()
            assert code == 3
            assert "HTTP 500" in err and "POST /api/v1/query" in err  # the echoed request was shown, masked
            for secret in SECRETS:
                assert secret not in out + err
            if debug:
                assert err.startswith("Traceback")
    stored = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(s.encode() in b for b in stored for s in SECRETS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET https://ops:hunter22@prom.example/api", "GET https://ops:***@prom.example/api"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("no secret here", "no secret here"),
        ("a registered value: swordfish-7 twice swordfish-7", "a registered value: *** twice ***"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    register("swordfish-7")
    assert redact(text) == expected


def test_values_the_spec_names_as_secrets_are_masked_once_it_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    doc["secrets"]["redis_password"] = {"env": "CACHE_PW_VAR"}  # a name no heuristic would call secret
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    monkeypatch.setenv("CACHE_PW_VAR", "cache-pw-RECOGNISABLE-2")
    load_fleet(spec)
    assert redact("redis said cache-pw-RECOGNISABLE-2") == "redis said ***"
