"""Which Prometheus to ask and how: one `PrometheusTarget`, one resolution rule for its URL.

The URL comes from, first to last: the --prometheus flag, $XZCTL_PROMETHEUS_URL, a named context
of a config file (`context_url`, filled by the caller that reads contexts), the running sandbox.
Credentials are registered for redaction as soon as they are read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from xzctl.errors import BadInputError
from xzctl.prom.client import DEFAULT_MAX_RESPONSE_BYTES, PrometheusClient
from xzctl.redact import register, split_url_credentials

URL_ENV = "XZCTL_PROMETHEUS_URL"


@dataclass(frozen=True)
class PrometheusTarget:
    """A Prometheus endpoint with its auth and read bounds; `client()` opens it."""

    url: str
    source: str = "flag"  # where the URL came from: flag, env, context, sandbox
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0
    retries: int = 2
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    on_query: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Credentials in the URL become basic auth: the URL itself is then safe to show and store.
        url, in_url = split_url_credentials(self.url)
        if in_url is not None:
            if self.basic_auth or self.bearer_token:
                raise BadInputError("Prometheus credentials given twice: in the URL and as a flag")
            object.__setattr__(self, "url", url)
            object.__setattr__(self, "basic_auth", in_url)
        register(self.bearer_token, *(self.basic_auth or ())[1:])

    def client(self) -> PrometheusClient:
        return PrometheusClient(
            self.url,
            bearer_token=self.bearer_token,
            basic_auth=self.basic_auth,
            headers=dict(self.headers),
            timeout=self.timeout,
            retries=self.retries,
            max_response_bytes=self.max_response_bytes,
            on_query=self.on_query,
        )


def resolve_url(
    flag: str | None,
    environ: Mapping[str, str],
    *,
    context_url: str | None = None,
    sandbox_url: str | None = None,
) -> tuple[str, str]:
    """(URL, source) by the one rule: flag > $XZCTL_PROMETHEUS_URL > context > running sandbox."""
    for url, source in ((flag, "flag"), (environ.get(URL_ENV), "env"), (context_url, "context")):
        if url:
            return url, source
    if sandbox_url:
        return sandbox_url, "sandbox"
    raise BadInputError("no Prometheus to ask", hint=f"pass --prometheus URL, set ${URL_ENV}, or `xzctl sandbox up`")


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """USER:PASSWORD -> (user, password); the password is registered for redaction."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    register(password)
    if not sep:
        raise BadInputError("--basic-auth must be USER:PASSWORD")
    return user, password


def parse_headers(values: Sequence[str] | None) -> dict[str, str]:
    """'Name: value' flags -> headers; values of Authorization-like headers are registered for redaction."""
    headers = {}
    for value in values or []:
        name, sep, content = value.partition(":")
        if not sep or not name.strip() or any(c in value for c in "\r\n\0"):
            raise BadInputError(f"--header {name.strip()!r} is not 'Name: value' (one line)")
        headers[name.strip()] = content.strip()
        if name.strip().lower() in ("authorization", "proxy-authorization", "x-api-key", "cookie"):
            register(content.strip(), content.strip().partition(" ")[2])
    return headers
