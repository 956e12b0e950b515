"""What the cloud builders share: the labels and selectors of a cloud component."""

from __future__ import annotations

from xzctl.manifests import k8s


def component_labels(component: str) -> dict[str, str]:
    return k8s.labels(component, extra={"xiaozhi.io/tier": "cloud"})


def component_selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": k8s.PART_OF}
