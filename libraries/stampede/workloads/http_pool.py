"""The HTTP connection pool agents of many users share, and the check that something listens at a service's URL."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import aiohttp

from ..errors import ServiceUnavailable
from ..records.websocket import timeout_text


def shared_session(connections: int | None, connect_timeout: float) -> aiohttp.ClientSession:
    """A pool of ``connections`` at most (None: no limit) that never keeps cookies: its users are many."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections or 0, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),  # agents of different users share the pool: never their cookies
        trust_env=False,
    )


async def check_listening(url: str, connect_timeout: float, what: str, fix: str) -> None:
    """ServiceUnavailable (``Nothing accepts connections at <what> (<why>): <fix>``) when nothing listens at ``url``."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        async with asyncio.timeout(connect_timeout):
            _, writer = await asyncio.open_connection(parts.hostname, port)
    except (OSError, TimeoutError) as error:
        why = f"no answer within {timeout_text(connect_timeout)}" if isinstance(error, TimeoutError) else error
        raise ServiceUnavailable(f"Nothing accepts connections at {what} ({why}): {fix}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
