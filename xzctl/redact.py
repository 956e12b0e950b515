"""Secrets stay references: every text xzctl shows or stores passes through `redact` first.

Tokens and passwords enter through flags, environment variables and URLs (`https://user:pw@host`).
Each one is registered here when it is read (`register`), and the CLI registers the values of
environment variables whose names say they are secret. `redact` replaces every registered value,
URL passwords and bearer tokens with `***`, in error lines, `--debug` tracebacks, logs and state.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary words
_SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|AUTH|CREDENTIAL", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[^\s'\",]+", re.IGNORECASE)

_lock = threading.Lock()
_secrets: set[str] = set()


def register(*values: str | None) -> None:
    """Remember secret values so that `redact` masks them wherever they appear."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_LENGTH)


def register_environment(environ: dict[str, str] | None = None) -> None:
    """Register the values of environment variables named like secrets (K3S_TOKEN, ..._PASSWORD)."""
    env = os.environ if environ is None else environ
    register(*(value for name, value in env.items() if _SECRET_NAME.search(name)))


def register_env(names: Iterable[str | None]) -> None:
    """Register the values of the named environment variables (the spec's secret references)."""
    register(*(os.environ.get(name) for name in names if name))


def redact(text: str) -> str:
    """`text` with every registered secret, URL password and bearer token replaced by ***."""
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: a secret containing another
    for secret in known:
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", text)


def split_url_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without user:password, the credentials or None); the password is registered."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    register(parts.password, password)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)), (user, password)
