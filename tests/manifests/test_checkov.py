"""checkov's Kubernetes checks on `xzctl render manifests` output: nothing fails outside policy/checkov-skips.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.cli import run
from xzctl.spec import Fleet

SKIPS = Path(__file__).resolve().parents[2] / "policy" / "checkov-skips.yaml"
# checkov pins old protobuf/packaging versions, so it may live in its own virtualenv.
CHECKOV = os.environ.get("XZCTL_CHECKOV") or shutil.which("checkov") or "/opt/checkov-venv/bin/checkov"


def _checkov(directory: Path) -> dict[str, Any]:
    done = subprocess.run(
        [CHECKOV, "-d", str(directory), "--framework", "kubernetes", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report: dict[str, Any] | list[dict[str, Any]] = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def _target(check: dict[str, Any]) -> str:
    """The rendered target a result belongs to: the first folder of its path under the scanned directory."""
    return Path(check["file_path"]).parts[1]


@pytest.mark.tools
@pytest.mark.timeout(900)  # 139 s beside a second test run, over 300 s in the other copy (load average 41)
@pytest.mark.skipif(not Path(CHECKOV).is_file(), reason="checkov is not installed (pip install checkov)")
def test_rendered_manifests_pass_checkov(example_fleet: Fleet, tmp_path: Path) -> None:
    skips = yaml.safe_load(SKIPS.read_text(encoding="utf-8"))["skips"]
    assert all(s["why"].strip() and s["id"].startswith("CKV") for s in skips)
    allowed = {s["id"] for s in skips}
    targets = [*example_fleet.regions, "cloud"]
    for target in targets:
        assert run(["render", "manifests", target, "--out", str(tmp_path / target)]) == 0
    # One checkov over every target (its start-up is most of its time), results told apart by folder.
    report = _checkov(tmp_path)
    assert report["summary"]["parsing_errors"] == 0
    failed = [(_target(f), f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert [f for f in failed if f[1] not in allowed] == []
    passed = Counter(_target(p) for p in report["results"]["passed_checks"])
    assert {target: passed[target] > 400 for target in targets} == dict.fromkeys(targets, True), passed
    fired = {check_id for _, check_id, _ in failed}
    assert fired == allowed, "a skip that never fires is stale: remove it from policy/checkov-skips.yaml"
