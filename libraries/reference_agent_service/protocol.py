"""The reference agent service's WebSocket protocol: what a client sends, what it gets back.

Every frame is a JSON object in a text frame with a ``type``. Any URL path works.

Opening a session
-----------------
The first frame must be a ``hello`` (within ``hello_timeout_ms``, default 10 s)::

    {"type": "hello", "token": "<JWT>"}                                  new session
    {"type": "hello", "token": "<JWT>", "resume_token": "...", "last_seq": 7}   resume one

The token is an HS256 JWT whose ``sub`` is the user id (see ``auth.py``). A user
has at most one session (registered in Redis). The answer is::

    {"type": "session_started", "seq": 1, "session_id": "...", "user_id": "alice",
     "resume_token": "...", "credits": 1000}

Refusals are an ``error`` frame (``seq`` null) followed by a close:
``auth_failed`` (close 4401), ``session_active`` (the user has a session already,
close 4409), ``resume_failed`` (unknown or expired resume token, close 4404),
``hello_required`` / ``hello_timeout`` / ``bad_json`` / ``bad_message`` (close 4400),
``service_unavailable`` (PostgreSQL or Redis failed, close 1011).

Sequence numbers and resuming
-----------------------------
Every frame the service sends in a session carries ``seq``: 1, 2, 3, ... with no
gap, in the order sent. A session lives on one connection at a time. Closing
with code 1000 or 1001 ends it (runs still going are cancelled). Any other end
(a dropped connection, close code 4000, ...) keeps it for ``resume_window_ms``
(default 10 s): runs go on, their events are kept (the last ``replay_buffer``
frames, default 1000). A ``hello`` with the ``resume_token`` and the last seq
the client saw (``last_seq``, 0 for none) re-attaches it: the service first
re-sends the frames after ``last_seq`` with their original seq, then sends
``{"type": "session_resumed", "seq": n, "session_id", "user_id", "replayed": k}``
and carries on with the next seq.
Resuming on a new connection while the old one is still open closes the old one
(close 4410).

Starting agent runs
-------------------
::

    {"type": "start_run", "thread_id": "t1", "marker": "m-alice", "context": <any JSON>,
     "request_id": "r1", "cost": 1}
    {"type": "send_message", "thread_id": "t1", "marker": "m-alice", "text": "and now?",
     "request_id": "r2"}

``start_run`` opens the thread (per user) if needed; ``send_message`` needs a
thread the user started (else ``error`` ``unknown_thread``). Both start a run;
a session may have many runs going at once. ``request_id`` (optional, echoed on
every event of the run) and ``cost`` (optional credits, default ``run_cost``)
are the client's to choose. Thread ids, markers and request ids are 1 to 200
characters. A run streams, in this order::

    agent_started    context_bytes, context_sha256 (UTF-8 of the text; of a string context;
                     of "" for no context; else of the context as compact JSON: separators
                     "," and ":", ensure_ascii off, keys in the order sent)
    agent_thinking   think_ms
    tool_executing   tool ("deduct_credits"), cost
    tool_completed   tool, cost, balance (credits left), message_position (in the thread)
    agent_completed  duration_ms

or ends early with ``agent_failed`` (``code``: ``insufficient_credits``,
``lock_timeout``, ``database_unavailable``, ``redis_unavailable``, ``conflict``,
``internal_error``; ``message``). Every run event carries ``type``, ``seq``,
``user_id``, ``run_id``, ``thread_id``, ``marker`` and ``request_id``.

The tool deducts the cost from the user's credits and stores the message in
the thread, in one PostgreSQL transaction, while holding the thread's Redis lock.

Other frames
------------
``{"type": "ping", "request_id": "p1"}`` gets ``{"type": "pong", "seq": n, "request_id": "p1"}``.
A malformed frame inside a session (a second hello included) gets ``{"type": "error",
"seq": n, "code": "bad_json" | "bad_message" | "unknown_type" | "unknown_thread" |
"service_unavailable", "message": "...", "request_id": ...}`` and the session goes on.
If the session's Redis registration is lost, it gets ``error`` ``session_expired``
and a close (4408). A frame over ``max_message_bytes`` (64 MiB) closes with 1009.
The service stopping closes every connection with 1001.

State the service keeps
-----------------------
PostgreSQL, in the schema it is given: ``agent_credits(user_id, balance)`` (a new
user starts with ``initial_credits``), ``agent_threads(user_id, thread_id)`` and
``agent_messages(id, user_id, thread_id, position, run_id, marker, cost, content,
created_at)``. Redis, under the prefix it is given: ``agent:session:<user>`` (the
session id, with a TTL the service refreshes) and ``agent:lock:thread:<user>:<thread>``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

MAX_NAME_LENGTH = 200
MAX_COST = 1_000_000
TOOL_NAME = "deduct_credits"


class ClientType(StrEnum):
    HELLO = "hello"
    START_RUN = "start_run"
    SEND_MESSAGE = "send_message"
    PING = "ping"


_CLIENT_TYPES = frozenset(ClientType)
_KNOWN_TYPES = ", ".join(ClientType)


class EventType(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_RESUMED = "session_resumed"
    AGENT_STARTED = "agent_started"
    AGENT_THINKING = "agent_thinking"
    TOOL_EXECUTING = "tool_executing"
    TOOL_COMPLETED = "tool_completed"
    AGENT_COMPLETED = "agent_completed"
    AGENT_FAILED = "agent_failed"
    PONG = "pong"
    ERROR = "error"


RUN_LIFECYCLE: tuple[EventType, ...] = (
    EventType.AGENT_STARTED,
    EventType.AGENT_THINKING,
    EventType.TOOL_EXECUTING,
    EventType.TOOL_COMPLETED,
    EventType.AGENT_COMPLETED,
)
"""The events of a run that succeeds, in the order they are sent."""

RUN_ENDS = frozenset({EventType.AGENT_COMPLETED, EventType.AGENT_FAILED})


class ErrorCode(StrEnum):
    AUTH_FAILED = "auth_failed"
    SESSION_ACTIVE = "session_active"
    RESUME_FAILED = "resume_failed"
    HELLO_REQUIRED = "hello_required"
    HELLO_TIMEOUT = "hello_timeout"
    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_THREAD = "unknown_thread"
    SESSION_EXPIRED = "session_expired"
    SERVICE_UNAVAILABLE = "service_unavailable"


class RunFailure(StrEnum):
    """``code`` of an ``agent_failed`` event."""

    INSUFFICIENT_CREDITS = "insufficient_credits"
    LOCK_TIMEOUT = "lock_timeout"
    DATABASE_UNAVAILABLE = "database_unavailable"
    REDIS_UNAVAILABLE = "redis_unavailable"
    CONFLICT = "conflict"
    INTERNAL_ERROR = "internal_error"


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    INTERNAL_ERROR = 1011
    PROTOCOL_ERROR = 4400
    AUTH_FAILED = 4401
    RESUME_FAILED = 4404
    SESSION_EXPIRED = 4408
    SESSION_ACTIVE = 4409
    TAKEN_OVER = 4410


SESSION_ENDING_CLOSES = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY})
"""Close codes from a client that end its session; any other end leaves it resumable."""


class ProtocolError(Exception):
    """A frame the service cannot act on; ``code`` and the message go back in an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True)
