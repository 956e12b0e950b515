"""Write a promoted image back into the fleet spec, so the next provision keeps it.

A minimal, comment-preserving edit: ruamel.yaml's round-trip parser says where (line, column) each
`image:` value of the rolled-out service is, and only those characters of the original text change.
Re-dumping the document would reflow flow mappings and indentation; this keeps every other byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError
from xzctl.state import atomic_write

MAX_SPEC_BYTES = 10_000_000


def _pins(document: Any, service: str, old: set[str]) -> list[tuple[str, int, int, str]]:
    """(path, line, column, value) of every `services.<service>.image` that is one of `old`, at any depth."""
    changed: list[tuple[str, int, int, str]] = []
    todo: list[tuple[str, Any]] = [("", document)]
    while todo:  # bounded by the document's size: every node is visited once
        path, node = todo.pop()
        if isinstance(node, list):
            todo.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
        if not isinstance(node, dict):
            continue
        services = node.get("services")
        pinned = services.get(service) if isinstance(services, dict) else None
        if isinstance(pinned, dict) and pinned.get("image") in old:
            located: Any = pinned  # a ruamel CommentedMap: it knows the line and column of each value
            line, column = located.lc.value("image")
            changed.append((f"{path}.services.{service}.image".lstrip("."), line, column, pinned["image"]))
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
    found = _pins(YAML().load(text), service, old_images)  # round-trip mode: it knows where each value is
    if not found:
        raise BadInputError(f"{spec} pins {service} to none of {', '.join(sorted(old_images))}: nothing to write")
    lines = text.splitlines(keepends=True)
    for path, line, column, value in found:
        quote = lines[line][column : column + 1]
        start = column + 1 if quote in ("'", '"') else column
        if lines[line][start : start + len(value)] != value:
            raise BadInputError(f"{spec}:{line + 1}: cannot edit {path} in place; pin {new_image} by hand")
        lines[line] = lines[line][:start] + new_image + lines[line][start + len(value) :]
    atomic_write(spec, "".join(lines))
    return [path for path, *_ in found]
