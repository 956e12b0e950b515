"""Write a promoted image back into the fleet spec, so the next provision keeps it.

A minimal, comment-preserving edit (ruamel.yaml round trip): only the `image:` values of the rolled-out
service that name a replaced image change; comments, order and every other line stay as they were.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError
from xzctl.state import atomic_write

MAX_SPEC_BYTES = 10_000_000


def _repin(document: Any, service: str, old: set[str], new: str) -> list[str]:
    """Set `services.<service>.image` to `new` wherever it is one of `old`, at any depth; the paths changed."""
    changed: list[str] = []
    todo: list[tuple[str, Any]] = [("", document)]
    while todo:  # bounded by the document's size: every node is visited once
        path, node = todo.pop()
        if isinstance(node, list):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
        if not isinstance(node, dict):
            continue
        pinned = node.get("services", {}).get(service) if isinstance(node.get("services"), dict) else None
        if isinstance(pinned, dict) and pinned.get("image") in old:
            pinned["image"] = new
            changed.append(f"{path}.services.{service}.image".lstrip("."))
        todo.extend((f"{path}.{key}", value) for key, value in node.items())
    return sorted(changed)


def write_pin(spec: Path, service: str, old_images: set[str], new_image: str) -> list[str]:
    """Pin `new_image` wherever the spec pins `service` to one of `old_images`; the paths changed."""
    from ruamel.yaml import YAML

    try:
        if spec.stat().st_size > MAX_SPEC_BYTES:
            raise BadInputError(f"{spec} is over {MAX_SPEC_BYTES} bytes: not a fleet spec")
        text = spec.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"cannot read the fleet spec {spec}: {exc.strerror or exc}") from None
    yaml = YAML()  # round-trip mode: keeps comments, order, quotes
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    document = yaml.load(text)
    changed = _repin(document, service, old_images, new_image)
    if not changed:
        raise BadInputError(f"{spec} pins {service} to none of {', '.join(sorted(old_images))}: nothing to write")
    out = io.StringIO()
    yaml.dump(document, out)
    atomic_write(spec, out.getvalue())
    return changed
