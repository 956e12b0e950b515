"""Preview and apply one stack through the Pulumi Automation API (inline program: xzctl.provision.program).

Everything that can be checked before Pulumi starts is checked first, so a bad call changes nothing:
the target, the `pulumi` CLI, the passphrase, the stack lock and the secrets the stack needs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError, ExternalToolError, NotFoundError
from xzctl.manifests.pins import ImagePins
from xzctl.provision.backend import ensure_unlocked, stack_for, stack_outputs
from xzctl.provision.engine import WORKSPACE, engine_run, open_stack, pulumi_errors
from xzctl.provision.objects import CLOUD, TargetObjects, target_objects
from xzctl.provision.stack_config import CLOUD_STACK, IMAGE_PINS, qualified, update_config
from xzctl.spec import load_fleet, resolve_fleet_path
from xzctl.spec.models import Fleet, SecretRef
from xzctl.state import state_dir

PASSPHRASE_ENVS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
# Pulumi's default (4 per CPU) leaves a 2-core machine at 8 steps, most of them waiting for readiness (Deployments
# rolled out, claims bound): the waits hold a slot but cost nothing. A region registers ~90 resources; at 32 the
# last ones queued behind waits (measured: +10 s of 30 s), so every independent step may run at once.
DEFAULT_PARALLEL = 128
PINS_CONFIG = qualified(IMAGE_PINS)  # a rollout step's pins; an update from the spec has none
INSTALL_HINT = "install the Pulumi CLI: curl -fsSL https://get.pulumi.com | sh (https://www.pulumi.com/docs/install/)"


@dataclass(frozen=True)
class ProvisionEvent:
    """One step of an update, simplified for progress display: phase is start, done, failed or diagnostic."""

    phase: str
    op: str = ""
    type: str = ""
    name: str = ""
    message: str = ""
    done: int = 0  # resources finished so far in this run
    total: int = 0  # resources the program registers
    fields: tuple[str, ...] = ()  # the properties that differ (a drifted resource's, in a refresh)


@dataclass
class ProvisionResult:
    stack: str
    target: str
    preview: bool
    changes: dict[str, int] = field(default_factory=dict)  # op (create, update, delete, same, ...) -> count
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)  # resource type -> op -> count
    diff: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    recovered: list[str] = field(default_factory=list)  # pending operations of an interrupted update, cleared

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "target": self.target,
            "preview": self.preview,
            "changes": self.changes,
            "by_type": self.by_type,
            "outputs": self.outputs,
            "recovered": self.recovered,
            **({"diff": self.diff} if self.diff is not None else {}),
        }


def check_pulumi_cli(path: str | None = None) -> str:
    """The pulumi binary, or ExternalToolError (exit 4) saying how to install it."""
    found = shutil.which("pulumi", path=path)
    if found is None:
        raise ExternalToolError("the pulumi CLI is not installed (the Automation API drives it)", hint=INSTALL_HINT)
    return found


def check_passphrase() -> None:
    if not any(os.environ.get(name) for name in PASSPHRASE_ENVS):
        raise BadInputError(
            "PULUMI_CONFIG_PASSPHRASE is not set: the local backend encrypts stack secrets with it",
            hint="export PULUMI_CONFIG_PASSPHRASE=... (or PULUMI_CONFIG_PASSPHRASE_FILE); keep it in your secret store",
        )


def secret_config_from_env(secrets: Mapping[str, SecretRef], environ: Mapping[str, str]) -> dict[str, str]:
    """Stack config secrets to store from the environment: `pulumi_secret: redisPassword` <- XZCTL_SECRET_REDIS_PASSWORD.

    Lets an operator (or CI) hand every secret to `xzctl provision` the same way; stored encrypted
    with the passphrase. A variable that is not set leaves the stack's existing config as it is.
    """
    out = {}
    for ref in secrets.values():
        if ref.pulumi_secret and environ.get(env := pulumi_secret_env(ref.pulumi_secret)):
            out[qualified(ref.pulumi_secret)] = environ[env]
    return out


def pulumi_secret_env(name: str) -> str:
    """The variable `xzctl provision` reads a Pulumi config secret from: fooBar <- XZCTL_SECRET_FOO_BAR."""
    return "XZCTL_SECRET_" + re.sub(r"(?<!^)(?=[A-Z])|[.:-]", "_", name).upper()


def missing_secrets(secrets: Mapping[str, SecretRef], environ: Mapping[str, str], stored: Collection[str]) -> list[str]:
    """What to export for the secrets that neither the environment nor the stack's stored config (`stored`) has."""
    missing = set()
    for ref in secrets.values():
        if ref.env and not environ.get(ref.env):
            missing.add(ref.env)
        elif (
            ref.pulumi_secret
            and qualified(ref.pulumi_secret) not in stored
            and not environ.get(env := pulumi_secret_env(ref.pulumi_secret))
        ):
            missing.add(env)
    return sorted(missing)


