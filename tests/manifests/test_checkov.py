"""checkov's Kubernetes checks on `xzctl render manifests` output: nothing fails outside policy/checkov-skips.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
        [CHECKOV, "-d", str(directory), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report: dict[str, Any] | list[dict[str, Any]] = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.tools
@pytest.mark.skipif(not Path(CHECKOV).is_file(), reason="checkov is not installed (pip install checkov)")
def test_rendered_manifests_pass_checkov(example_fleet: Fleet, tmp_path: Path) -> None:
    skips = yaml.safe_load(SKIPS.read_text(encoding="utf-8"))["skips"]
    assert all(s["why"].strip() and s["id"].startswith("CKV") for s in skips)
    allowed = {s["id"] for s in skips}
    fired: set[str] = set()
    for target in [*example_fleet.regions, "cloud"]:
        out = tmp_path / target
        assert run(["render", "manifests", target, "--out", str(out)]) == 0
        report = _checkov(out)
        failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
        assert [f for f in failed if f[0] not in allowed] == [], target
        assert report["summary"]["passed"] > 400 and report["summary"]["parsing_errors"] == 0
        fired |= {f[0] for f in failed}
    assert fired == allowed, "a skip that never fires is stale: remove it from policy/checkov-skips.yaml"
