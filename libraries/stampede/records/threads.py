"""What the HTTP agent tool records besides the history: each run it asked for, each thread read, the end state.

Plain data, so checkers and tests use it without an HTTP client. Every SSE
event an agent receives is a :class:`~stampede.records.websocket.ReceivedMessage`
(``connection`` numbers the agent's streams from 1, ``leg`` the resumes of one
stream, ``type`` is the SSE event name, ``seq`` the event's sequence number), so
the contamination and ordering checkers judge SSE streams as they judge
WebSocket sessions.

Statuses are Stampede's words (:class:`RunStatus`); the protocol maps each
service's own words onto them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from .websocket import MessageLog


class RunPolicy(StrEnum):
    """What a service promises to do with a run started while another is active on the same thread."""

    REJECT = "reject"
    """Refuse the newcomer; the active run goes on."""
    ENQUEUE = "enqueue"
    """Start the newcomer after every run before it has ended."""
    INTERRUPT = "interrupt"
    """Stop the active run where it is (its effects so far stay), then start the newcomer."""
    ROLLBACK = "rollback"
    """Stop the active run and remove its effects, then start the newcomer."""


class RunStatus(StrEnum):
    """How a run ended, as the service reported it (on its stream, in a wait answer, or in its run list)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


class HttpFailure(StrEnum):
    """Why a run request did not end with its run's terminal event (``RunAttempt.failure``)."""

    CONNECT_FAILED = "connect_failed"
    """No HTTP connection: refused, unknown host, TLS error."""
    UNAUTHORIZED = "unauthorized"
    """401 or 403 on the request: the token (or its claims) was refused."""
    REFUSED = "refused"
    """The start request was answered with one of the protocol's refusal statuses (e.g. 409 under reject)."""
    HTTP_ERROR = "http_error"
    """Another error status, before any event."""
    STREAM_ERROR = "stream_error"
    """The service sent its error event, or a 5xx arrived mid-stream."""
    BAD_EVENT = "bad_event"
    """An event whose ``data`` is not JSON, or a field path of the protocol matched nothing in it."""
    CUT = "cut"
    """The stream ended (or the connection dropped) before the run's terminal event, and could not be resumed."""
    TIMEOUT = "timeout"
    """No terminal event within the run timeout."""


@dataclass(frozen=True)
class ThreadMessage:
    """One entry of a thread's message list: its id and, where the service says, the run and marker it came from."""

    id: str
    run_id: str | None = None
    marker: str | None = None


@dataclass
class RunAttempt:
    """One request to start a run: who asked, on which thread, what the service answered, how the run ended.

    Times are monotonic ns on the agent's clock. ``status`` is the HTTP status
    of the start request (None when no response came). ``messages`` are the
    ids of the messages the run's stream (or its wait answer) reported it
    appended, in order. ``started_ns`` is when the event saying the run started
    arrived; ``first_event_ns`` when any first event arrived (startup latency);
    ``end_ns`` when the run's terminal event, its wait answer or its refusal arrived.
    """

    agent: int
    user: str
    thread: str
    marker: str
    policy: RunPolicy
    request_ns: int
    stream: int = 1
    status: int | None = None
    run_id: str | None = None
    first_event_ns: int | None = None
    started_ns: int | None = None
    end_ns: int | None = None
    outcome: RunStatus | None = None
    messages: list[str] = field(default_factory=list)
    failure: HttpFailure | None = None
    detail: str | None = None

    @property
    def accepted(self) -> bool:
        """The service took the run: a success status and no refusal."""
        return self.status is not None and 200 <= self.status < 300 and self.failure is not HttpFailure.REFUSED

    @property
    def refused(self) -> bool:
        return self.failure is HttpFailure.REFUSED

    def describe(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "user": self.user,
            "thread": self.thread,
            "run id": self.run_id,
            "policy": self.policy.value,
            "HTTP status": self.status,
            "outcome": self.outcome.value if self.outcome else None,
            "messages": len(self.messages),
            "failure": self.failure.value if self.failure else None,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ThreadRead:
    """One read of a thread's message list during the launch (``source`` says which request: state or history)."""

    agent: int
    user: str
    thread: str
    start_ns: int
    end_ns: int
    status: int | None
    messages: tuple[ThreadMessage, ...] | None
    source: str = "state"


@dataclass(frozen=True)
class ServiceRun:
    """A run as the service's own run list reports it after the launch.

    ``marker`` is the marker the run was started with, and ``started_at`` and
    ``ended_at`` when it became the thread's active run and when it ended, in
    seconds on the service's own clock (Unix seconds, say), where the run list
    gives them (None otherwise).
    """

    run_id: str
    thread: str
    status: RunStatus | None
    raw_status: Any = None
    marker: str | None = None
    started_at: float | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class ThreadFinal:
    """A thread after the launch: its owner, its message list, the service's run list, and its history if read."""

    thread: str
    owner: str
    messages: tuple[ThreadMessage, ...]
    runs: tuple[ServiceRun, ...] = ()
    history: tuple[tuple[ThreadMessage, ...], ...] | None = None


@dataclass(frozen=True)
class ForeignAccess:
    """One request a check made for another user's thread, and what the service answered."""

    user: str
    owner: str
    thread: str
    request: str
    status: int | None
    refused: bool
    detail: str | None = None


@runtime_checkable
class ThreadRunRecords(Protocol):
    """What the HTTP agent tool offers checkers: its records, and the two reads a check makes after a launch."""

    attempts: list[RunAttempt]
    reads: list[ThreadRead]
    messages: MessageLog
    policy: RunPolicy
    messages_per_run: int | None
    """How many messages a run that succeeds appends (from the protocol), or None when the service does not say."""
    refusal_statuses: Sequence[int]

    async def final_threads(self) -> list[ThreadFinal]:
        """Read every thread the launch used: state, run list and (when the protocol has it) history."""
        ...

    async def probe_foreign_access(self) -> list[ForeignAccess]:
        """For each user, ask for another user's thread (state, history, a run) with the user's own token."""
        ...


def missing_thread_records(tool: object) -> list[str]:
    """The members of :class:`ThreadRunRecords` that ``tool`` lacks (none: the thread checks can judge it)."""
    methods = [name for name, value in vars(ThreadRunRecords).items() if callable(value) and not name.startswith("_")]
    return [name for name in [*ThreadRunRecords.__annotations__, *methods] if not hasattr(tool, name)]


def marker_owners(attempts: Iterable[RunAttempt]) -> dict[str, str]:
    """Each run's marker → the user who asked for it, so the contamination check lets one user's runs share."""
    return {attempt.marker: attempt.user for attempt in attempts}
