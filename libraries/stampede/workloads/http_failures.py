"""Why an HTTP agent's request failed, in words a suite can act on: RunFailed, ThreadReadFailed and their texts.

A run request that did not reach its run's end raises :class:`RunFailed`
with its :class:`~stampede.records.threads.HttpFailure` (refused, unauthorized,
timed out, cut, a bad event, ...); a read of a thread after the launch raises
:class:`ThreadReadFailed`. The answer's body goes into the message shortened
and with secrets hidden (:func:`said`), and a user's token never does (:func:`scrub`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from ..errors import ConfigurationError, StampedeError
from ..records.threads import HttpFailure, RunAttempt
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .websocket_fields import SHOWN_CHARACTERS, FieldPathError, shorten


class RunFailed(Exception):
    """A run request that did not reach its run's end: becomes the attempt's failure and the operation's error."""

    def __init__(self, failure: HttpFailure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


class ThreadReadFailed(StampedeError):
    """Reading a thread after the launch failed: the message names the thread, the request and the answer."""


async def check_start(
    response: aiohttp.ClientResponse, attempt: RunAttempt, protocol: HttpProtocol, refusal_statuses: Sequence[int]
) -> None:
    """RunFailed unless the start request was answered with an SSE stream; a refusal's arrival ends the attempt."""
    status, arrived = response.status, time.monotonic_ns()
    if 200 <= status < 300:
        kind = response.headers.get("Content-Type", "")
        if not kind.startswith("text/event-stream"):
            answer = said(await body(response))
            raise RunFailed(
                HttpFailure.HTTP_ERROR,
                f"HTTP {status} with {kind or 'no content type'}, not an SSE stream (text/event-stream): check "
                f"requests.run_stream ({request_line(protocol, RequestName.RUN_STREAM)}). Answer: {answer}",
            )
        return
    answer = said(await body(response))
    if status in refusal_statuses:
        attempt.end_ns = arrived  # so the refusal is judged against the runs that had ended by then
        raise RunFailed(HttpFailure.REFUSED, f"HTTP {status}: {answer}")
    if status in (401, 403):
        raise RunFailed(
            HttpFailure.UNAUTHORIZED,
            f"HTTP {status}: {answer}. The service refused the user's token: check the secret it is signed with "
            "(STAMPEDE_AGENT_JWT_SECRET), the token's claims (the protocol's \"token\"), or the tokens given, "
            "and where it goes (auth, header_name, header_value, query_param)",
        )
    raise RunFailed(HttpFailure.HTTP_ERROR, f"HTTP {status} before any event: {answer}")


def field_missing(error: FieldPathError, problems: list[str], paths: set[str]) -> RunFailed:
    """The run's failure for a field path matching nothing; the first error of each path goes to ``problems``."""
    if error.path not in paths:
        paths.add(error.path)
        problems.append(str(error))
    return RunFailed(HttpFailure.BAD_EVENT, str(error))


def thread_refused(status: int | None, answer: Any, user: str, protocol: HttpProtocol) -> StampedeError:
    """The error for a create_thread request the service refused (a ConfigurationError for a refused token)."""
    line = request_line(protocol, RequestName.CREATE_THREAD)
    if status in (401, 403):
        return ConfigurationError(
            f"The HTTP agent service refused {user}'s token: {line} was answered HTTP {status}: {shorten(answer)}. "
            "Check the secret the tokens are signed with (STAMPEDE_AGENT_JWT_SECRET or ${AGENT_SERVICE_JWT_SECRET}), "
            "the token's claims (the protocol's \"token\"), or the tokens given, and where the token goes (auth, "
            "header_name, header_value, query_param)."
        )
    return StampedeError(
        f"Creating a thread for {user} failed: {line} at {protocol.base_url} was answered HTTP {status}: "
        f"{shorten(answer)}. Check requests.create_thread in the HTTP protocol."
    )


def request_line(protocol: HttpProtocol, name: RequestName) -> str:
    """``METHOD /path`` of a request, for a message (its name when the protocol has none)."""
    template = protocol.request(name)
    return f"{template.method} {template.path}" if template is not None else name


async def body(response: aiohttp.ClientResponse) -> str:
    """An answer's body as text, or why it could not be read."""
    try:
        return (await response.read()).decode("utf-8", errors="replace")
    except aiohttp.ClientError as error:
        return f"(the answer's body could not be read: {error_text(error)})"


def said(text: str) -> str:
    """An answer's body for a message: its JSON compact and with secrets hidden, else its text, both shortened."""
    try:
        return shorten(json.loads(text))
    except ValueError:
        return shorten(text) if len(text) > SHOWN_CHARACTERS else text


def error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def scrub(text: str, token: Any) -> str:
    return text.replace(token, "***") if isinstance(token, str) and token else text
