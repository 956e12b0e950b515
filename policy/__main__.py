"""Entry point of the policy pack: `pulumi preview --policy-pack policy`."""

from pulumi_policy import EnforcementLevel, PolicyPack
from xzctl_policies import policies

PolicyPack(name="xzctl", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
