"""Keeping passwords out of messages and logs: every DSN or URL shown goes through here."""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

_SCHEME = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.DOTALL)
# ``password=...`` in a URL query or a key/value DSN, quoted ('a b\'c') or bare.
_PASSWORD_PARAM = re.compile(r"((?:^|[?&\s])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)", re.IGNORECASE)


def _userinfo_split(url: str) -> tuple[str, str, str] | None:
    """Return ``(before, password, after)`` around the userinfo password of a URL, if any."""
    match = _SCHEME.match(url)
    if not match:
        return None
    scheme, rest = match.groups()
    # A raw '@' or '?' inside a password is malformed but happens; prefer hiding too much.
    query_at = rest.find("?")
    at = (rest if query_at < 0 else rest[:query_at]).rfind("@")
    if at < 0:
        at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    if not colon:
        return None
    return f"{scheme}{user}:", password, rest[at:]


def mask_dsn(url: str) -> str:
    """Return ``url`` (a postgres/redis URL or key/value DSN) with its password replaced by ``***``."""
    parts = _userinfo_split(url)
    if parts is not None:
        url = f"{parts[0]}{MASK}{parts[2]}"
    return _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, url)


def passwords_in(url: str) -> list[str]:
    """Return every password ``url`` carries, raw and percent-decoded, longest first."""
    found: list[str] = []
    parts = _userinfo_split(url)
    if parts is not None and parts[1]:
        found.append(parts[1])
    for match in _PASSWORD_PARAM.finditer(url):
        value = match.group(2)
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if value:
            found.append(value)
    found += [unquote(secret) for secret in found]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """Return ``text`` (say, a driver's error message) with every password of ``url`` masked."""
    for secret in passwords_in(url):
        text = text.replace(secret, MASK)
    return text
