"""A plain `pip install` of the wheel works outside the source tree: the demo's commands find their templates,
image catalog, runbooks and playbooks as package data (importlib.resources), not beside the sources.

One wheel build and one virtualenv for the module (the system site-packages give the dependencies, so
nothing but the wheel is installed); every command runs from an empty folder with no XZCTL_* variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.live  # `sandbox up` starts the real Prometheus


class Installed:
    def __init__(self, prefix: Path, cwd: Path) -> None:
        self.bin = prefix / "bin"
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("XZCTL_")}
        self.env["XZCTL_STATE_DIR"] = str(cwd / "state")

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(work / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (work / "dist").glob("xzctl-*.whl")
    venv.create(work / "venv", system_site_packages=True, with_pip=False)
    python = work / "venv" / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    cwd = work / "elsewhere"
    (cwd / "out").mkdir(parents=True)
    yield Installed(work / "venv", cwd)


def test_the_wheel_is_what_runs(installed: Installed) -> None:
    done = installed.run("python", "-c", "import xzctl; print(xzctl.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(installed.bin.parent)), done.stdout  # not the checkout


def test_plan_render_alerts_and_images_verify(installed: Installed) -> None:
    plan = installed.run("xzctl", "fleet", "plan", "-o", "json")
    assert plan.returncode == 0, plan.stderr
    # the same verdicts as in the checkout (the seed's own contradictions fail)
    from xzctl.plan.static import build_plan
    from xzctl.spec import bundled_example_path, load_fleet

    expected = build_plan(load_fleet(bundled_example_path()).fleet).to_dict()["summary"]
    assert json.loads(plan.stdout)["summary"] == expected and expected["fail"] > 0

    region = installed.run("xzctl", "render", "region", "beijing", "--out", "out/beijing")
    assert region.returncode == 0, region.stderr
    assert (installed.cwd / "out/beijing/bj-edge-01/node.yaml").is_file()

    alerts = installed.run("xzctl", "render", "alerts", "--out", "out/alerts")
    assert alerts.returncode == 0, alerts.stderr
    assert {"rules.yml", "alertmanager.yml"} <= {p.name for p in (installed.cwd / "out/alerts").iterdir()}

    images = installed.run("xzctl", "images", "verify", "-o", "json")
    # the example pins only images built here or marked external (it runs no coordinator)
    failing = [i["service"] for i in json.loads(images.stdout)["images"] if i["status"] == "error"]
    assert images.returncode == 0 and failing == [], images.stderr


def test_sandbox_up_and_down(installed: Installed) -> None:
    up = installed.run("xzctl", "sandbox", "up", "--example", "--scrape-interval", "1", "-o", "json")
    try:
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["edge_nodes"] == 7
    finally:
        down = installed.run("xzctl", "sandbox", "down")
    assert down.returncode == 0, down.stderr