def stored_config_keys(work_dir: Path, stack_name: str) -> set[str]:
    """Config keys the stack already holds: the Automation API keeps them in <work_dir>/Pulumi.<stack>.yaml."""
    import yaml

    path = work_dir / f"Pulumi.{stack_name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"cannot read the config of stack {stack_name}: {path}: {exc}") from None
    config = data.get("config") if isinstance(data, dict) else None
    return set(config) if isinstance(config, dict) else set()


def up(
    stack: str,
    fleet_path: str | Path | None = None,
    pins: ImagePins | None = None,
    preview: bool = False,
    on_event: Callable[[ProvisionEvent], None] | None = None,
    *,
    diff: bool = False,
    kube_context: str | None = None,
    kubeconfig: str | Path | None = None,
    state: str | Path | None = None,
    parallel: int = DEFAULT_PARALLEL,
    recover: bool = False,
) -> ProvisionResult:
    """Preview or apply `stack` (a region, edge-<region>, cloud or org/xzctl/<stack>).

    `pins` None applies the fleet spec's images (no canary); a rollout passes each step's pins.
    `recover` is the operator's consent to clear what an interrupted (killed) update left: its lock and its
    pending operations; without it such a stack is refused (ConflictError, exit 5) saying what was left.
    """
    if recover and preview:
        raise BadInputError("--recover clears an interrupted update's leftovers, so it applies: drop --preview")
    path = resolve_fleet_path(fleet_path).absolute()
    fleet = load_fleet(path).fleet
    target, stack_name = stack_for(fleet, stack)
    objects = target_objects(fleet, target, pins)
    check_pulumi_cli()
    check_passphrase()
    where = state_dir(state)
    stored = stored_config_keys(where / WORKSPACE, stack_name)
    missing = missing_secrets(objects.secrets, os.environ, stored)
    if missing:
        raise BadInputError(f"stack {stack_name} needs the secret(s) in {', '.join(missing)}", hint="export them first")
    where.mkdir(parents=True, exist_ok=True)
    (where / "pulumi").mkdir(exist_ok=True)
    config = update_config(path, target, kube_context=kube_context, kubeconfig=Path(kubeconfig) if kubeconfig else None)
    secrets = secret_config_from_env(objects.secrets, os.environ)
    with engine_run() as env:
        # After the engines a killed run left are stopped: their lock is then an interrupted update's.
        pending = ensure_unlocked(where, stack_name, recover=recover)
        if target != CLOUD and qualified(CLOUD_STACK) not in stored:
            require_cloud_endpoint(where, stack_name)
        request = _Request(stack_name, target, config, pins, preview, diff, secrets, where, parallel, pending, stored)
        return _run(request, fleet, objects, on_event, env)


def require_cloud_endpoint(state: Path, stack_name: str) -> None:
    """An edge stack reads `cloudEndpoint` from the cloud stack: without it Pulumi fails with its raw `unknown
    stack "organization/xzctl/cloud"`; say which command comes first instead."""
    from xzctl.provision.program import CLOUD_ENDPOINT_OUTPUT

    if CLOUD_ENDPOINT_OUTPUT not in (stack_outputs(state, CLOUD) or {}):
        raise NotFoundError(
            f"stack {stack_name} reads the cloud endpoint from stack {CLOUD}, which has none yet",
            hint="run `xzctl provision cloud` first",
        )


@dataclass(frozen=True)
class _Request:
    stack_name: str
    target: str
    config: dict[str, str]  # the plain stack config of the update (update_config)
    pins: ImagePins | None
    preview: bool
    diff: bool
    secrets: dict[str, str]  # stack config secrets to store first
    state: Path
    parallel: int
    pending: list[str]  # pending operations to clear first (the operator consented: --recover)
    stored: set[str]  # config keys the stack holds already


