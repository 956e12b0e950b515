"""Read a fleet spec file into a `Fleet`, or raise `FleetSpecError` naming every problem.

This is the one edge where untrusted input enters xzctl: size, encoding, YAML syntax, alias bombs,
schema and cross-field rules are all checked here, and every problem names the file, the line, the
path inside the spec and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from xzctl import data_path, input_path
from xzctl.errors import FleetSpecError, SpecProblem
from xzctl.redact import register_env
from xzctl.spec.models import Fleet

MAX_SPEC_BYTES = 8 * 1024 * 1024  # a generated 10,000-node fleet is about 6 MiB
MAX_YAML_NODES = 2_000_000  # after alias expansion; stops "billion laughs" before it costs memory
# libyaml's parser where PyYAML has it (the same nodes, marks and resolver; ~10x faster on a 1000-node spec)
SAFE_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
BUNDLED_EXAMPLE = "fleet-1000.yaml"
FLEET_ENV = "XZCTL_FLEET"

Path_ = tuple[str | int, ...]


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable() or len(part) > 64:  # a hostile key must not break or flood the error line
            out += f"[{(part[:64] + '...') if len(part) > 64 else part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class LoadedFleet:
    """A valid fleet and where it came from, with the warnings validation raised."""

    fleet: Fleet
    source: str
    warnings: list[SpecProblem] = field(default_factory=list)


def bundled_example_path() -> Path:
    return data_path("examples", BUNDLED_EXAMPLE)


def resolve_fleet_path(explicit: str | Path | None, cwd: Path | None = None) -> Path:
    """--fleet FILE, else $XZCTL_FLEET, else ./fleet.yaml, else the bundled example."""
    # A directory or unreadable file at ./fleet.yaml is an error to report, not a reason to fall back: exists().
    return input_path(explicit, FLEET_ENV, "fleet.yaml", Path.exists, "examples", BUNDLED_EXAMPLE, cwd=cwd)


def load_fleet(path: str | Path | None = None) -> LoadedFleet:
    """Load and validate the fleet spec; raise FleetSpecError with every problem at once."""
    from xzctl.spec.measured import attach_measured
    from xzctl.spec.validate import cross_checks

    spec_path = resolve_fleet_path(path)
    raw, lines = read_spec_document(spec_path)
    origins: dict[Path_, Path_] = {}
    fleet = build_fleet(raw, lines, str(spec_path), origins=origins)
    # A rule broken by a value a node took from its profile names the profile's path: the one the file has.
    problems = cross_checks(fleet, file=str(spec_path), lines=lines, origin=lambda path: _remap(path, origins))
    problems += attach_measured(fleet, spec_path, lines)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise FleetSpecError(problems)
    # Whatever the spec names as a secret is masked in every message from here on.
    register_env(getattr(getattr(fleet.secrets, name), "env", None) for name in type(fleet.secrets).model_fields)
    return LoadedFleet(fleet=fleet, source=str(spec_path), warnings=problems)


class _Fail(Protocol):
    def __call__(self, message: str, fix: str, line: int | None = None, path: Path_ = ()) -> FleetSpecError: ...


def read_spec_document(spec_path: Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    """The YAML document as plain data, and the line of each path in it."""
    file = str(spec_path)

    def fail(message: str, fix: str, line: int | None = None, path: Path_ = ()) -> FleetSpecError:
        message = "".join(c if c.isprintable() else " " for c in message)  # YAML errors span lines
        return FleetSpecError([SpecProblem(file=file, path=format_path(path), message=message, fix=fix, line=line)])

    text = _read_text(spec_path, fail)
    root = _compose(text, fail)
    lines: dict[Path_, int] = {}
    count = _index_lines(root, (), lines, MAX_YAML_NODES)
    if count > MAX_YAML_NODES:
        raise fail(
            f"document expands to more than {MAX_YAML_NODES:,} YAML nodes (an alias bomb?)",
            "remove the repeated aliases; use node_profiles to share node settings",
        )
    try:
        raw = yaml.SafeLoader("").construct_document(root)  # get_single_data's step 2, on the nodes composed above
    except yaml.YAMLError as exc:  # constructor errors, e.g. unhashable keys
        raise fail(f"YAML error: {exc}".replace("\n", " "), "fix the YAML at that place") from None
    odd = _first_non_plain(raw, ())
    if odd is not None:
        where, kind = odd
        raise fail(
            f"a {kind} value (YAML tag or implicit type) where the spec only has text, numbers and booleans",
            "quote the value as text",
            _nearest_line(where, lines),
            where,
        )
    if not isinstance(raw, dict):
        raise fail(
            f"top level is a {type(raw).__name__}, expected a mapping (apiVersion, kind, metadata, ...)",
            "start from the bundled example",
            1,
        )
    return raw, lines


def _read_text(spec_path: Path, fail: _Fail) -> str:
    """The file as UTF-8 text, refused when too big, missing, binary or empty."""
    try:
        size = spec_path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise fail(
                f"file is {size:,} bytes, more than the {MAX_SPEC_BYTES:,} a fleet spec may have",
                "split the fleet or check that this is the right file",
            )
        data = spec_path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file", "pass --fleet FILE or set XZCTL_FLEET") from None
    except IsADirectoryError:
        raise fail("is a directory, not a fleet spec file", "pass the YAML file itself") from None
    except PermissionError:
        raise fail("permission denied", "make the file readable") from None
    if b"\x00" in data:
        raise fail("file is binary, not YAML", "pass the fleet spec YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"file is not UTF-8 text (byte {exc.start})", "save the spec as UTF-8") from None
    if not text.strip():
        raise fail("file is empty", "start from the bundled example: xzctl fleet example > fleet.yaml")
    return text


def _compose(text: str, fail: _Fail) -> yaml.Node:
    """The one YAML document of the text, as a node graph (aliases not expanded yet)."""
    try:
        documents = list(yaml.compose_all(text, Loader=SAFE_LOADER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or "YAML syntax error"
        raise fail(f"YAML syntax error: {what}", "fix the YAML syntax at that line", line) from None
    except yaml.YAMLError as exc:
        raise fail(f"YAML error: {exc}", "fix the YAML syntax") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise fail("file holds no YAML document", "start from the bundled example")
    if len(documents) > 1:
        raise fail("file holds several YAML documents", "keep one fleet per file", documents[1].start_mark.line + 1)
    root: yaml.Node = documents[0]
    return root


def _first_non_plain(data: Any, path: Path_) -> tuple[Path_, str] | None:
    """The first value that is not JSON-like data (!!binary bytes, !!set, dates): where and what."""
    if isinstance(data, dict):
        for key, value in data.items():
            found = _first_non_plain(value, (*path, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(data, list):
        return next((f for i, v in enumerate(data) if (f := _first_non_plain(v, (*path, i))) is not None), None)
    if data is None or isinstance(data, str | int | float | bool):
        return None
    return path, type(data).__name__


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], budget: int) -> int:
    """Record the line of every path; return how many nodes were visited (stops past budget)."""
    lines.setdefault(path, node.start_mark.line + 1)
    visited = 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if visited > budget:
                break
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark.line)
            lines.setdefault((*path, name), key.start_mark.line + 1)
            visited += _index_lines(value, (*path, name), lines, budget - visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            if visited > budget:
                break
            visited += _index_lines(value, (*path, i), lines, budget - visited)
    return visited


def build_fleet(
    raw: dict[str, Any], lines: dict[Path_, int], file: str, *, origins: dict[Path_, Path_] | None = None
) -> Fleet:
    """Resolve node profiles, validate the schema, and map each error back to the YAML the user wrote.

    `origins` (if given) is filled with where each profile-given section of a node came from."""
    problems: list[SpecProblem] = []
    resolved, found = _resolve_profiles(raw, problems, lines, file)
    origins = found if origins is None else origins
    origins.update(found)
    try:
        fleet = Fleet.model_validate(resolved)
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            loc = _remap(tuple(err["loc"]), origins)
            problem = _problem_from_error(err, loc, lines, file)
            key = (problem.path, problem.message)
            if key not in seen:  # one profile error shows once, not once per node using it
                seen.add(key)
                problems.append(problem)
        raise FleetSpecError(problems) from None
    if problems:
        raise FleetSpecError(problems)
    return fleet


def _resolve_profiles(
    raw: dict[str, Any], problems: list[SpecProblem], lines: dict[Path_, int], file: str
) -> tuple[dict[str, Any], dict[Path_, Path_]]:
    """Copy profile sections into each node that names one; remember where each section came from."""
    origins: dict[Path_, Path_] = {}
    profiles = raw.get("node_profiles") or {}
    regions = raw.get("regions")
    if not isinstance(regions, dict) or not isinstance(profiles, dict):
        return raw, origins
    out_regions: dict[str, Any] = {}
    for rname, region in regions.items():
        if not isinstance(region, dict) or not isinstance(region.get("edge_nodes"), list):
            out_regions[rname] = region
            continue
        nodes = []
        for i, node in enumerate(region["edge_nodes"]):
            node_path: Path_ = ("regions", rname, "edge_nodes", i)
            if not isinstance(node, dict):
                nodes.append(node)
                continue
            merged = dict(node)
            merged.setdefault("region", rname)
            pname = merged.pop("profile", None)
            if pname is not None:
                profile = profiles.get(pname) if isinstance(pname, str) else None
                if not isinstance(profile, dict):
                    known = ", ".join(sorted(str(p) for p in profiles)) or "none defined"
                    problems.append(
                        SpecProblem(
                            file=file,
                            path=format_path((*node_path, "profile")),
                            line=lines.get((*node_path, "profile")),
                            message=f"unknown node profile {pname!r}",
                            fix=f"use one of node_profiles ({known}) or define it",
                        )
                    )
                else:
                    for section, value in profile.items():
                        if section not in merged:
                            merged[section] = value
                            origins[(*node_path, section)] = ("node_profiles", pname, section)
            nodes.append(merged)
        out_regions[rname] = {**region, "name": rname, "edge_nodes": nodes}
    return {**raw, "regions": out_regions}, origins


def _remap(loc: Path_, origins: dict[Path_, Path_]) -> Path_:
    for cut in range(len(loc), 0, -1):
        origin = origins.get(loc[:cut])
        if origin is not None:
            return (*origin, *loc[cut:])
    return loc


_FIXES = {
    "missing": "add it (see the bundled example: xzctl fleet example)",
    "extra_forbidden": "remove it or check its spelling",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "string_type": "write a string",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "string_pattern_mismatch": "use the expected format",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "dict_type": "write a mapping (key: value lines)",
    "list_type": "write a list (- item lines)",
    "too_short": "add at least one entry",
    "model_type": "write a mapping (key: value lines)",
}


def _problem_from_error(err: Any, loc: Path_, lines: dict[Path_, int], file: str) -> SpecProblem:
    etype = str(err.get("type", ""))
    # pydantic adds validator names (e.g. function-after[...]) to loc; they mean nothing to an operator
    clean = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p and "]" in p)))
    msg = str(err.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if len(msg) > 300:  # a validator quoting a 100k-character value must not flood the error line
        msg = msg[:300] + "..."
    if etype == "missing":
        msg = "required field is missing"
    elif etype == "extra_forbidden":
        msg = f"unknown field {clean[-1]!r}" if clean else "unknown field"
    elif (
        "input" in err
        and etype not in ("model_type", "dict_type", "list_type")
        and _short(err["input"])
        and "secrets" not in clean  # never echo what may be a secret pasted by mistake
    ):
        msg = f"{msg} (got {err['input']!r})"
    ctx = err.get("ctx") or {}
    fix = _FIXES.get(etype, "correct the value")
    if etype == "string_pattern_mismatch" and "pattern" in ctx:
        fix = f"match {ctx['pattern']}"
    if etype.startswith("value_error"):
        fix = "correct the value as the message says"
    return SpecProblem(file=file, path=format_path(clean), line=_nearest_line(clean, lines), message=msg, fix=fix)


def _short(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(repr(value)) <= 80


def _nearest_line(loc: Path_, lines: dict[Path_, int]) -> int | None:
    for cut in range(len(loc), -1, -1):
        line = lines.get(loc[:cut])
        if line is not None:
            return line
    return None
