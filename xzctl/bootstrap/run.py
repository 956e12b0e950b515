"""Run a bootstrap playbook on one region with ansible-runner and report per edge node.

The core takes a callback for progress (the CLI draws it) and returns a per-host summary. A host that
fails or cannot be reached is a result, not an exception: the other hosts' results are always
returned. Exceptions are for what stops the run as a whole (bad input, ansible missing, a playbook
that does not parse).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from xzctl import data_path
from xzctl.bootstrap.inventory import check_limit, inventory_yaml, region_of
from xzctl.errors import BadInputError, ConflictError, ExternalToolError
from xzctl.redact import redact
from xzctl.spec.models import Fleet
from xzctl.state import state_dir

ANSIBLE_DIR_ENV = "XZCTL_ANSIBLE_DIR"
TOKEN_ENV = "XZCTL_K3S_TOKEN"  # read by the k3s role (lookup env); never written to a file by xzctl
STATE_ENV = "XZCTL_STATE_DIR"  # named in the hint when the state dir is not writable
MIN_TOKEN_LENGTH = 16  # the k3s role asserts the same, for runs by hand


class Playbook(StrEnum):
    SITE = "site"
    UPGRADE = "upgrade"
    RESET = "reset"

    @property
    def needs_token(self) -> bool:
        return self is not Playbook.RESET


class HostStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class TaskEvent:
    """One task finished on one host: what the progress display shows."""

    host: str
    task: str
    status: str  # ok | changed | failed | unreachable | skipped
    message: str = ""


@dataclass
class HostSummary:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    message: str = ""  # the last failure or unreachable message

    @property
    def status(self) -> HostStatus:
        if self.unreachable:
            return HostStatus.UNREACHABLE
        if self.failed:
            return HostStatus.FAILED
        if self.changed:
            return HostStatus.CHANGED
        return HostStatus.OK if self.ok or self.skipped else HostStatus.NOT_RUN


@dataclass
class BootstrapResult:
    region: str
    playbook: Playbook
    check: bool
    hosts: list[HostSummary] = field(default_factory=list)
    log: str = ""  # the full ansible-playbook output, kept for the post-mortem

    @property
    def succeeded(self) -> bool:
        bad = (HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.NOT_RUN)
        return bool(self.hosts) and all(h.status not in bad for h in self.hosts)

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "playbook": str(self.playbook),
            "check": self.check,
            "succeeded": self.succeeded,
            "hosts": [{**asdict(h), "status": str(h.status)} for h in self.hosts],
            "log": self.log,
        }


def ansible_dir() -> Path:
    """The playbooks: $XZCTL_ANSIBLE_DIR, else the ansible/ folder shipped with xzctl."""
    path = Path(os.environ.get(ANSIBLE_DIR_ENV) or data_path("ansible"))
    if not (path / "site.yml").is_file():
        raise BadInputError(f"no playbooks in {path}", hint=f"set {ANSIBLE_DIR_ENV} to the ansible/ folder of xzctl")
    return path


def state_folder() -> Path:
    """$XZCTL_STATE_DIR/bootstrap: run logs and per-region locks."""
    folder = state_dir() / "bootstrap"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"cannot write to {folder}: {exc.strerror}", hint=f"set {STATE_ENV}") from None
    return folder


@contextlib.contextmanager
def region_lock(folder: Path, region: str) -> Iterator[None]:
    """One playbook run per region at a time: two would restart the same nodes under each other."""
    with (folder / f"{region}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"another xzctl bootstrap is running on region {region!r}", hint=f"lock: {folder / region}.lock"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def join_token(fleet: Fleet) -> str:
    ref = fleet.secrets.k3s_join_token
    if ref is None:
        raise BadInputError(
            "the fleet spec has no secrets.k3s_join_token", hint="add `k3s_join_token: {env: K3S_TOKEN}` under secrets"
        )
    if ref.env is None:
        raise BadInputError(
            f"secrets.k3s_join_token is {ref.describe()}; bootstrap reads the token from an environment variable",
            hint="use `k3s_join_token: {env: K3S_TOKEN}`",
        )
    value = os.environ.get(ref.env, "").strip()
    if not value:
        raise BadInputError(f"the K3s join token is not set: ${ref.env} is empty", hint=f"export {ref.env}=...")
    if len(value) < MIN_TOKEN_LENGTH:
        raise BadInputError(
            f"the K3s join token in ${ref.env} is shorter than {MIN_TOKEN_LENGTH} characters",
            hint="generate one: openssl rand -hex 32",
        )
    return value


_EVENT_STATUS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


def _task_event(event: Mapping[str, Any]) -> TaskEvent | None:
    status = _EVENT_STATUS.get(str(event.get("event", "")))
    data = event.get("event_data") or {}
    if status is None or "host" not in data:
        return None
    res = data.get("res") or {}
    if status == "ok" and res.get("changed"):
        status = "changed"
    if status == "failed" and data.get("ignore_errors"):
        status = "ok"
    message = str(res.get("msg", "")) if status in ("failed", "unreachable") else ""
    return TaskEvent(host=str(data["host"]), task=str(data.get("task", "")), status=status, message=message)


# What ansible says when ssh ended before it could take the pipelined module: its reason (a host key refused,
# a login denied) went to stderr, which ansible reads only 1 ms later, so under load the operator may not see it.
VAGUE_UNREACHABLE = "Data could not be sent to remote host"
SSH_REASON_TIMEOUT = 60


def in_ssh_words(
    runner: Any, errors: dict[str, str], settings: Mapping[str, Any], envvars: Mapping[str, str], project: Path
) -> None:
    """Replace each of `errors` that is ansible's vague unreachable message by ssh's own reason, asked once."""
    for host, message in list(errors.items()):
        if message.startswith(VAGUE_UNREACHABLE):
            errors[host] = ssh_reason(runner, host, settings, envvars, project) or message


def ssh_reason(runner: Any, host: str, settings: Mapping[str, Any], envvars: Mapping[str, str], project: Path) -> str:
    """Ask ssh once more why `host` cannot be reached, over the same inventory, variables and ansible.cfg: a `raw`
    command sends nothing on ssh's input, so ansible waits for ssh to end and reports its own words."""
    reasons: list[str] = []

    def handle(event: dict[str, Any]) -> bool:
        task = _task_event(event)
        if task is not None and task.status == "unreachable" and task.message:
            reasons.append(task.message)
        return True

    runner.run(
        module="raw",
        module_args="true",
        host_pattern=host,
        envvars={**envvars, "ANSIBLE_CONFIG": str(project / "ansible.cfg")},
        event_handler=handle,
        timeout=SSH_REASON_TIMEOUT,
        **settings,
    )
    return reasons[-1] if reasons else ""


