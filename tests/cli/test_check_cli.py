"""`xzctl capacity report` and `xzctl check ...` end to end: documents on stdout, verdicts as exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.prometheus import free_port, refused_url
from tests.fixtures.scenarios import ALL_95, devices_seen, pin, relaxed_fleet
from xzctl.cli import run
from xzctl.sandbox import SandboxInfo, SimulatorClient

pytestmark = pytest.mark.live


def xzctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_codes_follow_the_verdicts(
    sandbox: SandboxInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = relaxed_fleet(tmp_path)
    box = pin(sandbox, ALL_95)
    # The sandbox's Prometheus is the default: found through the state dir, no --prometheus.
    common = ["--fleet", str(path), "--state-dir", str(box.state_dir), "--window", "5s"]

    # Every node at 142/150 devices: headroom 8 is a warning, and a warning exits 0.
    code, out, err = xzctl(capsys, "capacity", "report", *common, "-o", "json")
    report = json.loads(out)
    assert code == 0, err
    seen = [(n["name"], n["status"], n["devices"], n["headroom"], n["reasons"]) for n in report["nodes"]]
    assert report["status"] == "warn", (seen, devices_seen(box))
    assert report["queries"] == 12 * 3  # per region of the example
    assert report["prometheus"] == box.prometheus_url
    assert report["fleet"]["devices"] == 994 and report["fleet"]["headroom"] == 56
    assert {n["name"]: n["headroom"] for n in report["nodes"]}["gz-edge-02"] == 8

    # Losing any node leaves devices without service: crit, exit 1, one line per reason on stdout.
    code, out, err = xzctl(capsys, "check", "failover", *common, "-o", "yaml")
    failover = yaml.safe_load(out)
    assert code == 1
    assert failover["status"] == "crit"
    lost = next(f for f in failover["failures"] if f["lost"] == "sh-edge-01")
    # sh-edge-01's 142: sh-edge-02 takes 8, the 5 nodes of the other regions 8 each: 48 placed, 94 dropped.
    assert (lost["placed_same_region"], lost["placed_other_regions"], lost["unserved"]) == (8, 40, 94)
    assert "error" not in err  # a verdict is a result: stdout and the exit code
    code, out, err = xzctl(capsys, "check", "failover", *common)
    assert code == 1 and "error" not in err
    # Every reason said once (on its row, or under the table at 80 columns); the verdict is one line.
    assert out.rstrip().endswith("verdict crit (exit 1)")
    for why in {f["reason"] for f in failover["failures"]}:
        said = len(re.findall(rf"(?<![\w.]){re.escape(why)}", out))  # not "94 devices" inside "194 devices"
        assert said == sum(f["reason"] == why for f in failover["failures"]), (why, out)

    # check all: one JSON document with the three verdicts; the worst one sets the exit code.
    code, out, _ = xzctl(capsys, "check", "all", *common)
    document = json.loads(out)
    assert code == 1
    assert set(document["checks"]) == {"capacity", "failover", "cost"}
    assert document["status"] == "crit"
    assert document["checks"]["cost"]["active_devices"] == 994, devices_seen(box)

    # A node goes down: its verdict is unknown (exit 3), never ok.
    SimulatorClient(box.simulator_url).control({"action": "node_down", "node": "gz-edge-01"})
    for _ in range(40):
        code, out, err = xzctl(capsys, "capacity", "report", *common, "-o", "json")
        if code != 0:
            break
    gz = next(n for n in json.loads(out)["nodes"] if n["name"] == "gz-edge-01")
    assert code == 3, err
    assert gz["status"] == "unknown" and "up == 0" in gz["reasons"][0]
    code, out, _ = xzctl(capsys, "check", "cost", *common)
    assert code == 3 and out.count("no trustworthy metrics for 1 edge node(s): gz-edge-01") == 1, out


def test_cost_passes_and_table_renders(
    sandbox: SandboxInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = relaxed_fleet(tmp_path)
    box = pin(sandbox, ALL_95)
    where = ["--prometheus", box.prometheus_url, "--scrape-interval", "1", "--fleet", str(path)]
    code, out, err = xzctl(capsys, "check", "cost", *where)
    assert code == 0, err
    assert "verdict" not in out  # ok: the table is the whole answer
    # 173,888.89 a month over 994 devices; payback 1,610,000 / (2,982,000 - 1,550,000).
    assert "cost ok (CNY)" in out
    assert "174.94" in out and "1.12" in out

    # --watch with a bound: two reports, one JSON document each, then the exit code of the last one.
    code, out, err = xzctl(
        capsys, "capacity", "report", *where, "--window", "5s", "--watch", "--interval", "1", "--count", "2",
        "-o", "json",
    )  # fmt: skip
    decoder, documents, at = json.JSONDecoder(), [], 0
    while at < len(out.strip()):
        document, at = decoder.raw_decode(out, at)
        documents.append(document)
        at += 1
    assert code == 0, err  # warn: 8 devices of headroom per node
    assert [d["status"] for d in documents] == ["warn", "warn"]
    assert len(documents) == 2 and documents[1]["taken_at"] > documents[0]["taken_at"]
    assert all(d["fleet"]["devices"] == 994 for d in documents)


def test_drill_from_the_cli(sandbox: SandboxInfo, capsys: pytest.CaptureFixture[str]) -> None:
    box = pin(sandbox, {"beijing": 0.5, "shanghai": 0.5, "guangzhou": 0.5})
    code, out, _ = xzctl(
        capsys, "check", "failover", "--drill", "sh-edge-02", "--state-dir", str(box.state_dir), "--window", "5s",
        "-o", "json",
    )  # fmt: skip
    data = json.loads(out)
    drill = data["drill"]
    assert drill["node"] == "sh-edge-02" and drill["lost_devices"] == 75
    assert drill["status"] == "ok" and drill["seconds"] <= 30, drill
    assert drill["kpi_seconds"] == 30
    assert code == {"ok": 0, "warn": 0, "crit": 1, "unknown": 3}[data["status"]]
    assert SimulatorClient(box.simulator_url).state()["nodes"]["sh-edge-02"]["up"] is True


@pytest.mark.parametrize(("group", "commands"), [("capacity", ["report"]), ("check", ["failover", "cost", "all"])])
def test_every_command_help_has_an_example(group: str, commands: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for command in commands:
        code, out, _ = xzctl(capsys, group, command, "--help")
        assert code == 0 and f"Example: xzctl {group} {command}" in out


def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))  # no sandbox there
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = xzctl(capsys, "capacity", "report", "--prometheus", url, "--window", "five minutes")
    assert code == 2 and "--window 'five minutes' is not a duration" in err
    code, _, err = xzctl(capsys, "check", "all", "--prometheus", url, "--header", "no-colon")
    assert code == 2 and "is not 'Name: value'" in err
    code, _, err = xzctl(capsys, "check", "cost", "--prometheus", "localhost:9090")
    assert code == 2 and "not an http(s) URL" in err
    code, _, err = xzctl(capsys, "check", "failover", "--drill", "bj-edge-01", "--prometheus", url)
    assert code == 2 and "--drill stops a simulated node: it needs the running sandbox" in err


def test_unreachable_prometheus_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with refused_url() as url:
        code, out, err = xzctl(
            capsys, "check", "all", "--prometheus", url, "--retries", "0", "--state-dir", str(tmp_path)
        )
        assert code == 3
        # check all prints JSON by default: its failure is a JSON document too, never nothing for a CI parser
        failed = json.loads(out)
        assert failed["status"] == "unknown" and failed["exit_code"] == 3
        assert failed["error"].startswith(f"cannot reach Prometheus at {url}")
        assert f"cannot reach Prometheus at {url}" in err
        # Without --prometheus and without a sandbox, $XZCTL_PROMETHEUS_URL is the one asked.
        monkeypatch.setenv("XZCTL_PROMETHEUS_URL", url)
        code, out, err = xzctl(capsys, "capacity", "report", "--retries", "0", "--state-dir", str(tmp_path))
        assert code == 3 and f"cannot reach Prometheus at {url}" in err
        assert out == ""  # a table was asked: the error line alone
        code, out, _ = xzctl(capsys, "capacity", "report", "--retries", "0", "--state-dir", str(tmp_path), "-oyaml")
        assert code == 3 and yaml.safe_load(out)["status"] == "unknown"
        monkeypatch.delenv("XZCTL_PROMETHEUS_URL")
        code, _, err = xzctl(capsys, "check", "cost", "--state-dir", str(tmp_path))
        assert code == 2 and "no Prometheus to ask" in err
