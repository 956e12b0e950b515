"""The local Pulumi file backend under the state dir: stack names, locks and last updates.

Read straight from the backend's files (checkpoints, history, locks), so `xzctl provision status`
and the lock check work without the `pulumi` CLI. Layout (Pulumi's DIY backend, project mode):
  <state>/pulumi/.pulumi/stacks/<project>/<stack>.json            checkpoint (resources)
  <state>/pulumi/.pulumi/history/<project>/<stack>/*.history.json  one file per update
  <state>/pulumi/.pulumi/locks/<org>/<project>/<stack>/<id>.json   present while an update runs
"""

from __future__ import annotations

import gzip
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError, ConflictError
from xzctl.manifests.edge_common import IMAGE_ENV, SERVICE_LABEL
from xzctl.manifests.k8s import NODE_LABEL, TRACK_LABEL
from xzctl.manifests.pins import ImagePins, ServicePin, spec_pins
from xzctl.provision.objects import CLOUD
from xzctl.spec.models import Fleet, KubernetesTarget

PROJECT = "xzctl"
ORGANIZATION = "organization"  # the only organization a file backend knows
EDGE_PREFIX = "edge-"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def backend_dir(state: Path) -> Path:
    return state / "pulumi"


def backend_url(state: Path) -> str:
    return "file://" + str(backend_dir(state).absolute())


def stack_for(fleet: Fleet, name: str) -> tuple[str, str]:
    """(target, stack) for a region, a stack name (edge-beijing, cloud) or a qualified one (org/xzctl/beijing)."""
    parts = name.split("/")
    if len(parts) == 3 and parts[1] != PROJECT:
        raise BadInputError(f"stack {name!r} belongs to project {parts[1]!r}, not {PROJECT!r}")
    if len(parts) not in (1, 3) or not parts[-1]:
        raise BadInputError(f"{name!r} is not a region, a stack name or org/{PROJECT}/<stack>")
    last = parts[-1]
    if last == CLOUD:
        return CLOUD, CLOUD
    region = last.removeprefix(EDGE_PREFIX) if last.removeprefix(EDGE_PREFIX) in fleet.regions else last
    if region not in fleet.regions:
        known = ", ".join([*sorted(fleet.regions), CLOUD])
        raise BadInputError(f"no region or stack {name!r} in the fleet", hint=f"one of: {known}")
    return region, EDGE_PREFIX + region


def stack_cluster(fleet: Fleet, name: str) -> KubernetesTarget:
    """The cluster the spec aims a stack at: its region's `kubernetes`, or the cloud's."""
    target, _ = stack_for(fleet, name)
    return fleet.cloud.kubernetes if target == CLOUD else fleet.regions[target].kubernetes


@dataclass(frozen=True)
class StackLock:
    path: Path
    pid: int | None
    user: str
    host: str
    since: str

    def describe(self) -> str:
        return f"{self.user}@{self.host} (pid {self.pid}) since {self.since}, lock file {self.path}"


def find_lock(state: Path, stack: str) -> StackLock | None:
    locks = backend_dir(state) / ".pulumi" / "locks"
    if not locks.is_dir():
        return None
    # Project-scoped (<org>/xzctl/<stack>) and the legacy layout (<stack>); another project's stacks never match.
    for path in sorted([*locks.glob(f"*/{PROJECT}/{stack}/*.json"), *locks.glob(f"{stack}/*.json")]):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}  # a lock we cannot read still locks
        return StackLock(
            path=path,
            pid=data.get("pid"),
            user=str(data.get("username", "?")),
            host=str(data.get("hostname", "?")),
            since=str(data.get("timestamp", "?")),
        )
    return None


