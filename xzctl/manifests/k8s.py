"""Small builders of Kubernetes objects as plain dicts, shared by the edge and cloud units.

Every workload goes through `workload_pod`, so non-root, requests and limits, probes and a
read-only root filesystem are set in one place rather than remembered per Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xzctl.errors import BadInputError
from xzctl.spec.models import Environment, Fleet, Resources

Obj = dict[str, Any]

PART_OF = "xiaozhi"
MANAGED_BY = "xzctl"
REGION_LABEL = "xiaozhi.io/region"
NODE_LABEL = "xiaozhi.io/edge-node"
COMPONENT_LABEL = "app.kubernetes.io/component"
TRACK_LABEL = "track"
# Secrets are emitted without data: this annotation says where the value comes from at `up` time.
SECRET_SOURCE_ANNOTATION = "xzctl.io/secret-source"
SECRET_HOWTO_ANNOTATION = "xzctl.io/how-to-create"
NON_ROOT_UID = 10001
# On a node's ConfigMap: the GPUs and time-slicing factor the GPU-slot policy checks requests against.
GPU_COUNT_ANNOTATION = "xiaozhi.io/gpu-count"
GPU_SHARING_ANNOTATION = "xiaozhi.io/gpu-time-slicing-replicas"
SECRET_KEY = "value"  # the one key of every Secret xzctl manages


@dataclass
class Unit:
    """One reusable unit (a Pulumi ComponentResource): its kind, its name and its objects."""

    kind: str
    name: str
    objects: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class HelmChart:
    """A Helm release the cloud runs (installed by Pulumi; written as a values file for GitOps)."""

    name: str
    chart: str  # a chart name in `repo`; for a local chart its directory or .tgz
    repo: str  # empty for a local or an external chart
    version: str
    namespace: str
    values: Obj
    source: str = "repository"  # or "local", "external" (installed already: nothing to install)

    def where(self) -> str:
        """Where the chart comes from, in the operator's words (validate and render say it)."""
        if self.source == "repository":
            return f"repository {self.repo} {self.chart} {self.version}"
        return f"local {self.chart}" if self.source == "local" else "external (installed already)"


MONITORING_NAMESPACE = "monitoring"
KUBE_PROMETHEUS_STACK = ("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "65.1.1")


def monitoring_chart(
    *, retention_days: int, prometheus: bool, alertmanager: bool, grafana: bool, extra: Obj | None = None
) -> HelmChart:
    """kube-prometheus-stack in namespace monitoring: the CRDs our ServiceMonitors and PrometheusRules need."""
    chart, repo, version = KUBE_PROMETHEUS_STACK
    spec: Obj = {
        "retention": f"{retention_days}d",
        # Select every ServiceMonitor/PrometheusRule, not only the chart's own (ours carry no release label).
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        **(extra or {}),
    }
    values = {
        "prometheus": {"enabled": prometheus, "prometheusSpec": spec},
        "alertmanager": {"enabled": alertmanager},
        "grafana": {"enabled": grafana},
    }
    return HelmChart("monitoring", chart, repo, version, MONITORING_NAMESPACE, values)


def labels(component: str, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    base = {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        COMPONENT_LABEL: component,
    }
    return {**base, **(extra or {})}


SKIP_AWAIT = "pulumi.com/skipAwait"


def meta(name: str, namespace: str | None, lbls: dict[str, str], annotations: dict[str, str] | None = None) -> Obj:
    out: Obj = {"name": name}
    if namespace is not None:
        out["namespace"] = namespace
    out["labels"] = dict(lbls)
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def namespace(name: str, level: str = "restricted") -> Obj:
    """Pod Security "restricted" by default: the API server itself refuses a root or privileged pod.

    Third-party charts that need host access (node-exporter, Elasticsearch's sysctl step) get "privileged".
    """
    pss = {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, None, labels("namespace", extra=pss))}


def check_image(fleet: Fleet, image: str, what: str) -> str:
    """Refuse a tag-only image in production (pins from a rollout bypass spec validation)."""
    if fleet.metadata.environment is Environment.PRODUCTION and "@sha256:" not in image:
        raise BadInputError(
            f"{what}: image {image!r} is not pinned by digest, which production requires",
            hint="pin it by digest: xzctl images show NAME",
        )
    return image


def resources(r: Resources, extra_limits: dict[str, str] | None = None) -> Obj:
    limits = {"cpu": r.cpu_limit, "memory": r.memory_limit, **(extra_limits or {})}
    requests = {"cpu": r.cpu_request, "memory": r.memory_request, **(extra_limits or {})}
    return {"requests": requests, "limits": limits}


def http_probe(path: str, port: str | int, *, period: int = 10, failures: int = 3, delay: int = 0) -> Obj:
    probe: Obj = {"httpGet": {"path": path, "port": port}, "periodSeconds": period, "failureThreshold": failures}
    if delay:
        probe["initialDelaySeconds"] = delay
    return probe


def container_security(read_only_root: bool = True) -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(
    name: str,
    image: str,
    res: Obj,
    *,
    ports: list[tuple[str, int]] | None = None,
    readiness: Obj | None = None,
    liveness: Obj | None = None,
    env: list[Obj] | None = None,
    mounts: list[Obj] | None = None,
    args: list[str] | None = None,
    command: list[str] | None = None,
) -> Obj:
    """A hardened container; a long-running one passes probes, a batch one (Job) has none to pass."""
    out: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent" if "@sha256:" in image else "Always",
        "resources": res,
        "securityContext": container_security(),
    }
    if ports:
        out["ports"] = [{"name": pname, "containerPort": port, "protocol": "TCP"} for pname, port in ports]
    optional = (
        ("readinessProbe", readiness),
        ("livenessProbe", liveness),
        ("command", command),
        ("args", args),
        ("env", env),
        ("volumeMounts", mounts),
    )
    out.update({key: value for key, value in optional if value})
    return out