def _summaries(
    stats: Mapping[str, Mapping[str, int]] | None, hosts: list[str], last_error: dict[str, str]
) -> list[HostSummary]:
    stats = stats or {}

    def count(key: str, host: str) -> int:
        return int((stats.get(key) or {}).get(host, 0))

    return [
        HostSummary(
            host=h,
            ok=count("ok", h),
            changed=count("changed", h),
            failed=count("failures", h),
            unreachable=count("dark", h),
            skipped=count("skipped", h),
            message=last_error.get(h, ""),
        )
        for h in hosts
    ]


def bootstrap_region(
    fleet: Fleet,
    region: str,
    *,
    playbook: Playbook = Playbook.SITE,
    check: bool = False,
    limit: list[str] | None = None,
    extravars: Mapping[str, Any] | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
    timeout_seconds: int = 3600,
    accept_new_host_keys: bool = False,
) -> BootstrapResult:
    """Run `playbook` on the edge nodes of `region` (or the `limit` ones) and summarise per host.

    `accept_new_host_keys`: trust the SSH host key of a server seen for the first time (fresh
    bare metal), still refusing a key that changed; otherwise known_hosts must already have it.
    """
    nodes = [n.id for n in region_of(fleet, region).edge_nodes]
    limit = limit or []
    check_limit(fleet, region, limit)
    # ansible-runner turns host key checking off unless told otherwise; a bootstrap hands the server
    # a cluster token, so keep ssh's check on (the operator's own setting still wins).
    envvars = {"ANSIBLE_HOST_KEY_CHECKING": os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")}
    if playbook.needs_token:
        envvars[TOKEN_ENV] = join_token(fleet)
    project = ansible_dir()
    if shutil.which("ansible-playbook") is None:
        raise ExternalToolError("ansible-playbook is not installed", hint="pip install 'xzctl[ansible]'")
    try:
        import ansible_runner
    except ImportError as exc:
        raise ExternalToolError("ansible-runner is not installed", hint="pip install 'xzctl[ansible]'") from exc

    folder = state_folder()
    log = folder / f"{region}-{playbook}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
    targets = [n for n in nodes if not limit or n in limit]
    last_error: dict[str, str] = {}

    def handle(event: dict[str, Any]) -> bool:
        task = _task_event(event)
        if task is not None:
            if task.message:
                last_error[task.host] = task.message
            if on_event is not None:
                on_event(task)
        return True

    variables = dict(extravars or {})
    if accept_new_host_keys:
        variables["ansible_ssh_extra_args"] = "-o StrictHostKeyChecking=accept-new"
    cmdline = "--check --diff" if check else ""
    with region_lock(folder, region), tempfile.TemporaryDirectory(prefix="xzctl-bootstrap-") as tmp:
        inventory = Path(tmp) / "inventory" / "hosts.yml"
        inventory.parent.mkdir()
        inventory.write_text(inventory_yaml(fleet, region), encoding="utf-8")
        settings: dict[str, Any] = {
            "private_data_dir": tmp,
            "project_dir": str(project),
            "inventory": str(inventory),
            "extravars": variables,
            # The join token is in envvars: no env/ files; runner's own 0600 artifacts go with the 0700 temp dir.
            "suppress_env_files": True,
            "quiet": True,
        }
        runner = ansible_runner.run(
            playbook=f"{playbook}.yml",
            limit=",".join(limit) or None,
            cmdline=cmdline or None,
            envvars=envvars,
            event_handler=handle,
            timeout=timeout_seconds,
            **settings,
        )
        output = runner.stdout.read()
        log.write_text(redact(output), encoding="utf-8")
        if runner.status == "timeout":
            raise ExternalToolError(
                f"{playbook}.yml did not finish within {timeout_seconds}s on region {region!r}", hint=f"log: {log}"
            )
        stats = runner.stats
        if stats is None:
            # No play recap: ansible-playbook stopped before running any task (syntax, options).
            tail = "\n".join(output.strip().splitlines()[-5:])
            raise ExternalToolError(
                f"ansible-playbook {playbook}.yml failed (rc {runner.rc}): {tail}", hint=f"log: {log}"
            )
        in_ssh_words(ansible_runner, last_error, settings, envvars, project)
    return BootstrapResult(region, playbook, check, _summaries(stats, targets, last_error), log=str(log))
