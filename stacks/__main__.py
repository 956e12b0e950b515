"""Entry point for the Pulumi CLI (`pulumi up` in the repository root; see Pulumi.yaml).

The program lives in the library (xzctl.provision.program); `xzctl provision` runs it inline instead.
"""

from xzctl.provision.program import program

program()
