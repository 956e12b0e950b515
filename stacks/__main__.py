"""Entry point for the Pulumi CLI (`pulumi up` in the repository root; see Pulumi.yaml)."""

from stacks.program import program

program()
