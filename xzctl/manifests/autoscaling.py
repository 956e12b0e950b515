"""HorizontalPodAutoscalers (autoscaling/v2) on the contract's signals, fed by prometheus-adapter.

Why HPA + prometheus-adapter rather than KEDA: the HPA is a built-in API (no CRDs to install before the
objects apply, strict schema validation, a local API server accepts it), and the adapter is one Helm
release beside the monitoring chart. Each edge node runs its own Deployments, so each gets its own HPA,
selecting its node's series; the cloud LLM models scale on the fleet's LLM stream.

Behaviour for voice traffic: a conversation waits on every queued turn, so scale-up acts at once (double or
+2 pods per 30 s, whichever is more); sessions arrive in bursts and last minutes, so scale-down waits for
10 minutes of lower load and removes one pod per 2 minutes: no flapping between the turns of a morning peak.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from xzctl.manifests import k8s
from xzctl.manifests.k8s import MONITORING_NAMESPACE, HelmChart, Obj
from xzctl.metrics import contract as c
from xzctl.metrics.queries import ADAPTER_SIGNALS, adapter_rule
from xzctl.spec.autoscaling import scaler
from xzctl.spec.memo import per_spec
from xzctl.spec.models import Autoscaling, EdgeNode, Fleet, InferenceService, LlmModel, Resources, ScalingSignal

ADAPTER_CHART = ("prometheus-adapter", "https://prometheus-community.github.io/helm-charts", "4.11.0")
# kube-prometheus-stack's Prometheus Service for the release "monitoring" (k8s.monitoring_chart).
PROMETHEUS_SERVICE = f"http://monitoring-kube-prometheus-prometheus.{MONITORING_NAMESPACE}.svc"
PROMETHEUS_PORT = 9090

BEHAVIOR: Obj = {
    "scaleUp": {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 30},
            {"type": "Pods", "value": 2, "periodSeconds": 30},
        ],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 600,
        "selectPolicy": "Min",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
    },
}


def _quantity(milli: int) -> str:
    """A quantity in the API server's own spelling ("2", "1500m"), so what we render is what it returns."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def metric_target(scaling: Autoscaling, kpi_ms: int) -> Obj:
    """The HPA target: per replica for queue depth and requests, the p95 itself for latency (share of the KPI)."""
    if scaling.signal is ScalingSignal.P95_LATENCY:
        return {"type": "Value", "value": _quantity(round(scaling.target * kpi_ms))}  # milli-units of seconds
    return {"type": "AverageValue", "averageValue": _quantity(round(scaling.target * 1000))}


def hpa(
    name: str, ns: str, lbls: dict[str, str], *, scaling: Autoscaling, selector: dict[str, str], kpi_ms: int
) -> Obj:
    metric = {"name": ADAPTER_SIGNALS[scaling.signal.value][0], "selector": {"matchLabels": dict(selector)}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": k8s.meta(name, ns, lbls),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min,
            "maxReplicas": scaling.max,
            "metrics": [{"type": "External", "external": {"metric": metric, "target": metric_target(scaling, kpi_ms)}}],
            "behavior": BEHAVIOR,
        },
    }


def edge_autoscalers(
    fleet: Fleet, region_name: str, ns: str, labels_for: Callable[[EdgeNode, str], dict[str, str]]
) -> list[Obj]:
    """One HPA per edge node and autoscaled service, on the node's stable Deployment `<node>-<service>`."""
    kpis = fleet.kpis.latency.by_service()
    out = []
    for node in fleet.regions[region_name].edge_nodes:
        for service, svc in node.services.inference().items():
            if (scaling := scaler(svc)) is None:
                continue
            name = f"{node.id}-{service}"
            selector = {c.NODE: node.id, c.SERVICE: service}
            lbls = labels_for(node, service)
            out.append(hpa(name, ns, lbls, scaling=scaling, selector=selector, kpi_ms=kpis[service]))
    return out


def cloud_autoscalers(fleet: Fleet, ns: str) -> list[Obj]:
    """One HPA per autoscaled cloud LLM model, on the fleet's LLM requests (the router splits them by model)."""
    kpi = fleet.kpis.latency.llm_ms
    out = []
    for m in fleet.cloud.llm_models:
        if (scaling := scaler(m)) is not None:
            name = f"llm-{m.name}"
            lbls = k8s.labels(name, extra={"xiaozhi.io/tier": "cloud"})
            out.append(hpa(name, ns, lbls, scaling=scaling, selector={c.SERVICE: "llm"}, kpi_ms=kpi))
    return out


