"""The policy pack's policies: thin adapters from Pulumi resources to xzctl.manifests.policy.

Kept apart from __main__.py because constructing a PolicyPack serves gRPC forever; tests import this.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from xzctl.manifests import policy

ObjectCheck = Callable[[dict[str, Any]], list[policy.Violation]]


def _resource_policy(name: str, description: str, check: ObjectCheck) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        obj = policy.manifest_from_pulumi(args.resource_type, args.props)
        for violation in check(obj) if obj is not None else []:
            report_violation(violation.message, None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def _gpu_slots(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    objects = [policy.manifest_from_pulumi(r.resource_type, r.props) for r in args.resources]
    for violation in policy.gpu_slots([o for o in objects if o is not None]):
        report_violation(violation.render(), None)


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        _resource_policy(
            "resource-limits", "Every container sets CPU and memory requests and limits.", policy.resource_limits
        ),
        _resource_policy("probes", "Every long-running container has readiness and liveness probes.", policy.probes),
        _resource_policy("non-root", "No container runs as root or may escalate privileges.", policy.non_root),
        # In Pulumi a Secret's value is a Pulumi secret, encrypted in state: only literals elsewhere are refused.
        _resource_policy(
            "no-plaintext-secret",
            "No secret in a ConfigMap or an env literal.",
            partial(policy.no_plaintext_secret, secret_data_allowed=True),
        ),
        StackValidationPolicy(
            name="gpu-slots",
            description="GPU slots requested per edge node fit its GPUs x time-slicing replicas.",
            validate=_gpu_slots,
            enforcement_level=EnforcementLevel.MANDATORY,
        ),
    ]
