"""The jinja2 environment every xzctl template renders in.

Autoescape is off (this is YAML, not HTML) but every `{{ ... }}` goes through `yaml_value` as the
environment's `finalize`, so no template can forget to escape: each value is written as a JSON
scalar or flow collection, which YAML reads back as exactly that value. A node name or URL holding
`": "`, a newline or `#` can therefore never add a key or end a block.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import jinja2

from xzctl import data_path
from xzctl.errors import XzctlError

TEMPLATES_DIR = data_path("templates")


# Characters JSON leaves raw but YAML reads as line breaks (U+0085, U+2028/9, folding a quoted string)
# or refuses as non-printable; JSON output holds them only inside strings, where \uXXXX is valid YAML too.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def yaml_value(value: Any) -> str:
    """One value as YAML that reads back as the same value (JSON is a subset of YAML flow syntax)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@cache
def environment() -> jinja2.Environment:
    if not TEMPLATES_DIR.is_dir():
        raise XzctlError(
            f"templates folder {TEMPLATES_DIR} is missing",
            hint="install xzctl from its source tree: pip install -e .",
        )
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=yaml_value,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_template(name: str, context: dict[str, Any]) -> str:
    return environment().get_template(name).render(context)
