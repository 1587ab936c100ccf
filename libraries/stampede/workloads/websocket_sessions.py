"""Each agent's WebSocket session: opened as the protocol says, frames sent and read within bounds, then closed.

An agent's session opens on a new connection (its token in the hello frame, a
handshake header or the URL's query) and, when the protocol names a ready
event, once that event arrived. Every frame read goes to
:attr:`WebSocketSessions.messages`; every way a connection breaks becomes an
:class:`OperationFailed` carrying its :class:`~stampede.records.websocket.WsFailure`
code and what the service said. :meth:`WebSocketSessions.drop_and_resume`
cuts a connection as a network would and resumes the session on a new one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.exceptions import ProtocolError as FrameError

from ..agents import AgentContext
from ..records.websocket import MessageLog, ReceivedMessage, WsFailure, timeout_text
from .websocket_fields import FieldPathError, MessageFields, message_text
from .websocket_protocol import AuthMode, WebSocketProtocol
from .websocket_templates import render, render_text
from .websocket_values import PlaceholderValues

REFUSAL_CLOSES = range(4000, 5000)  # application close codes, as the reference service uses them
TOKEN_REFUSAL_CLOSES = frozenset({4401, 4403, 1008})
"""Closes that refuse the session wherever they come: unauthorized, forbidden, policy violation."""
# Credentials, not an LLM's tokens: "token_expired" and "invalid token" are refusals, "max_tokens_exceeded" is not.
_AUTH_ERROR = re.compile(
    r"auth|jwt|unauthori[sz]|forbidden|credential|signature|access.?denied"
    r"|(invalid|expired|bad|missing|refused|revoked).?token|token.?(invalid|expired|refused|missing|revoked)",
    re.IGNORECASE,
)
MESSAGE_TOO_BIG = 1009
CLOSE_SLACK_SECONDS = 1.0
"""Beyond the close timeout (the wait for the peer's close frame), time for the TCP close; then it is aborted."""
_BAD_DATA_CLOSES = frozenset({1002, 1007, MESSAGE_TOO_BIG})  # protocol error, invalid UTF-8, too big


class OperationFailed(Exception):
    """An operation that did not end with its run's done event; becomes an OpResult."""

    def __init__(self, failure: WsFailure, **details: Any) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.details = {key: value for key, value in details.items() if value is not None}


@dataclass
class AgentSession:
    """One agent's open session: its connection (``leg`` counts them), and what a resume needs."""

    ws: ClientConnection
    number: int
    leg: int = 1
    since_ns: int = 0
    session_id: Any = None
    resume_token: Any = None
    last_seq: Any = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.session_id, "since_ns": self.since_ns, "connection": self.number}


