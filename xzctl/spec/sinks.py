"""Where each string of the fleet spec goes, and how it is kept data on the way.

Two defences, both owned here. First, every free string field has a constrained type
(`xzctl.spec.types` or a pattern) that refuses what no output could carry safely. Second, each output
escapes what it is given in its own language, so a value that got past validation (a model built in
code, a future field) still cannot run:

- Jinja renders (`xzctl.render.engine`): every `{{ }}` is finalized as a JSON scalar (`yaml_value`).
- Ansible (`xzctl.bootstrap.inventory`): every string is tagged `!unsafe`, so Ansible never templates it.
- Prometheus alert templates (`xzctl.alerts.rules`): spec text is wrapped as a Go string literal.
- Helm values and Kubernetes objects: dumped as data by `yaml.safe_dump`; no template engine reads them.

`FIELDS` says which output each string field reaches; tests/security walks the spec model and fails
on any string field missing here, then proves each field refused or inert on every listed output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import yaml


class Sink(StrEnum):
    JINJA = "jinja"  # rendered node.yaml / xiaozhi config (and the ConfigMaps holding them)
    ANSIBLE = "ansible"  # the bootstrap inventory
    PROM_TEMPLATE = "prometheus-template"  # alert annotations
    K8S = "kubernetes"  # objects and Helm values, dumped as YAML data
    PROMQL = "promql"  # label values in queries and rule expressions
    TEXT = "text"  # tables and messages only


J, A, P, K, Q, T = Sink.JINJA, Sink.ANSIBLE, Sink.PROM_TEMPLATE, Sink.K8S, Sink.PROMQL, Sink.TEXT

# "Model.field" -> the outputs its value reaches. Dict keys of the spec appear as "Model.field[key]".
FIELDS: Mapping[str, frozenset[Sink]] = {
    name: frozenset(sinks)
    for name, sinks in {
        "Fleet.node_profiles[key]": (T,),
        "Fleet.regions[key]": (J, A, K, Q),
        "Metadata.name": (J, A, K, Q),
        "KnownEvent.name": (T,),
        "KnownEvent.regions": (T,),
        "SecretRef.env": (K, T),
        "SecretRef.pulumi_secret": (K, T),
        "Host.address": (A,),
        "Host.ssh_user": (A,),
        "Host.ssh_key": (A,),
        "GpuSpec.model": (J, A, K),
        "Capacity.measured": (T,),
        "Resources.cpu_request": (J, K),
        "Resources.cpu_limit": (J, K),
        "Resources.memory_request": (J, K),
        "Resources.memory_limit": (J, K),
        "InferenceService.image": (K,),
        "InferenceService.model": (J, K),
        "AsrService.image": (K,),
        "AsrService.model": (J, K),
        "TtsService.image": (K,),
        "TtsService.model": (J, K),
        "TtsService.cache_size": (J, K),
        "TtsService.fallback_voice": (J, K),
        "CacheService.image": (K,),
        "CacheService.memory_limit": (J, K),
        "CacheService.storage_size": (J, K),
        "Coordinator.image": (K,),
        "XiaozhiServer.image": (K,),
        "Networking.bandwidth_limit": (J, K),
        "EdgeNode.id": (J, A, K, Q),
        "EdgeNode.region": (J, A, K, Q),
        "EdgeNode.public_hostname": (J, K),
        "KubernetesTarget.context": (T,),
        "KubernetesTarget.kubeconfig": (T,),
        "KubernetesTarget.namespace": (K,),
        "KubernetesTarget.charts[key]": (K,),
        "ChartSource.path": (K, T),
        "ChartSource.repository": (K, T),
        "ChartSource.version": (K, T),
        "Region.name": (J, A, K, Q),
        "LlmModel.name": (K,),
        "LlmModel.image": (K,),
        "HierarchicalRouting.edge_model": (T,),
        "HierarchicalRouting.cloud_model": (J, K),
        "GpuServers.model": (T,),
        "Orchestrator.image": (K,),
        "Backup.schedule": (K,),
        "Backup.target": (K,),
        "Backup.image": (K,),
        "Cloud.endpoint": (J, K),
        "L3Tier.bucket": (J, K),
        "HighLatencyAlert.for_": (K,),
        "DeviceOverloadAlert.for_": (K,),
        "InferenceFailureAlert.for_": (K,),
        "CacheHitAlert.for_": (K,),
        "QueueBacklogAlert.for_": (K,),
        "Alerts.runbook_base_url": (P, K),
        # Alertmanager's config (a Secret's data); it templates to/from/channel, so their types refuse delimiters.
        "Receiver.webhook": (K,),
        "BridgeReceiver.bridge_url": (K,),
        "SlackReceiver.channel": (K,),
        "EmailReceiver.to": (K,),
        "EmailReceiver.from_": (K,),
        "EmailReceiver.smarthost": (K,),
        "EmailReceiver.auth_username": (K,),
        "CapexItem.item": (T,),
        "OpexItem.item": (T,),
        "Cost.currency": (T,),
    }.items()
}


# --- Ansible ---------------------------------------------------------------------------------


class Unsafe(str):
    """A string Ansible must not template (written and read as `!unsafe`)."""

    __slots__ = ()


class _AnsibleDumper(yaml.SafeDumper):
    """SafeDumper that writes `Unsafe` strings with Ansible's `!unsafe` tag."""


_AnsibleDumper.add_representer(Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def _mark_unsafe(data: Any) -> Any:
    if isinstance(data, str):
        return Unsafe(data)
    if isinstance(data, Mapping):
        return {key: _mark_unsafe(value) for key, value in data.items()}  # keys: DNS-label ids and our names
    if isinstance(data, list | tuple):
        return [_mark_unsafe(v) for v in data]
    return data


class _AnsibleLoader(yaml.SafeLoader):
    """SafeLoader that reads `!unsafe` scalars back as `Unsafe` strings (what Ansible itself does)."""


_AnsibleLoader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))  # type: ignore[arg-type]


def read_ansible_yaml(text: str) -> Any:
    """Read YAML written by `ansible_yaml` (an inventory), keeping which strings are unsafe."""
    return yaml.load(text, Loader=_AnsibleLoader)


def ansible_yaml(data: Any) -> str:
    """YAML for Ansible (inventory, vars files) with every string value tagged `!unsafe`: never templated."""
    return yaml.dump(_mark_unsafe(data), Dumper=_AnsibleDumper, sort_keys=False, width=120, allow_unicode=True)


# --- Prometheus (Go) templates -----------------------------------------------------------------


def go_template_text(text: str) -> str:
    """`text` as it must appear in a Prometheus annotation template to come out unchanged.

    Text without braces is literal already. Anything else becomes one action printing a Go string
    literal (JSON's escapes are a subset of Go's), so `{{ ... }}` in the value is never an action.
    """
    if "{" not in text and "}" not in text:
        return text
    return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
