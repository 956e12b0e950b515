"""Secrets in rendered configs: a placeholder in the file, the value only inside the running pod.

The xiaozhi server reads `server.auth_key` from its config file and has no environment lookup, so a
rendered `data/.config.yaml` carries a placeholder naming an environment variable. The deployment
(the Pulumi stack: a Secret exposed as that variable to an init container of the same server image)
runs `FILL_SECRETS_SCRIPT` to write the final file into the pod's own volume. The key never lands in
a ConfigMap, a rendered file or the Pulumi state.

Fail closed: the script refuses to write when a variable is unset or empty, and the placeholder
starts with "你的" (upstream's own marker for an unfilled value), so a server that somehow starts
on the unfilled file ignores it and makes a random per-process key: devices fail to authenticate
rather than trusting a key that is printed in this source.
"""

from __future__ import annotations

import re

from xzctl.spec.models import SecretRef

PLACEHOLDER_PREFIX = "你的"
PLACEHOLDER_RE = re.compile(r"你的\$\{([A-Z_][A-Z0-9_]*)\}")


def secret_env_name(field: str, ref: SecretRef) -> str:
    """The environment variable the pod gets the secret as: the spec's env name, or one per Pulumi secret."""
    return ref.env if ref.env else f"XZCTL_SECRET_{field.upper()}"


def secret_placeholder(env_name: str) -> str:
    return f"{PLACEHOLDER_PREFIX}${{{env_name}}}"


# Runs as `python3 -c FILL_SECRETS_SCRIPT SRC DEST` in the server image, which ships Python; stdlib only.
# Each value goes in as a JSON string, which YAML reads back verbatim whatever characters the key holds.
FILL_SECRETS_SCRIPT = r"""
import json, os, re, sys, tempfile
src, dest = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
pattern = re.compile(r'"你的\$\{([A-Z_][A-Z0-9_]*)\}"')
missing = sorted({m for m in pattern.findall(text) if not os.environ.get(m)})
if missing:
    sys.exit("fill-secrets: unset or empty: " + ", ".join(missing) + "; refusing to write " + dest)
out = pattern.sub(lambda m: json.dumps(os.environ[m.group(1)]), text)
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dest)), prefix=".fill-")
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write(out)
os.chmod(tmp, 0o600)
os.replace(tmp, dest)
"""
