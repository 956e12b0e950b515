"""Constrained string types of the fleet spec: a spec value is data, never code.

Spec values reach four template languages (Jinja renders, Ansible, Prometheus alert templates, Helm
values) and shells on the edge nodes. Each free string of the spec is one of these types, so what
cannot be escaped everywhere it goes is refused by `fleet validate` with the path and the fix:
template delimiters, control characters and line breaks (U+2028 too), and over-long values.
Where each field goes and how it is escaped there is `xzctl.spec.sinks`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

# Jinja ({{ {% {#), Go templates ({{), shell expansion (${ $( `) and YAML/Ansible tags all start here.
_TEMPLATE_OPENERS = ("{{", "}}", "{%", "%}", "{#", "#}", "${", "$(", "`")
# C0/C1 controls, DEL, line/paragraph separators, BOM and non-characters: invisible or line-breaking.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
# Local paths: what key files and kubeconfigs are called; no spaces, quotes or shell metacharacters.
_PATH = re.compile(r"^[A-Za-z0-9_.~/+@:=,-]{1,4096}$")
# Names for people (GPU models, capex items, model names): words, digits and light punctuation.
_LABEL = re.compile(r"^[\w][\w .:/+@()-]{0,127}$")
URL_SCHEMES = ("http", "https")
S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_.=/-]*)?$"


def _plain(value: str) -> str:
    if _INVISIBLE.search(value):
        raise ValueError("control characters, line breaks and invisible characters are not allowed")
    opener = next((o for o in _TEMPLATE_OPENERS if o in value), None)
    if opener is not None:
        raise ValueError(f"{opener!r} is not allowed: spec values are data and never reach a template as code")
    return value


def host_address(value: str) -> str:
    """An IPv4/IPv6 address or a lower-case DNS name."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError(
                "not an IP address or a lower-case DNS name: write e.g. 10.10.1.11 or edge-01.example.com"
            ) from None
    return value


def http_url(value: str) -> str:
    """An absolute http(s) URL with a host and no credentials, spaces or template delimiters."""
    _plain(value)
    if len(value) > 2048 or any(c in value for c in " \"'<>\\{}|^"):
        raise ValueError("not a plain URL: no spaces, quotes, braces or backslashes, at most 2048 characters")
    try:
        parts = urlsplit(value)
        _port = parts.port  # raises on a port out of range
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc}): write e.g. https://runbooks.example.com/xiaozhi") from None
    if parts.scheme not in URL_SCHEMES or not parts.hostname:
        raise ValueError(f"only {' and '.join(URL_SCHEMES)} URLs with a host: write e.g. https://runbooks.example.com")
    if parts.username is not None or parts.password is not None:
        raise ValueError("no credentials in URLs (they would land in rendered files): use a secret reference")
    host_address(parts.hostname)
    return value


def _plain_matching(pattern: re.Pattern[str], message: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        _plain(value)
        if not pattern.match(value):
            raise ValueError(message)
        return value

    return check


# A file path on the operator's machine (~ allowed).
local_path = _plain_matching(
    _PATH, "not a plain file path: use letters, digits and _ . ~ / + @ : = , - (no spaces or quotes)"
)
# An e-mail address (Alertmanager templates its to/from fields: no delimiters may reach them).
email_address = _plain_matching(
    re.compile(r"^[^@\s\"'<>,;]+@[^@\s\"'<>,;]+$"), "not an e-mail address: write e.g. oncall@example.com"
)
# A short single-line name for people.
label_text = _plain_matching(_LABEL, "a name of at most 128 letters, digits, spaces and . : / + @ ( ) - _ characters")


HostAddress = Annotated[
    str, AfterValidator(host_address), Field(description="IP address or DNS name the operator reaches over SSH")
]
LocalPath = Annotated[str, AfterValidator(local_path), Field(description="file path on the operator's machine")]
HttpUrl = Annotated[str, AfterValidator(http_url), Field(description="http(s) URL, no credentials or templates")]
EmailAddress = Annotated[str, AfterValidator(email_address), Field(description="e-mail address")]
LabelText = Annotated[str, AfterValidator(label_text), Field(description="a short single-line name")]