class Hello:
    token: str
    resume_token: str | None = None
    last_seq: int | None = None


@dataclass(frozen=True)
class RunRequest:
    """A ``start_run`` or ``send_message``: both start an agent run on a thread."""

    kind: ClientType
    thread_id: str
    marker: str
    content: str
    request_id: str | None = None
    cost: int | None = None

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    @property
    def content_bytes(self) -> int:
        return len(self.content.encode())


@dataclass(frozen=True)
class Ping:
    request_id: str | None = None


ClientMessage = Hello | RunRequest | Ping


def context_text(context: Any) -> str:
    """The text a run works on: a string context as is, none as "", anything else as compact JSON."""
    if context is None:
        return ""
    if isinstance(context, str):
        return context
    return json.dumps(context, separators=(",", ":"), ensure_ascii=False)


def _name(frame: dict[str, Any], field: str, *, required: bool, request_id: str | None = None) -> str | None:
    value = frame.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        shown = "missing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"{frame.get('type')}: {field!r} must be a string of 1 to {MAX_NAME_LENGTH} characters, got {shown}",
            request_id,
        )
    return value


def _int_field(frame: dict[str, Any], field: str, low: int, high: int, request_id: str | None) -> int | None:
    value = frame.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"{frame.get('type')}: {field!r} must be a whole number from {low} to {high}, got {value!r}",
            request_id,
        )
    return value


