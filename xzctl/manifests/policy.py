"""Policies every object xzctl deploys must pass, as plain functions over Kubernetes manifests.

The same functions run in the tests, on `xzctl render manifests` output, and in the Pulumi policy
pack (policy/) for users who run `pulumi preview --policy-pack policy`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xzctl.manifests.k8s import GPU_COUNT_ANNOTATION, GPU_SHARING_ANNOTATION, NODE_LABEL, Obj

GPU = "nvidia.com/gpu"
BATCH_KINDS = ("Job", "CronJob")
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|AUTH_KEY|API_KEY|ACCESS_KEY|PRIVATE_KEY)", re.IGNORECASE)
_SECRET_LINE = re.compile(r"^\s*[\"']?(auth_key|api_key|password|secret|token|access_key)[\"']?\s*:\s*(.*?)\s*$", re.I)
# Values that are not a secret: an unfilled placeholder ("你的..." is upstream's own marker), none, empty.
_NOT_A_SECRET = re.compile(r"^([\"']?(你的.*|\$\{[A-Z0-9_]+\}|none|null|~)?[\"']?)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Violation:
    policy: str
    kind: str
    name: str
    message: str

    def render(self) -> str:
        return f"{self.policy}: {self.kind}/{self.name}: {self.message}"


def pod_spec(obj: Obj) -> Obj | None:
    """The pod spec inside a workload object, or None for objects that run no pod."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def _containers(pod: Obj, init: bool = True) -> Iterator[Obj]:
    yield from pod.get("containers") or []
    if init:
        yield from pod.get("initContainers") or []


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def resource_limits(obj: Obj) -> list[Violation]:
    pod = pod_spec(obj)
    out = []
    for c in _containers(pod) if pod else ():
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
            if missing:
                out.append(
                    Violation(
                        "resource-limits",
                        obj["kind"],
                        _name(obj),
                        f"container {c.get('name')}: no {part} for {', '.join(missing)}",
                    )
                )
    return out


def probes(obj: Obj) -> list[Violation]:
    """Long-running containers need readiness and liveness probes; batch jobs and init steps have none to pass."""
    pod = pod_spec(obj)
    if pod is None or obj["kind"] in BATCH_KINDS:
        return []
    out = []
    for c in _containers(pod, init=False):
        missing = [p for p in ("readinessProbe", "livenessProbe") if p not in c]
        if missing:
            out.append(
                Violation("probes", obj["kind"], _name(obj), f"container {c.get('name')}: no {', '.join(missing)}")
            )
    return out


def non_root(obj: Obj) -> list[Violation]:
    pod = pod_spec(obj)
    if pod is None:
        return []
    out = []
    pod_non_root = (pod.get("securityContext") or {}).get("runAsNonRoot") is True
    for c in _containers(pod):
        sc = c.get("securityContext") or {}
        problems = []
        if not (pod_non_root or sc.get("runAsNonRoot") is True) or sc.get("runAsUser") == 0:
            problems.append("may run as root")
        if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
            problems.append("may escalate privileges")
        if problems:
            out.append(
                Violation("non-root", obj["kind"], _name(obj), f"container {c.get('name')}: {', '.join(problems)}")
            )
    return out


def no_plaintext_secret(obj: Obj, *, secret_data_allowed: bool = False) -> list[Violation]:
    """No secret in an env literal or a ConfigMap; no Secret with data in a manifest file.

    Pulumi passes `secret_data_allowed=True`: there the Secret's value is a Pulumi secret, encrypted in state.
    """
    kind, name = obj.get("kind", "?"), _name(obj)
    out = []
    if kind == "Secret" and not secret_data_allowed and (obj.get("data") or obj.get("stringData")):
        out.append(
            Violation("no-plaintext-secret", kind, name, "a Secret with data in a manifest; create it out of band")
        )
    if kind == "ConfigMap":
        for key, text in (obj.get("data") or {}).items():
            if _SECRET_NAME.search(str(key)):
                out.append(Violation("no-plaintext-secret", kind, name, f"key {key} looks like a secret"))
            for line in str(text).splitlines():
                m = _SECRET_LINE.match(line)
                if m and not _NOT_A_SECRET.match(m.group(2).split(" #")[0].strip()):
                    out.append(
                        Violation("no-plaintext-secret", kind, name, f"{key}: {m.group(1)} holds a literal value")
                    )
    pod = pod_spec(obj)
    for c in _containers(pod) if pod else ():
        for env in c.get("env") or []:
            if "value" in env and _SECRET_NAME.search(str(env.get("name", ""))):
                out.append(
                    Violation(
                        "no-plaintext-secret", kind, name, f"container {c.get('name')}: env {env['name']} is a literal"
                    )
                )
    return out


def _replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def gpu_slots(objects: Sequence[Obj]) -> list[Violation]:
    """Per edge node: GPU slots requested (canaries included) <= GPUs x time-slicing replicas."""
    demand: dict[str, int] = {}
    gpus: dict[str, int] = {}
    sharing: dict[str, int] = {}
    for obj in objects:
        pod = pod_spec(obj)
        if pod is not None:
            node = (pod.get("nodeSelector") or {}).get(NODE_LABEL)
            per_pod = sum(int(((c.get("resources") or {}).get("limits") or {}).get(GPU, 0)) for c in _containers(pod))
            if node and per_pod:
                demand[node] = demand.get(node, 0) + per_pod * _replicas(obj)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if obj.get("kind") == "ConfigMap" and GPU_COUNT_ANNOTATION in annotations:
            node = (obj["metadata"].get("labels") or {})[NODE_LABEL]
            gpus[node] = int(annotations[GPU_COUNT_ANNOTATION])
            sharing[node] = int(annotations.get(GPU_SHARING_ANNOTATION, 1))
    out = []
    for node, wanted in sorted(demand.items()):
        count = gpus.get(node)
        if count is None:
            out.append(
                Violation(
                    "gpu-slots", "Node", node, f"pods request {wanted} GPU slots but the node's GPU count is unknown"
                )
            )
            continue
        slots = count * sharing.get(node, 1)
        if wanted > slots:
            out.append(
                Violation(
                    "gpu-slots",
                    "Node",
                    node,
                    f"pods request {wanted} GPU slots but the node has {count} GPUs x {sharing.get(node, 1)} time-slicing replicas = {slots}",
                )
            )
    return out


OBJECT_POLICIES = (resource_limits, probes, non_root, no_plaintext_secret)


def check_objects(objects: Iterable[Obj]) -> list[Violation]:
    """Every policy on every object, and the GPU-slot budget over all of them."""
    objs = list(objects)
    return [v for o in objs for policy in OBJECT_POLICIES for v in policy(o)] + gpu_slots(objs)


def manifest_from_pulumi(resource_type: str, props: Mapping[str, Any]) -> Obj | None:
    """A Pulumi resource's inputs as a Kubernetes manifest, or None when it is no Kubernetes object.

    `kubernetes:apps/v1:Deployment` -> apiVersion apps/v1, kind Deployment (core/v1 -> v1).
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes" or parts[1].startswith("helm.sh"):
        return None
    api_version = parts[1].removeprefix("core/")
    return {**props, "apiVersion": api_version, "kind": parts[2]}
