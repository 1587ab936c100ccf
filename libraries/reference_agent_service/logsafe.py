"""Keeping the service's connection passwords out of its log and its error frames."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

MASK = "***"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def mask_dsn(url: str) -> str:
    """``url`` with its password shown as ``***``."""
    password = _password(url)
    return url.replace(f":{password}@", f":{MASK}@", 1) if password else url


def scrub(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with the password of ``url`` masked, raw or percent-decoded."""
    password = _password(url)
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, MASK)
    return text