def decode_frame(frame: str | bytes) -> dict[str, Any]:
    """Return the JSON object in a text frame, or raise ProtocolError (``bad_json``/``bad_message``)."""
    if isinstance(frame, bytes):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not understood: send JSON in a text frame")
    try:
        decoded = json.loads(frame)
    except ValueError as error:
        raise ProtocolError(ErrorCode.BAD_JSON, f"the frame is not JSON ({error}): {frame[:80]!r}") from None
    if not isinstance(decoded, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"a frame must be a JSON object, got {type(decoded).__name__}")
    return decoded


def parse_client_message(frame: str | bytes) -> ClientMessage:
    """Turn a client's frame into a message, or raise ProtocolError saying what is wrong."""
    decoded = decode_frame(frame)
    request_id = decoded.get("request_id") if isinstance(decoded.get("request_id"), str) else None
    kind = decoded.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"a frame needs a 'type' ({_KNOWN_TYPES})", request_id)
    if kind not in _CLIENT_TYPES:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown type {kind[:40]!r}: use one of {_KNOWN_TYPES}", request_id
        )
    request_id = _name(decoded, "request_id", required=False)
    if kind == ClientType.HELLO:
        return _hello(decoded)
    if kind == ClientType.PING:
        return Ping(request_id)
    thread_id = _name(decoded, "thread_id", required=True, request_id=request_id)
    marker = _name(decoded, "marker", required=True, request_id=request_id)
    if kind == ClientType.START_RUN:
        content = context_text(decoded.get("context"))
    else:
        text = decoded.get("text")
        if not isinstance(text, str):
            raise ProtocolError(ErrorCode.BAD_MESSAGE, "send_message: 'text' must be a string", request_id)
        content = text
    cost = _int_field(decoded, "cost", 0, MAX_COST, request_id)
    return RunRequest(ClientType(kind), str(thread_id), str(marker), content, request_id, cost)


def _hello(frame: dict[str, Any]) -> Hello:
    token = frame.get("token")
    if not isinstance(token, str) or not token:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "hello: 'token' must be the JWT, as a string")
    resume_token = _name(frame, "resume_token", required=False)
    last_seq = _int_field(frame, "last_seq", 0, 2**53, None)
    if (resume_token is None) != (last_seq is None):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, "hello: give 'resume_token' and 'last_seq' together to resume, or neither"
        )
    return Hello(token, resume_token, last_seq)


# Frames a client sends, for workload authors and tests.


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps({key: value for key, value in frame.items() if value is not None})


def hello_frame(token: str, *, resume_token: str | None = None, last_seq: int | None = None) -> str:
    return _encode({"type": ClientType.HELLO, "token": token, "resume_token": resume_token, "last_seq": last_seq})


def start_run_frame(
    thread_id: str, marker: str, context: Any = None, *, request_id: str | None = None, cost: int | None = None
) -> str:
    return _encode(
        {
            "type": ClientType.START_RUN,
            "thread_id": thread_id,
            "marker": marker,
            "context": context,
            "request_id": request_id,
            "cost": cost,
        }
    )


def send_message_frame(
    thread_id: str, marker: str, text: str, *, request_id: str | None = None, cost: int | None = None
) -> str:
    return _encode(
        {
            "type": ClientType.SEND_MESSAGE,
            "thread_id": thread_id,
            "marker": marker,
            "text": text,
            "request_id": request_id,
            "cost": cost,
        }
    )


def ping_frame(request_id: str | None = None) -> str:
    return _encode({"type": ClientType.PING, "request_id": request_id})