def _run(
    req: _Request,
    fleet: Fleet,
    objects: TargetObjects,
    on_event: Callable[[ProvisionEvent], None] | None,
    env: Mapping[str, str],
) -> ProvisionResult:
    from pulumi import automation as auto

    from xzctl.provision.program import inline_program, resource_count

    engine_event = Progress(resource_count(objects), on_event)
    with pulumi_errors(req.stack_name):
        st = open_stack(req.stack_name, req.state, env, inline_program(fleet, req.target, req.pins, objects))
        config = {key: auto.ConfigValue(value) for key, value in req.config.items()}
        config |= {key: auto.ConfigValue(value, secret=True) for key, value in req.secrets.items()}
        if req.pins is not None:
            config[PINS_CONFIG] = auto.ConfigValue(json.dumps(req.pins.to_json(), sort_keys=True))
        elif PINS_CONFIG in req.stored:  # a CLI run (0.15 s of a 4.5 s no-op up) only when there is one
            st.remove_config(PINS_CONFIG)
        st.set_all_config(config)
        result = ProvisionResult(stack=req.stack_name, target=req.target, preview=req.preview)
        if req.pending:
            _clear_pending_operations(st)
            result.recovered = req.pending
        if req.preview:
            out = st.preview(diff=req.diff, on_event=engine_event, color="never", parallel=req.parallel)
            result.changes = {str(op.value if hasattr(op, "value") else op): n for op, n in out.change_summary.items()}
            result.diff = out.stdout if req.diff else None
        else:
            # show_secrets=False: the summary read after the update leaves the config secrets encrypted (we read
            # only its counts), and skips a passphrase key derivation
            applied = st.up(
                diff=req.diff, on_event=engine_event, color="never", parallel=req.parallel, show_secrets=False
            )
            result.changes = dict((applied.summary.resource_changes or {}).items())
            result.outputs = {k: v.value for k, v in applied.outputs.items() if not v.secret}
            result.diff = applied.stdout if req.diff else None
    result.by_type = engine_event.counts()
    return result


def _clear_pending_operations(st: Any) -> None:
    """Pulumi's documented recovery (stack export, drop pending_operations, import). A create that was pending
    may have reached the cluster: the next up applies it server-side (pulumi-kubernetes upserts), not twice."""
    from pulumi import automation as auto

    state = st.export_stack()
    deployment = dict(state.deployment or {})
    deployment.pop("pending_operations", None)
    st.import_stack(auto.Deployment(version=state.version, deployment=deployment))


class Progress:
    """An engine run's event handler: counts the steps by resource type and operation, keeps the resources that
    changed, and hands each step to the caller's progress display with how many of `total` are done."""

    def __init__(self, total: int, on_event: Callable[[ProvisionEvent], None] | None) -> None:
        self.total = total
        self.on_event = on_event
        self.done = 0
        self.by_type: dict[str, Counter[str]] = defaultdict(Counter)
        self.changed: list[ProvisionEvent] = []  # finished steps other than `same`

    def __call__(self, event: Any) -> None:
        simple = _simplify(event)
        if simple is None:
            return
        if simple.phase == "start":
            self.by_type[simple.type][simple.op] += 1
        elif simple.phase in ("done", "failed"):
            self.done += 1
            if simple.op != "same":
                self.changed.append(simple)
        if self.on_event is not None:
            self.on_event(replace(simple, done=self.done, total=max(self.total, self.done)))

    def counts(self) -> dict[str, dict[str, int]]:
        return {t: dict(ops) for t, ops in sorted(self.by_type.items())}


def _simplify(event: Any) -> ProvisionEvent | None:
    """Engine events -> ProvisionEvent; everything else (previews of outputs, summaries) is dropped."""
    for attr, phase in (
        ("resource_pre_event", "start"),
        ("res_outputs_event", "done"),
        ("res_op_failed_event", "failed"),
    ):
        found = getattr(event, attr, None)
        if found is not None:
            meta = found.metadata
            op = getattr(meta.op, "value", str(meta.op))
            fields = tuple(meta.diffs or ())
            if op == "refresh" and phase == "done":  # what it found: gone from the cluster, changed there, or same
                op = "delete" if meta.new is None else "update" if fields else "same"
            return ProvisionEvent(phase=phase, op=op, type=meta.type, name=meta.urn.split("::")[-1], fields=fields)
    diag = getattr(event, "diagnostic_event", None)
    if diag is not None and diag.severity in ("warning", "error"):
        return ProvisionEvent(phase="diagnostic", op=diag.severity, message=diag.message.strip())
    return None