class WebSocketSessions:
    """The open session of each agent of one tool, and every frame its agents received in the latest launch.

    ``connect_timeout`` bounds opening the WebSocket; ``answer_timeout`` the
    wait for the ready event and for a frame to be sent; ``close_timeout``
    closing it. With ``resumable`` a session keeps the resume token of its
    ready event. Received messages keep ``raw_limit`` characters of their text;
    the log keeps at most ``max_messages``.
    """

    def __init__(
        self,
        protocol: WebSocketProtocol,
        values: PlaceholderValues,
        *,
        connect_timeout: float,
        answer_timeout: float,
        close_timeout: float,
        max_frame_bytes: int,
        raw_limit: int,
        max_messages: int,
        resumable: bool,
    ) -> None:
        self.protocol = protocol
        self.values = values
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.close_timeout = close_timeout
        self.max_frame_bytes = max_frame_bytes
        self.raw_limit = raw_limit
        self.resumable = resumable
        self.messages = MessageLog(max_messages)
        """Every frame agents received in the latest launch, in arrival order."""
        self.config_problems: list[str] = []
        """The first field-path error met for each path in the latest launch (the operations say ``field_missing``)."""
        self._problem_paths: set[str] = set()
        self._open: dict[int, AgentSession] = {}

    def new_launch(self) -> None:
        """Start the next launch with an empty message log and no problems met."""
        self.messages = MessageLog(self.messages.limit)
        self.config_problems = []
        self._problem_paths = set()

    @property
    def open_count(self) -> int:
        return len(self._open)

    def of(self, agent: AgentContext) -> AgentSession | None:
        """The agent's open session, if it has one."""
        return self._open.get(agent.agent)

    async def open(self, agent: AgentContext, timings: dict[str, int]) -> AgentSession:
        """Connect, authenticate and wait for the ready event; the time it took is the ``connect`` timing."""
        number = agent.state["sessions"] = agent.state.get("sessions", 0) + 1
        values = self.values.of(agent)
        started = time.monotonic_ns()
        session = AgentSession(await self._connect(values), number)
        self._open[agent.agent] = session
        try:
            if self.protocol.auth is AuthMode.HELLO:
                await self.send(session, render(self.protocol.hello, values))
            if self.protocol.ready_event is not None:
                ready, fields = await self._await_ready(agent, session)
                session.session_id = fields.session_id
                if self.resumable:
                    session.resume_token = self.protocol.resume_token_of(ready)
        except FieldPathError as error:
            raise self._field_missing(error) from None
        except OperationFailed:
            await self.forget(agent)
            raise
        session.since_ns = time.monotonic_ns()
        timings["connect"] = session.since_ns - started
        return session

    async def drop_and_resume(self, agent: AgentContext, session: AgentSession) -> None:
        """Drop the connection as a network would (no close frame), then resume the session on a new one."""
        session.ws.transport.abort()
        await self._close(session.ws)
        values = self.values.of(agent)
        try:
            session.ws = await self._connect(values)
        except OperationFailed as failed:
            raise OperationFailed(WsFailure.RESUME_FAILED, **failed.details) from None
        session.leg += 1
        await self.send(
            session,
            render(
                self.protocol.resume,
                {**values, "resume_token": session.resume_token, "last_seq": session.last_seq or 0},
            ),
        )

    async def forget(self, agent: AgentContext) -> None:
        """Close the agent's session, if it has one: its next operation opens a new one."""
        session = self._open.pop(agent.agent, None)
        if session is not None:
            await self._close(session.ws)

    async def close_all(self) -> None:
        sessions, self._open = list(self._open.values()), {}
        await asyncio.gather(*(self._close(session.ws) for session in sessions))

    # Frames

    async def send(self, session: AgentSession, message: Any) -> None:
        try:
            async with asyncio.timeout(self.answer_timeout):
                await session.ws.send(message if isinstance(message, str) else json.dumps(message))
        except ConnectionClosed as closed:
            raise self._closure(closed, session.ws) from None
        except TimeoutError:
            raise OperationFailed(
                WsFailure.NO_ANSWER,
                waited_s=self.answer_timeout,
                reason="the service did not take the frame (the send did not finish)",
            ) from None

    async def receive(
        self, agent: AgentContext, session: AgentSession, timeout: float
    ) -> tuple[Any, MessageFields, ReceivedMessage]:
        """The next frame, logged: its JSON, its configured fields and its log entry."""
        try:
            async with asyncio.timeout(timeout):
                frame = await session.ws.recv()
        except ConnectionClosed as closed:
            raise self._closure(closed, session.ws) from None
        received_ns = time.monotonic_ns()
        text = frame if isinstance(frame, str) else frame.decode("utf-8", errors="replace")
        entry = ReceivedMessage(
            agent.agent,
            agent.user,
            session.number,
            received_ns,
            text[: self.raw_limit],
            own_marker=agent.marker,
            leg=session.leg,
        )
        try:
            message = json.loads(text)
        except ValueError:
            self.messages.append(entry)
            raise OperationFailed(
                WsFailure.BAD_FRAME,
                frame=text[:200],
                reason=f"the service sent a frame that is not JSON ({len(text)} characters)",
            ) from None
        try:
            fields = self.protocol.fields_of(message)
        except FieldPathError as error:
            self.messages.append(entry)
            raise self._field_missing(error) from None
        entry.type, entry.seq, entry.user_id, entry.marker = fields.type, fields.seq, fields.user, fields.marker
        entry.run_id, entry.request, entry.session_id = fields.run_id, fields.request, fields.session_id
        self.messages.append(entry)
        if fields.seq is not None:
            session.last_seq = fields.seq
        return message, fields, entry

    # Opening and closing

    async def _connect(self, values: dict[str, Any]) -> ClientConnection:
        protocol, headers, url = self.protocol, None, self.protocol.url
        token = values.get("token")
        if protocol.auth is AuthMode.QUERY:
            url += ("&" if "?" in url else "?") + urlencode({protocol.query_param: token})
        elif protocol.auth is AuthMode.HEADER:
            headers = {protocol.header_name: render_text(protocol.header_value, values)}
        try:
            return await connect(
                url,
                additional_headers=headers,
                open_timeout=self.connect_timeout,
                close_timeout=self.close_timeout,
                max_size=self.max_frame_bytes,
                proxy=None,
                compression=None,
            )
        except TimeoutError:
            raise OperationFailed(
                WsFailure.CONNECT_TIMEOUT,
                waited_s=self.connect_timeout,
                reason=f"the opening handshake with {protocol.url} took longer than "
                f"{timeout_text(self.connect_timeout)}",
            ) from None
        except InvalidStatus as error:
            status = error.response.status_code
            failure = WsFailure.REFUSED if status in (401, 403) else WsFailure.CONNECT_FAILED
            raise OperationFailed(
                failure, code=f"http_{status}", reason=f"{protocol.url} answered the handshake with HTTP {status}"
            ) from None
        except (OSError, InvalidHandshake, InvalidURI) as error:
            reason = _scrub(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__, token)
            raise OperationFailed(WsFailure.CONNECT_FAILED, reason=f"cannot open {protocol.url}: {reason}") from None

    async def _await_ready(self, agent: AgentContext, session: AgentSession) -> tuple[Any, MessageFields]:
        """Read until the ready event; an error event or a close before it is a refusal."""
        protocol = self.protocol
        deadline = time.monotonic() + self.answer_timeout
        answered = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                message, fields, _ = await self.receive(agent, session, left)
            except TimeoutError:
                break
            except OperationFailed as failed:
                if failed.failure is WsFailure.CLOSED and failed.details.get("close_code") in REFUSAL_CLOSES:
                    raise OperationFailed(WsFailure.REFUSED, **failed.details) from None
                raise
            answered = fields.type
            if fields.type == protocol.ready_event:
                return message, fields
            if fields.type in protocol.error_events:
                raise OperationFailed(WsFailure.REFUSED, code=fields.error_code, message=message_text(message))
        if answered is None:
            waited = timeout_text(self.answer_timeout)
            raise OperationFailed(
                WsFailure.NO_ANSWER,
                waited_s=self.answer_timeout,
                reason=f"connected, but no answer to the hello within {waited}",
            )
        raise OperationFailed(
            WsFailure.INCOMPLETE,
            waited_s=self.answer_timeout,
            reason=f"answered ({answered}), but no {protocol.ready_event} within {timeout_text(self.answer_timeout)}",
        )

    async def _close(self, ws: ClientConnection) -> None:
        try:
            async with asyncio.timeout(self.close_timeout + CLOSE_SLACK_SECONDS):
                await ws.close()
        except (TimeoutError, OSError, ConnectionClosed):
            ws.transport.abort()

    # What went wrong

    def _closure(self, closed: ConnectionClosed, ws: ClientConnection) -> OperationFailed:
        if closed.rcvd is not None and closed.rcvd.code in TOKEN_REFUSAL_CLOSES:
            return OperationFailed(WsFailure.REFUSED, close_code=closed.rcvd.code, reason=closed.rcvd.reason or None)
        if closed.rcvd is not None:
            return OperationFailed(WsFailure.CLOSED, close_code=closed.rcvd.code, reason=closed.rcvd.reason or None)
        cause = ws.protocol.parser_exc or closed.__cause__
        if closed.sent is not None and closed.sent.code in _BAD_DATA_CLOSES:
            why = (
                f"a frame larger than {self.max_frame_bytes} bytes"
                if closed.sent.code == MESSAGE_TOO_BIG
                else f"a frame the client could not read ({cause or closed.sent.reason})"
            )
            return OperationFailed(WsFailure.BAD_FRAME, close_code=closed.sent.code, reason=f"the service sent {why}")
        if isinstance(cause, EOFError):
            return OperationFailed(
                WsFailure.BAD_FRAME, reason=f"the service closed the connection mid-message ({cause})"
            )
        if isinstance(cause, FrameError):
            return OperationFailed(WsFailure.BAD_FRAME, reason=f"the service sent a malformed frame ({cause})")
        return OperationFailed(WsFailure.CONNECTION_LOST, reason="the connection ended without a close frame")

    def _field_missing(self, error: FieldPathError) -> OperationFailed:
        if error.path not in self._problem_paths:
            self._problem_paths.add(error.path)
            self.config_problems.append(str(error))
        return OperationFailed(WsFailure.FIELD_MISSING, problem=str(error))


def refuses_the_token(code: Any, message: str | None) -> bool:
    """Whether an error event's code or message says the service refused the user's credentials."""
    return bool(_AUTH_ERROR.search(f"{code or ''} {message or ''}"))


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