def pod_spec(
    containers: list[Obj],
    *,
    node_selector: dict[str, str] | None = None,
    volumes: list[Obj] | None = None,
    init_containers: list[Obj] | None = None,
    extra: Obj | None = None,
) -> Obj:
    spec: Obj = {
        # No workload talks to the Kubernetes API, so no token is mounted.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": NON_ROOT_UID,
            "runAsGroup": NON_ROOT_UID,
            "fsGroup": NON_ROOT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if volumes:
        spec["volumes"] = volumes
    spec.update(extra or {})
    return spec


def deployment(name: str, ns: str, lbls: dict[str, str], selector: dict[str, str], *, replicas: int, pod: Obj) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, ns, lbls),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": dict(lbls)}, "spec": pod},
        },
    }


def stateful_set(
    name: str, ns: str, lbls: dict[str, str], selector: dict[str, str], *, pod: Obj, claim: Obj | None
) -> Obj:
    """One replica with its own volume claim (`claim` a PVC spec) or none. volumeClaimTemplates is an atomic list the
    API server fills with defaults, so a second field manager applying the same list conflicts with the first: a
    create an interrupted update left pending, re-applied after --recover, would fail. Forcing takes the fields over."""
    spec: Obj = {
        "serviceName": name,
        "replicas": 1,
        "selector": {"matchLabels": dict(selector)},
        "template": {"metadata": {"labels": dict(lbls)}, "spec": pod},
    }
    if claim is not None:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data", "labels": dict(lbls)}, "spec": claim}]
    annotations = {"pulumi.com/patchForce": "true"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta(name, ns, lbls, annotations), "spec": spec}


def service(name: str, ns: str, lbls: dict[str, str], selector: dict[str, str], ports: list[tuple[str, int]]) -> Obj:
    """A ClusterIP Service. pulumi-kubernetes' wait for a Service adds nothing an operator relies on: it succeeds
    once no endpoint changed for 10 s, with or without ready endpoints, so it only adds 10 s to every `up`.
    What matters is still awaited: the workload behind it (ready pods) and the Ingress in front of it (an address,
    every backend Service and its endpoints present). kubectl ignores the annotation."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, ns, lbls, {SKIP_AWAIT: "true"}),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [{"name": p, "port": n, "targetPort": p, "protocol": "TCP"} for p, n in ports],
        },
    }


def pdb(name: str, ns: str, lbls: dict[str, str], selector: dict[str, str], replicas: int) -> list[Obj]:
    """maxUnavailable 1 for replicated workloads; none for a single replica, whose PDB would block every drain."""
    if replicas < 2:
        return []
    return [
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(name, ns, lbls),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
        }
    ]


def config_map(
    name: str, ns: str, lbls: dict[str, str], data: dict[str, str], annotations: dict[str, str] | None = None
) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, ns, lbls, annotations), "data": dict(data)}


def secret_name(field: str) -> str:
    """The Secret holding one spec secret (secrets.<field>), e.g. xzctl-auth-key."""
    return "xzctl-" + field.replace("_", "-")


def secret_ref_object(name: str, ns: str, key: str, source: str, what: str) -> Obj:
    """A Secret without data: Pulumi fills it from `source` at `up` time; GitOps users create it themselves."""
    howto = f"kubectl -n {ns} create secret generic {name} --from-literal={key}=... ({what}; source {source})"
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": meta(
            name,
            ns,
            labels("secret"),
            {SECRET_SOURCE_ANNOTATION: f"{source}#{key}", SECRET_HOWTO_ANNOTATION: howto},
        ),
    }


def secret_env(env_name: str, secret: str, key: str) -> Obj:
    return {"name": env_name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pvc(name: str, ns: str, lbls: dict[str, str], size: str, mode: str = "ReadWriteOnce") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(name, ns, lbls),
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}},
    }


def empty_dir(name: str, size: str = "1Gi") -> Obj:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


def network_policy(
    ns: str, name: str, selector: Obj, *, ingress: list[Obj] | None = None, egress: list[Obj] | None = None
) -> Obj:
    """A NetworkPolicy; an empty rule list denies that direction, None leaves it to other policies."""
    spec: Obj = {"podSelector": selector, "policyTypes": []}
    for kind, rules in (("Ingress", ingress), ("Egress", egress)):
        if rules is not None:
            spec["policyTypes"].append(kind)
            spec[kind.lower()] = rules
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(name, ns, labels("network-policy")),
        "spec": spec,
    }


def tcp_ports(*ports: int | str) -> list[Obj]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def from_namespace(name: str) -> Obj:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


DNS_EGRESS: Obj = {
    "to": [from_namespace("kube-system")],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
