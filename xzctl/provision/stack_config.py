"""The stack config of an xzctl stack: what `xzctl provision` writes and the program (xzctl.provision.program) reads.

One name per key, used by the writer and the reader alike, so neither can spell a key the other does not. Keys
live in the namespace `xzctl` (`pulumi config set xzctl:region beijing`):
  fleet        path of the fleet spec (required by the program run as `pulumi up`)
  region       an edge region of the spec, or "cloud" (required likewise)
  imagePins    JSON of `ImagePins` (optional; default: the spec's images, no canary). `xzctl provision` records
               the pins it deployed here, so a later `pulumi up` deploys the same.
  cloudStack   the cloud stack an edge stack reads `cloudEndpoint` from (default organization/xzctl/cloud)
  kubeContext, kubeconfig   override the spec's kubernetes target
  <name>       Pulumi config secrets the spec refers to (`pulumi_secret: <name>`)
"""

from __future__ import annotations

from pathlib import Path

NAMESPACE = "xzctl"
FLEET = "fleet"
REGION = "region"
IMAGE_PINS = "imagePins"
CLOUD_STACK = "cloudStack"
KUBE_CONTEXT = "kubeContext"
KUBECONFIG = "kubeconfig"


def qualified(name: str) -> str:
    """The key as the CLI and the stack settings file name it: `xzctl:<name>`."""
    return f"{NAMESPACE}:{name}"


def update_config(
    fleet_path: Path, target: str, *, kube_context: str | None = None, kubeconfig: Path | None = None
) -> dict[str, str]:
    """The plain keys an update sets (pins and secrets aside): the spec, the target and any kubernetes override."""
    config = {qualified(FLEET): str(fleet_path), qualified(REGION): target}
    if kube_context:
        config[qualified(KUBE_CONTEXT)] = kube_context
    if kubeconfig:
        config[qualified(KUBECONFIG)] = str(kubeconfig.absolute())
    return config
