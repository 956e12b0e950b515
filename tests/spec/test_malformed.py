"""Malformed fleet specs: each gives one clear error (file, path, fix), exit code 2, no traceback, nothing written."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.cli import run
from xzctl.spec import bundled_example_path, load

EXAMPLE = bundled_example_path().read_text(encoding="utf-8")
# The cases are built at collection, in every xdist worker: libyaml, and the example parsed once.
EXAMPLE_DOC = yaml.load(EXAMPLE, Loader=yaml.CSafeLoader)


def _edit(change: Callable[[dict[str, Any]], None]) -> bytes:
    doc = copy.deepcopy(EXAMPLE_DOC)
    change(doc)
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True).encode()


def _replace(old: str, new: str) -> bytes:
    assert old in EXAMPLE, old
    return EXAMPLE.replace(old, new, 1).encode()


def _profile(doc: dict[str, Any]) -> dict[str, Any]:
    profile: dict[str, Any] = doc["node_profiles"]["edge-standard"]
    return profile


def _node(doc: dict[str, Any], region: str = "beijing", index: int = 0) -> dict[str, Any]:
    node: dict[str, Any] = doc["regions"][region]["edge_nodes"][index]
    return node


def _set(target: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target(doc)[key] = value

    return change


def _alias_bomb() -> bytes:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes
    expect: tuple[str, ...]  # fragments of the problem line: path, message, fix


CASES = [
    Case(
        "wrong type",
        _edit(lambda d: _profile(d)["capacity"].update(max_devices="lots")),
        ("node_profiles.edge-standard.capacity.max_devices", "(got 'lots')", "fix: write a whole number"),
    ),
    Case(
        "missing field",
        _edit(lambda d: d["cloud"].pop("endpoint")),
        ("cloud.endpoint", "required field is missing", "fix: add it"),
    ),
    Case(
        "duplicate ids",
        _edit(_set(lambda d: _node(d, "shanghai", 1), "id", "bj-edge-01")),
        ("regions.shanghai.edge_nodes[1].id", "duplicate edge node id 'bj-edge-01'", "unique id"),
    ),
    Case(
        "negative capacity",
        _edit(lambda d: _profile(d)["capacity"].update(max_devices=-5)),
        ("node_profiles.edge-standard.capacity.max_devices", "greater than 0", "fix: use a larger value"),
    ),
    Case(
        "unknown profile reference",
        _edit(_set(_node, "profile", "edge-huge")),
        ("regions.beijing.edge_nodes[0].profile", "unknown node profile 'edge-huge'", "edge-standard"),
    ),
    Case(
        "YAML syntax error",
        _replace("kind: Fleet\n", "kind: Fleet\nregions: [unclosed\n"),
        ("fleet.yaml:7: YAML syntax error", "fix the YAML syntax"),
    ),
    Case("empty file", b"", ("file is empty", "xzctl fleet example")),
    Case("only a comment", b"# nothing here\n", ("holds no YAML document", "start from the bundled example")),
    Case("binary garbage", bytes(range(256)) * 16, ("file is binary, not YAML",)),
    Case("not UTF-8", "name: caf\u00e9\n".encode("latin-1"), ("not UTF-8", "save the spec as UTF-8")),
    Case("huge file", b"# padding\n" * (900 * 1024), ("bytes, more than the 8,388,608", "split the fleet")),
    Case("YAML alias bomb", _alias_bomb(), ("alias bomb", "remove the repeated aliases")),
    Case("top level is a list", b"- apiVersion: xzctl.io/v1\n", ("top level is a list", "expected a mapping")),
    Case(
        "two documents", (EXAMPLE + "\n---\nkind: Fleet\n").encode(), ("several YAML documents", "one fleet per file")
    ),
    Case(
        "GPU over-demand",
        _edit(lambda d: _profile(d)["services"]["asr"].update(gpu_per_replica=4)),
        ("node_profiles.edge-standard.services", "services need 30 GPU slots", "time_slicing_replicas"),
    ),
    Case(
        "devices over capacity",
        _edit(_set(_node, "devices", 200)),
        ("regions.beijing.edge_nodes[0].devices", "200 devices assigned but max_devices is 150", "move devices"),
    ),
    Case(
        "weights not summing to 1",
        _edit(lambda d: d["load_balancer"]["weights"].update(cpu=0.5)),
        (
            "load_balancer.weights",
            "weights must add up to 1.0, they add up to 1.2",
        ),
    ),
    Case(
        "literal secret value",
        _edit(lambda d: d["secrets"].update(auth_key="hunter2-very-secret")),
        ("secrets.auth_key", "literal secret", "{env: NAME}"),
    ),
    Case(
        "production image without digest",
        _edit(lambda d: d["metadata"].update(environment="production")),
        ("services.xiaozhi_server.image", "not pinned by digest", "xzctl images show"),
    ),
    Case(
        "server replicas, the count's old name",
        _edit(lambda d: _profile(d)["services"]["xiaozhi_server"].update(replicas=2)),
        ("node_profiles.edge-standard.services.xiaozhi_server", "is now xiaozhi_server.processes"),
    ),
    Case(
        "server processes out of range",
        _edit(lambda d: _profile(d)["services"]["xiaozhi_server"].update(processes=0)),
        ("node_profiles.edge-standard.services.xiaozhi_server.processes", "greater than or equal to 1"),
    ),
    Case(
        "unknown field (typo)",
        _edit(lambda d: _profile(d)["capacity"].update(max_device=150)),
        ("node_profiles.edge-standard.capacity.max_device", "unknown field 'max_device'", "check its spelling"),
    ),
    Case(
        "enum value",
        _edit(lambda d: _profile(d)["monitoring"].update(log_level="VERBOSE")),
        ("node_profiles.edge-standard.monitoring.log_level", "'VERBOSE'", "allowed values"),
    ),
    Case(
        "node id not a DNS label",
        _edit(_set(_node, "id", "BJ_EDGE_01")),
        ("regions.beijing.edge_nodes[0].id", "(got 'BJ_EDGE_01')", "fix: match"),
    ),
    Case(
        "node id too long for derived Kubernetes names",
        _edit(_set(_node, "id", "bj-" + "x" * 50)),
        ("regions.beijing.edge_nodes[0].id", "has 53 characters, more than 40", "must fit 63"),
    ),
    Case(
        "region name with path traversal",
        _edit(lambda d: d["regions"].update({"../etc": d["regions"].pop("guangzhou")})),
        ("regions.../etc", "fix: match"),
    ),
    Case(
        "hostname with YAML injection",
        _edit(_set(_node, "public_hostname", "evil\nserver:\n  auth: {enabled: false}")),
        ("regions.beijing.edge_nodes[0].public_hostname", "should match pattern"),
    ),
    Case(
        "streaming overlap too large",
        _edit(lambda d: _profile(d)["services"]["asr"]["streaming"].update(overlap_samples=1600)),
        ("services.asr.streaming", "overlap_samples must be smaller than chunk_samples"),
    ),
    Case(
        "request above limit",
        _edit(lambda d: _profile(d)["services"]["vad"]["resources"].update(cpu_request="4")),
        ("services.vad.resources", "cpu_request 4 is above cpu_limit 1"),
    ),
    Case(
        "pods request more CPU than the node has",
        _edit(lambda d: _profile(d)["services"]["vad"].update(replicas=40)),
        ("node_profiles.edge-standard.services", "pods request", "CPU cores but the node has 16"),
    ),
    Case(
        "cloud LLMs ask for more GPUs than the servers have",
        _edit(lambda d: d["cloud"]["gpu_servers"].update(count=3)),
        ("cloud.llm_models", "ask for 32 GPUs but the cloud has 3 servers x 8 = 24", "add cloud GPU servers"),
    ),
    Case(
        "cloud LLM replica larger than a server",
        _edit(lambda d: d["cloud"]["gpu_servers"].update(count=8, gpus_per_server=2)),
        ("cloud.llm_models[0].gpu_per_replica", "qwen-72b needs 4 GPUs per replica but a cloud server has 2"),
    ),
    Case(
        "cloud LLM replicas fit in total but not whole on servers",
        _edit(lambda d: d["cloud"]["gpu_servers"].update(count=5, gpus_per_server=7)),
        ("cloud.llm_models", "and the cloud has 5 servers x 7 = 35", "1 replica(s) cannot be placed whole"),
    ),
    Case(
        "bad cron schedule",
        _edit(lambda d: d["cloud"]["backup"].update(schedule="every night")),
        ("cloud.backup.schedule", "5-field cron expression"),
    ),
    Case(
        "cache TTLs out of order",
        _edit(lambda d: d["cache_tiers"]["l3"].update(ttl_seconds=60)),
        ("cache_tiers", "l3.ttl_seconds must not be shorter than l2.ttl_seconds"),
    ),
    Case(
        "wrong apiVersion",
        _replace("apiVersion: xzctl.io/v1", "apiVersion: xzctl.io/v2"),
        ("apiVersion", "xzctl.io/v1", "allowed values"),
    ),
]


def test_there_are_at_least_20_distinct_cases() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 20
    assert len({c.content for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_spec_is_refused_clearly_and_nothing_is_written(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The node budget is a bound, not a number to prove: the bomb (10^9 nodes) exceeds a smaller one 20 times sooner.
    monkeypatch.setattr(load, "MAX_YAML_NODES", 100_000)
    spec = tmp_path / "fleet.yaml"
    spec.write_bytes(case.content)
    out = tmp_path / "out"

    code = run(["render", "region", "beijing", "--out", str(out), "--fleet", str(spec)])
    captured = capsys.readouterr()
    assert code == 2
    error_lines = [line for line in captured.err.splitlines() if line.startswith("xzctl: error:")]
    assert len(error_lines) == 1, captured.err
    assert str(spec) in error_lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.yaml"]  # no output, no temporary folder

    # `fleet validate` lists every problem; the expected one names file, path, message and fix.
    code = run(["fleet", "validate", "--fleet", str(spec)])
    captured = capsys.readouterr()
    assert code == 2
    problems = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    matching = [p for p in problems if all(fragment in p for fragment in case.expect)]
    assert matching, f"no problem line has all of {case.expect}:\n{captured.err}"
    assert matching[0].startswith(f"error: {spec}")
    assert "; fix: " in matching[0]
    assert "Traceback" not in captured.err
    if case.name == "literal secret value":
        assert "hunter2" not in captured.err + captured.out  # a secret given by mistake is never echoed
