"""Shared fixtures. Each fixture family lives in tests/fixtures/ and is loaded here as a plugin."""

import sys
from pathlib import Path

# Compiled and assertion-rewritten modules are cached (gitignored __pycache__) even where the environment sets
# PYTHONDONTWRITEBYTECODE: compiling ~300 modules afresh costs about 3 s of CPU in every run and every xdist
# worker, and the `python -m xzctl` subprocesses of the tests read these caches too.
sys.dont_write_bytecode = False

# The inference services' package lives in inference_images/ (it ships in the images, not in xzctl): tests of the
# services, the images and the sandbox import it from there.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1] / "inference_images")
if _PACKAGE_ROOT not in sys.path:
    sys.path.insert(0, _PACKAGE_ROOT)

import pytest  # noqa: E402

from xzctl.spec import Fleet, bundled_example_path, load_fleet  # noqa: E402

pytest_plugins = [
    "pytester",
    "tests.fixtures.leftovers",
    "tests.fixtures.tiers",
    "tests.fixtures.distribution",
    "tests.fixtures.sandbox",
    "tests.fixtures.pulumi_mocks",
    "tests.fixtures.pulumi_backend",
    "tests.fixtures.sshd",
    "tests.fixtures.bootstrap",
    "tests.fixtures.rollout_sandbox",
    "tests.fixtures.engine",
    "tests.fixtures.thanos",
    "tests.fixtures.image_catalog",
    "tests.fixtures.xiaozhi",
]


@pytest.fixture(scope="session")
def example_fleet() -> Fleet:
    """The bundled example fleet (1000 devices, 7 edge nodes, 3 regions)."""
    return load_fleet(bundled_example_path()).fleet


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own ~/.config/xzctl/config.yaml (contexts) must not steer the tests."""
    monkeypatch.setenv("XZCTL_CONFIG", str(tmp_path_factory.getbasetemp() / "no-xzctl-config.yaml"))
    monkeypatch.delenv("XZCTL_CONTEXT", raising=False)
