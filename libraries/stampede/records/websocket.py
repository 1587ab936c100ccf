"""What the WebSocket agent tool records besides the history: every message it received, and its failure codes.

Plain data, so checkers and tests use it without a WebSocket client. The tool
keeps the received messages in a :class:`MessageLog` (bounded: a message keeps
its extracted fields and at most ``raw_limit`` characters of its text), and
writes each operation's session into ``Operation.read["session"]`` so checkers
can work from a saved history too.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from ..errors import ConfigurationError
from ..outcomes import Outcome

SESSION_KEY = "session"
"""``Operation.read[SESSION_KEY]``: ``{"id": ..., "since_ns": ..., "connection": n}`` of the session the op used."""

FIRST_EVENT_KEY = "first_event_ns"
DONE_KEY = "done_ns"
"""``Operation.read`` keys: when the run's first event and its done event arrived (monotonic ns)."""


def timeout_text(seconds: float) -> str:
    """A configured bound as written: ``10 s``, ``0.5 s``."""
    return f"{seconds:g} s"


class WsFailure(StrEnum):
    """``Operation.error`` of a WebSocket agent operation that did not end with its run's done event."""

    CONNECT_FAILED = "connect_failed"
    """The WebSocket could not be opened: refused, unknown host, an HTTP error status."""
    CONNECT_TIMEOUT = "connect_timeout"
    """The opening handshake did not finish within the connect timeout."""
    REFUSED = "refused"
    """The service refused the session or the user's token: an error event or a close in answer to the hello,
    HTTP 401/403 on the handshake, a close 4401, 4403 or 1008 at any time, or an error event that names the
    credentials (its code or message speaks of auth, a token, a signature, permission...)."""
    NO_ANSWER = "no_answer"
    """Connected and sent, but nothing for this request came back within the answer timeout."""
    INCOMPLETE = "incomplete"
    """Answered, then no done event within the run timeout."""
    RUN_FAILED = "run_failed"
    """The run ended with a failure event (``agent_failed``)."""
    REJECTED = "rejected"
    """The service answered the request with an error event."""
    BAD_FRAME = "bad_frame"
    """A frame that is not JSON, too large, or cut off by the server closing mid-message."""
    CLOSED = "closed"
    """The server closed the connection (with a close frame) before the run was done."""
    CONNECTION_LOST = "connection_lost"
    """The connection ended without a close frame, between frames."""
    RESUME_FAILED = "resume_failed"
    """After a deliberate drop, the session could not be resumed."""
    FIELD_MISSING = "field_missing"
    """A field path of the protocol configuration matched nothing in a received message."""

    @property
    def outcome(self) -> Outcome:
        return Outcome.TIMEOUT if self in _TIMEOUTS else Outcome.ERROR


REFUSAL_CAUSES = (
    "the service refused the users' sessions; if it refused their token, check the secret it verifies tokens "
    "with (${AGENT_SERVICE_JWT_SECRET} or STAMPEDE_AGENT_JWT_SECRET), the token's claims (the protocol's "
    '"token": subject_claim, issuer, audience, claims, algorithm), the auth mode (hello, header or query) and '
    "where the token goes (the hello template, header_name and header_value, or query_param)"
)
"""What to look at when sessions were refused: the verdicts of every check that meets a refusal say it."""

_TIMEOUTS = frozenset({WsFailure.CONNECT_TIMEOUT, WsFailure.NO_ANSWER, WsFailure.INCOMPLETE})

NOT_CONNECTED = frozenset({WsFailure.CONNECT_FAILED, WsFailure.CONNECT_TIMEOUT})
"""Failures that mean the agent never had an open WebSocket."""


class ReceivedMessage:
    """One frame an agent received: who got it, on which connection, when, and the fields the protocol names.

    ``connection`` numbers an agent's sessions from 1; ``leg`` numbers the
    WebSocket connections within a session (a resume after a drop starts leg 2).
    Field values are as received (None when absent or not configured);
    ``own_marker`` is the marker the receiving agent sends.
    """

    __slots__ = (
        "agent",
        "connection",
        "leg",
        "marker",
        "own_marker",
        "raw",
        "request",
        "run_id",
        "seq",
        "session_id",
        "t_ns",
        "type",
        "user",
        "user_id",
    )

    def __init__(
        self,
        agent: int,
        user: str,
        connection: int,
        t_ns: int,
        raw: str,
        *,
        own_marker: str = "",
        leg: int = 1,
        type: Any = None,
        seq: Any = None,
        user_id: Any = None,
        marker: Any = None,
        run_id: Any = None,
        request: Any = None,
        session_id: Any = None,
    ) -> None:
        self.agent = agent
        self.user = user
        self.connection = connection
        self.leg = leg
        self.t_ns = t_ns
        self.raw = raw
        self.own_marker = own_marker
        self.type = type
        self.seq = seq
        self.user_id = user_id
        self.marker = marker
        self.run_id = run_id
        self.request = request
        self.session_id = session_id

    @property
    def stream(self) -> tuple[int, int]:
        """(agent, connection): one session's frames, across the legs of a resume."""
        return self.agent, self.connection

    @property
    def carries_other_user(self) -> bool:
        return self.user_id is not None and str(self.user_id) != self.user

    @property
    def carries_other_marker(self) -> bool:
        return self.marker is not None and str(self.marker) != self.own_marker

    @property
    def mine(self) -> bool:
        """Whether the message carries no user id or marker other than the receiving agent's own."""
        return not (self.carries_other_user or self.carries_other_marker)

    def describe(self) -> dict[str, Any]:
        """The message as a report row."""
        return {
            "agent": self.agent,
            "user": self.user,
            "connection": self.connection,
            "leg": self.leg,
            "type": self.type,
            "seq": self.seq,
            "user id in message": self.user_id,
            "marker in message": self.marker,
            "run id": self.run_id,
            "message": self.raw,
        }

    def __repr__(self) -> str:
        return (
            f"ReceivedMessage(agent={self.agent}, user={self.user!r}, connection={self.connection}, "
            f"leg={self.leg}, type={self.type!r}, seq={self.seq!r})"
        )


class MessageLog:
    """The messages agents received, in arrival order, kept up to ``limit``; ``left_out`` counts the rest."""

    def __init__(self, limit: int = 200_000) -> None:
        if limit < 1:
            raise ConfigurationError(f"the message log must keep at least 1 message, got {limit}")
        self.limit = limit
        self.left_out = 0
        self._messages: list[ReceivedMessage] = []

    def append(self, message: ReceivedMessage) -> None:
        if len(self._messages) < self.limit:
            self._messages.append(message)
        else:
            self.left_out += 1

    def clear(self) -> None:
        self._messages.clear()
        self.left_out = 0

    def __iter__(self) -> Iterator[ReceivedMessage]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, index: int) -> ReceivedMessage:
        return self._messages[index]