@per_spec
def _signals(fleet: Fleet) -> list[str]:
    """The autoscaling signals the whole fleet uses: every region's chart serves them all, so scan once."""
    services: list[InferenceService | LlmModel] = [*fleet.cloud.llm_models]
    services += [s for n in fleet.edge_nodes() for s in n.services.inference().values()]
    return sorted({a.signal.value for s in services if (a := scaler(s))})


def adapter_chart(fleet: Fleet) -> list[HelmChart]:
    """prometheus-adapter serving the external metrics of the signals the spec uses (none: no chart)."""
    signals = _signals(fleet)
    if not signals:
        return []
    chart, repo, version = ADAPTER_CHART
    values = {
        "prometheus": {"url": PROMETHEUS_SERVICE, "port": PROMETHEUS_PORT},
        # Only our rules: the chart's defaults would publish every series as a custom metric.
        "rules": {"default": False, "external": [adapter_rule(s) for s in signals]},
    }
    return [HelmChart("autoscaling-metrics", chart, repo, version, MONITORING_NAMESPACE, values)]


# The official kubectl image of the Kubernetes release team; the pre-scaler only patches HPAs. A production
# fleet passes it pinned by digest (`capacity forecast --kubectl-image ...@sha256:...`).
KUBECTL_IMAGE = "registry.k8s.io/kubectl:v1.30.6"
PRESCALER = "xzctl-prescaler"
WEEK_HOURS = 7 * 24
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def prescale_objects(
    fleet: Fleet, ns: str, schedule: dict[str, list[int]], prefix: str, image: str = KUBECTL_IMAGE
) -> list[Obj]:
    """CronJobs that set each HPA's minReplicas per hour of the week (UTC) from `capacity forecast`'s schedule.

    One CronJob per hour at which some minimum changes, one container per HPA it patches (no shell: the
    names and numbers are arguments). A ServiceAccount allowed to get and patch HPAs, and nothing else.
    """
    lbls = k8s.labels(PRESCALER)
    out: list[Obj] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": k8s.meta(PRESCALER, ns, lbls)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": k8s.meta(PRESCALER, ns, lbls),
            "rules": [
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "patch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": k8s.meta(PRESCALER, ns, lbls),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PRESCALER},
            "subjects": [{"kind": "ServiceAccount", "name": PRESCALER, "namespace": ns}],
        },
    ]
    image = k8s.check_image(fleet, image, "pre-scaler")
    res = k8s.resources(Resources(cpu_request="10m", cpu_limit="100m", memory_request="32Mi", memory_limit="64Mi"))
    for hour in range(WEEK_HOURS):  # hour of week, 0 = Monday 00:00 UTC
        changes = {name: mins[hour] for name, mins in sorted(schedule.items()) if mins[hour] != mins[hour - 1]}
        if not changes:
            continue
        containers = [
            k8s.container(
                f"patch-{i}",
                image,
                res,
                command=["kubectl", "patch", "hpa", name, "-n", ns, "--type", "merge"],
                args=["-p", json.dumps({"spec": {"minReplicas": count}})],
            )
            for i, (name, count) in enumerate(changes.items())
        ]
        extra = {"restartPolicy": "OnFailure", "serviceAccountName": PRESCALER, "automountServiceAccountToken": True}
        pod = k8s.pod_spec(containers, extra=extra)
        day, at = divmod(hour, 24)
        name = f"{prefix}-prescale-{WEEKDAYS[day]}-{at:02d}"
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": k8s.meta(name, ns, lbls),
                "spec": {
                    "schedule": f"0 {at} * * {(day + 1) % 7}",  # cron counts days from Sunday
                    "timeZone": "Etc/UTC",
                    "concurrencyPolicy": "Replace",
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {
                        "spec": {
                            "backoffLimit": 2,
                            "activeDeadlineSeconds": 600,
                            "template": {"metadata": {"labels": lbls}, "spec": pod},
                        }
                    },
                },
            }
        )
    return out