def holder_gone(lock: StackLock) -> bool:
    """The update holding `lock` ran on this machine and its process is gone (killed, crashed, power cut)."""
    if lock.host != socket.gethostname() or lock.pid is None:
        return False
    try:
        stat = Path(f"/proc/{lock.pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    # A killed process whose parent died too may stay a zombie (Z) until something reaps it: it is gone.
    return stat.rsplit(")", 1)[-1].split()[:1] in (["Z"], ["X"])


def _stacks_dir(state: Path) -> Path:
    return backend_dir(state) / ".pulumi" / "stacks" / PROJECT


def _read_latest(path: Path, stack: str) -> dict[str, Any]:
    """The checkpoint in the state file `path` (the stack's resources as the last update left them)."""
    try:
        latest = (_read_json(path).get("checkpoint") or {}).get("latest") or {}
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read the state of stack {stack}: {path}: {exc}") from None
    return latest if isinstance(latest, dict) else {}


def _latest(state: Path, stack: str) -> dict[str, Any] | None:
    """The stack's checkpoint; None when it has none yet."""
    for path in _state_files(_stacks_dir(state), f"{stack}.json*"):
        return _read_latest(path, stack)
    return None


STACK_RESOURCE = "pulumi:pulumi:Stack"
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # how Pulumi's state marks a secret value
SECRET_MASK = "[secret]"  # how `pulumi stack output` shows one


def stack_exists(state: Path, stack: str) -> bool:
    """The backend holds the stack (`pulumi stack init` wrote its state file)."""
    return bool(_state_files(_stacks_dir(state), f"{stack}.json*"))


def stack_outputs(state: Path, stack: str) -> dict[str, Any] | None:
    """The stack's outputs as its last update left them (a secret one as "[secret]", as `pulumi stack output`
    shows it); None when the stack has no checkpoint yet."""
    outputs = output_values(state, stack)
    return None if outputs is None else {k: SECRET_MASK if secret else v for k, (v, secret) in outputs.items()}


def output_values(state: Path, stack: str) -> dict[str, tuple[Any, bool]] | None:
    """Output name -> (value, secret) as the stack's last update left them, a secret's value still encrypted;
    None when the stack has no checkpoint yet."""
    latest = _latest(state, stack)
    if latest is None:
        return None
    root: dict[str, Any] = next((r for r in latest.get("resources") or [] if r.get("type") == STACK_RESOURCE), {})
    outputs = root.get("outputs") or {}
    return {k: (v, isinstance(v, dict) and SECRET_SIGNATURE in v) for k, v in sorted(outputs.items())}


def pending_operations(state: Path, stack: str) -> list[str]:
    """The operations an interrupted update left in the stack's checkpoint ("creating urn", ...)."""
    ops = (_latest(state, stack) or {}).get("pending_operations") or []
    return [f"{op.get('type', '?')} {(op.get('resource') or {}).get('urn', '?').split('::')[-1]}" for op in ops]


def deployed_pins(state: Path, stack: str) -> ImagePins:
    """The image pins the stack's last update applied, from the Deployments in its checkpoint (empty: none yet)."""
    resources = (_latest(state, stack) or {}).get("resources") or []
    return pins_of_deployments(r.get("inputs") or {} for r in resources if r.get("type") == DEPLOYMENT)


def stack_pins(fleet: Fleet, stacks: Iterable[str], state: Path) -> ImagePins:
    """What the stacks run: the spec's images, overridden by the pins each stack's last update applied (so a
    promotion not yet written into the spec is the baseline, not silently reverted by the next rollout)."""
    pins = spec_pins(fleet)
    for stack in stacks:
        for node, services in deployed_pins(state, stack_for(fleet, stack)[1]).nodes.items():
            for service, pin in services.items():
                pins = pins.with_pin(node, service, pin)
    return pins


def pins_of_deployments(objects: Iterable[dict[str, Any]]) -> ImagePins:
    """node -> service -> (stable, canary) image of the edge Deployments among `objects`, by their labels: the pinned
    reference the main container's env names (XZ_IMAGE; its `image` is that reference by digest), as in the pods the
    follower reads."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        node, service = labels.get(NODE_LABEL), labels.get(SERVICE_LABEL)
        containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if obj.get("kind") != "Deployment" or not node or not service or not containers:
            continue
        named = (e.get("value") for c in containers for e in c.get("env") or [] if e.get("name") == IMAGE_ENV)
        pinned = next((v for v in named if v), containers[0].get("image"))
        found.setdefault((node, service), {})[labels.get(TRACK_LABEL) or "stable"] = str(pinned)
    nodes: dict[str, dict[str, ServicePin]] = {}
    for (node, service), tracks in sorted(found.items()):
        if "stable" in tracks:
            nodes.setdefault(node, {})[service] = ServicePin(tracks["stable"], tracks.get("canary"))
    return ImagePins(nodes)


def ensure_unlocked(state: Path, stack: str, *, recover: bool = False) -> list[str]:
    """Refuse a locked stack or one an interrupted update left half-done, unless `recover` (the operator's
    consent) and the interrupted update is really gone: then its lock is removed. Returns the pending
    operations the update must clear (xzctl.provision.automation does, through the Automation API)."""
    lock = find_lock(state, stack)
    if lock is not None and not holder_gone(lock):
        raise ConflictError(
            f"stack {stack} is locked by another update: {lock.describe()}",
            hint=f"wait for it; if that process is gone: pulumi cancel --stack {stack} (or remove the lock file)",
        )
    pending = pending_operations(state, stack)
    torn = torn_writes(state, stack)
    if (lock is not None or pending or torn) and not recover:
        left = [f"{len(pending)} pending operation(s) ({', '.join(pending[:3])})"] if pending else []
        left += ["its lock"] if lock is not None and not pending else []
        left += [f"half-written {torn[0].name}"] if torn else []
        by = f"the update by {lock.describe()}" if lock else "an earlier update"
        raise ConflictError(
            f"stack {stack}: {by} was interrupted and left {' and '.join(left)}",
            hint="check the cluster, then rerun with --recover to clear them and apply again",
        )
    if lock is not None:
        lock.path.unlink(missing_ok=True)
    for path in torn:
        path.unlink(missing_ok=True)
    return pending


def torn_writes(state: Path, stack: str) -> list[Path]:
    """What a killed write of the stack's checkpoint left: the backend writes the checkpoint atomically (a temp
    file renamed) but its `.attrs` sidecar in place, so a kill can leave it empty, and then every load fails
    ("failed to load checkpoint: EOF"). A missing sidecar is fine (default attributes); so are the temp files."""
    folder = _stacks_dir(state)
    torn = sorted(folder.glob(f"{stack}.json.*.tmp"))
    for path in sorted(folder.glob(f"{stack}.json*.attrs")):
        try:
            json.loads(path.read_bytes())
        except (OSError, ValueError):
            torn.append(path)
    return torn


@dataclass(frozen=True)
class StackStatus:
    stack: str
    resources: int
    last_kind: str | None
    last_result: str | None
    last_end: str | None
    changes: dict[str, int]
    locked_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "resources": self.resources,
            "last_update": self.last_kind,
            "result": self.last_result,
            "finished": self.last_end,
            "changes": self.changes,
            "locked_by": self.locked_by,
        }


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    return json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)


def _stack_name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".json")


def _when(value: Any) -> str | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _state_files(folder: Path, pattern: str) -> list[Path]:
    """JSON state files (plain or gzipped), without the `.attrs` and `.bak` files the backend writes beside them."""
    return [p for p in sorted(folder.glob(pattern)) if p.suffix in (".json", ".gz")]


def stack_statuses(state: Path) -> list[StackStatus]:
    """Every stack of the project in the backend, with its resource count and last update."""
    out = []
    for path in _state_files(_stacks_dir(state), "*.json*"):
        stack = _stack_name(path)
        resources = len(_read_latest(path, stack).get("resources") or [])
        history = _state_files(backend_dir(state) / ".pulumi" / "history" / PROJECT / stack, "*.history.json*")
        last: dict[str, Any] = {}
        if history:
            try:
                last = _read_json(history[-1])
            except (OSError, ValueError):
                last = {"result": "unreadable"}
        lock = find_lock(state, stack)
        out.append(
            StackStatus(
                stack=stack,
                resources=resources,
                last_kind=last.get("kind"),
                last_result=last.get("result"),
                last_end=_when(last.get("endTime")),
                changes={str(k): int(v) for k, v in (last.get("resourceChanges") or {}).items()},
                locked_by=lock.describe() if lock else None,
            )
        )
    return out
