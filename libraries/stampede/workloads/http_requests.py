"""Sending one request of an HTTP protocol: its template rendered, the user's token placed, its answer awaited."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ..records.threads import HttpFailure
from .http_failures import RunFailed, ThreadReadFailed, body, error_text
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName


def send(
    http: aiohttp.ClientSession,
    protocol: HttpProtocol,
    name: RequestName,
    values: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> Any:
    """The request ``name`` for ``values`` (await it through :func:`answered`)."""
    template = protocol.request(name)
    assert template is not None, f"{name} is checked before it is sent"
    method, path, payload = template.rendered(values)
    token = values.get("token")
    return http.request(
        method,
        protocol.base_url + path,
        json=payload,
        headers={**protocol.headers(token, values), **(headers or {})},
        params=protocol.query(token) or None,
    )


async def answered(request: Any, name: RequestName, base_url: str) -> aiohttp.ClientResponse:
    """The response of ``request`` (``async with`` it to release it); RunFailed when no HTTP answer came."""
    try:
        return await request
    except (aiohttp.ClientConnectionError, OSError) as error:
        raise RunFailed(
            HttpFailure.CONNECT_FAILED,
            f"no HTTP answer from {base_url} to {name} ({error_text(error)}): check base_url and that the service runs",
        ) from None


async def json_answer(
    http: aiohttp.ClientSession, protocol: HttpProtocol, name: RequestName, values: dict[str, Any], user: str
) -> tuple[int | None, Any]:
    """The status and JSON answer (its text when not JSON) of one request."""
    async with await answered(send(http, protocol, name, values), name, protocol.base_url) as response:
        text = await body(response)
    try:
        return response.status, json.loads(text)
    except ValueError:
        if 200 <= response.status < 300:
            raise ThreadReadFailed(
                f"The {name} answer for {user} (HTTP {response.status}) is not JSON: {text[:200]!r}"
            ) from None
        return response.status, text
