"""WebSocket agent sessions: each agent is one user who connects, authenticates and runs agent runs.

An agent opens its WebSocket (in its first operation, so the launch's load
shape paces connecting; or before the start barrier with ``connect_early``),
authenticates as the protocol says, and then each operation sends one run's
frame (the ``start`` template first, the ``message`` template after a run
succeeded) and reads events until the run's done event, a failure, or a
timeout. What each operation records:

- ``timings``: ``connect`` (opening + authenticating, in the operation that
  did it), ``first_event`` (send → the run's first event: startup latency),
  ``run`` (send → done), ``resume`` (drop → resumed, with ``drop_after_events``).
- ``written``: the request id, the template used (``start``/``message``), the
  marker, the thread and the frame's size.
- ``read``: the session (``{"id", "since_ns", "connection"}``, see
  :data:`SESSION_KEY`), the run's events (count, types, run id), messages
  for other users seen meanwhile (``foreign``), the connection's ``legs``,
  when the run's first and done events arrived (``first_event_ns``,
  ``done_ns``: monotonic ns), and for a failure what the service said (``code``, ``message``,
  ``close_code``, ``reason``, ``waited_s``, ``problem``, ``frame``).
- ``error``: a :class:`WsFailure` code when the run was not done.

Every received frame goes to :attr:`WebSocketAgentTool.messages` (a fresh
:class:`MessageLog` per launch) for the checkers. Every wait is bounded; a
connection is closed when its agent closes, and teardown closes any left.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.exceptions import ProtocolError as FrameError

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..records.websocket import (
    DONE_KEY,
    FIRST_EVENT_KEY,
    SESSION_KEY,
    MessageLog,
    ReceivedMessage,
    WsFailure,
    timeout_text,
)
from .websocket_fields import FieldPathError, MessageFields
from .websocket_protocol import AuthMode, WebSocketProtocol
from .websocket_templates import render, render_text

TokenSource = Callable[[str], str] | Mapping[str, str] | str
"""A user's token: a function of the user id, a mapping user id → token, or one token for every user."""

TYPES_KEPT = 12  # event types listed per operation in ``read``
REFUSAL_CLOSES = range(4000, 5000)  # application close codes, as the reference service uses them
MESSAGE_TOO_BIG = 1009
_BAD_DATA_CLOSES = frozenset({1002, 1007, MESSAGE_TOO_BIG})  # protocol error, invalid UTF-8, too big


class _Failed(Exception):
    """An operation that did not end with its run's done event; becomes an OpResult."""

    def __init__(self, failure: WsFailure, **details: Any) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.details = {key: value for key, value in details.items() if value is not None}


@dataclass
class _Session:
    ws: ClientConnection
    number: int
    leg: int = 1
    since_ns: int = 0
    session_id: Any = None
    resume_token: Any = None
    last_seq: Any = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.session_id, "since_ns": self.since_ns, "connection": self.number}


class WebSocketAgentTool(BaseTool):
    """Agents as users of a WebSocket agent service, talking the ``protocol`` (see the module documentation).

    ``tokens`` gives each user's token (needed when the protocol uses one).
    ``connect_timeout`` bounds opening the WebSocket; ``answer_timeout`` the wait
    for the first answer (to the hello, and to each run's frame);
    ``run_timeout`` the wait from sending a run's frame to its done event.
    ``context_bytes`` sizes the ``{context}`` placeholder. ``drop_after_events``
    drops the connection after that many events of every run and resumes the
    session on a new one. Received messages keep ``raw_limit`` characters of
    their text; the log keeps at most ``max_messages``.
    """

    def __init__(
        self,
        protocol: WebSocketProtocol,
        *,
        tokens: TokenSource | None = None,
        name: str = "websocket_agents",
        connect_timeout: float = 10.0,
        answer_timeout: float = 10.0,
        run_timeout: float = 30.0,
        context_bytes: int = 2048,
        connect_early: bool = False,
        drop_after_events: int | None = None,
        raw_limit: int = 256,
        max_messages: int = 200_000,
        max_frame_bytes: int = 4 * 2**20,
        close_timeout: float = 2.0,
        runs_at_once: int = 1,
    ) -> None:
        for what, seconds in (
            ("connect timeout", connect_timeout),
            ("answer timeout", answer_timeout),
            ("run timeout", run_timeout),
            ("close timeout", close_timeout),
        ):
            if not seconds > 0:
                raise ConfigurationError(f"The WebSocket {what} must be longer than 0 s, got {seconds!r} s")
        if answer_timeout > run_timeout:
            raise ConfigurationError(
                f"The answer timeout ({answer_timeout:g} s) cannot be longer than the run "
                f"timeout ({run_timeout:g} s): a run's first answer is part of the run"
            )
        for what, count, low in (
            ("context size", context_bytes, 0),
            ("raw_limit", raw_limit, 0),
            ("max_frame_bytes", max_frame_bytes, 1024),
        ):
            if isinstance(count, bool) or not isinstance(count, int) or count < low:
                raise ConfigurationError(
                    f"The WebSocket {what} must be a whole number of at least {low}, got {count!r}"
                )
        if isinstance(runs_at_once, bool) or not isinstance(runs_at_once, int) or runs_at_once < 1:
            raise ConfigurationError(f"runs_at_once must be a whole number of at least 1, got {runs_at_once!r}")
        if runs_at_once > 1 and drop_after_events is not None:
            raise ConfigurationError(
                "Give either runs_at_once (several runs per operation) or drop_after_events "
                "(a dropped connection within a run), not both"
            )
        if drop_after_events is not None:
            if isinstance(drop_after_events, bool) or not isinstance(drop_after_events, int) or drop_after_events < 1:
                raise ConfigurationError(
                    f"drop_after_events must be a number of events of at least 1, got {drop_after_events!r}"
                )
            if not protocol.can_resume:
                raise ConfigurationError(
                    "Dropping connections needs a protocol that can resume: give it a resume "
                    "template, a ready_event and fields.resume_token (read from that event)"
                )
        if protocol.needs_token(resuming=drop_after_events is not None) and tokens is None:
            raise ConfigurationError(
                f"The WebSocket protocol for {protocol.url} sends a token "
                f"(auth {protocol.auth.value}): give tokens (a function of the user id, a "
                "mapping user id → token, or one token)"
            )
        self.protocol = protocol
        self.name = name
        self.tokens = tokens
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.run_timeout = run_timeout
        self.close_timeout = close_timeout
        self.context_bytes = context_bytes
        self.connect_early = connect_early
        self.drop_after_events = drop_after_events
        self.runs_at_once = runs_at_once
        self.raw_limit = raw_limit
        self.max_frame_bytes = max_frame_bytes
        self.messages = MessageLog(max_messages)
        """Every frame agents received in the latest launch, in arrival order."""
        self.marker_owners: dict[str, str] = {}
        """Marker → the user whose agent sends it (for the contamination check)."""
        self.config_problems: list[str] = []
        """The first field-path error met for each path in the latest launch (the operations say ``field_missing``)."""
        self._problem_paths: set[str] = set()
        self._sessions: dict[int, _Session] = {}

    @property
    def operation_bound(self) -> float:
        """Seconds one operation can take at most: the launch's operation timeout should be longer."""
        resume = self.connect_timeout + self.answer_timeout if self.drop_after_events else 0.0
        return self.connect_timeout + self.answer_timeout + self.run_timeout + resume + self.close_timeout

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            **self.protocol.describe(),
            "connect timeout": timeout_text(self.connect_timeout),
            "answer timeout": timeout_text(self.answer_timeout),
            "run timeout": timeout_text(self.run_timeout),
            "context size": f"{self.context_bytes} bytes",
            "connects": "before the start barrier" if self.connect_early else "in its first operation",
            "drops the connection": f"after {self.drop_after_events} events of each run"
            if self.drop_after_events
            else "never",
        }

    # Launch hooks

    async def setup(self, agents: int) -> None:
        self.messages = MessageLog(self.messages.limit)
        self.marker_owners = {}
        self.config_problems = []
        self._problem_paths = set()

    async def open_agent(self, agent: AgentContext) -> None:
        self.marker_owners[agent.marker] = agent.user
        if self.connect_early:
            timings: dict[str, int] = {}
            try:
                await self._open_session(agent, timings)
                agent.state["early"] = timings
            except _Failed as failed:
                agent.state["early"] = failed

    async def run(self, agent: AgentContext) -> OpResult:
        timings: dict[str, int] = {}
        try:
            early = agent.state.pop("early", None)
            if isinstance(early, _Failed):
                raise early
            if early is not None:
                timings.update(early)
            session = self._sessions.get(agent.agent) or await self._open_session(agent, timings)
            return await self._run_once(agent, session, timings)
        except _Failed as failed:
            return await self._failed(agent, failed, timings)

    async def close_agent(self, agent: AgentContext) -> None:
        session = self._sessions.pop(agent.agent, None)
        if session is not None:
            await self._close(session.ws)

    async def teardown(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(self._close(session.ws) for session in sessions))

    # Connecting

    async def _open_session(self, agent: AgentContext, timings: dict[str, int]) -> _Session:
        number = agent.state["sessions"] = agent.state.get("sessions", 0) + 1
        values = self._values(agent)
        started = time.monotonic_ns()
        session = _Session(await self._connect(values), number)
        self._sessions[agent.agent] = session
        try:
            if self.protocol.auth is AuthMode.HELLO:
                await self._send(session, render(self.protocol.hello, values))
            if self.protocol.ready_event is not None:
                ready, fields = await self._await_ready(agent, session)
                session.session_id = fields.session_id
                if self.drop_after_events:
                    session.resume_token = self.protocol.resume_token_of(ready)
        except FieldPathError as error:
            raise self._field_missing(error) from None
        except _Failed:
            await self._forget(agent)
            raise
        session.since_ns = time.monotonic_ns()
        timings["connect"] = session.since_ns - started
        return session

    async def _connect(self, values: Mapping[str, Any]) -> ClientConnection:
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
            raise _Failed(
                WsFailure.CONNECT_TIMEOUT,
                waited_s=self.connect_timeout,
                reason=f"the opening handshake with {protocol.url} took longer than "
                f"{timeout_text(self.connect_timeout)}",
            ) from None
        except InvalidStatus as error:
            status = error.response.status_code
            failure = WsFailure.REFUSED if status in (401, 403) else WsFailure.CONNECT_FAILED
            raise _Failed(
                failure, code=f"http_{status}", reason=f"{protocol.url} answered the handshake with HTTP {status}"
            ) from None
        except (OSError, InvalidHandshake, InvalidURI) as error:
            reason = _scrub(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__, token)
            raise _Failed(WsFailure.CONNECT_FAILED, reason=f"cannot open {protocol.url}: {reason}") from None

    async def _await_ready(self, agent: AgentContext, session: _Session) -> tuple[Any, MessageFields]:
        """Read until the ready event; an error event or a close before it is a refusal."""
        protocol = self.protocol
        deadline = time.monotonic() + self.answer_timeout
        answered = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                message, fields, _ = await self._receive(agent, session, left)
            except TimeoutError:
                break
            except _Failed as failed:
                if failed.failure is WsFailure.CLOSED and failed.details.get("close_code") in REFUSAL_CLOSES:
                    raise _Failed(WsFailure.REFUSED, **failed.details) from None
                raise
            answered = fields.type
            if fields.type == protocol.ready_event:
                return message, fields
            if fields.type in protocol.error_events:
                raise _Failed(WsFailure.REFUSED, code=fields.error_code, message=_text_of(message))
        if answered is None:
            waited = timeout_text(self.answer_timeout)
            raise _Failed(
                WsFailure.NO_ANSWER,
                waited_s=self.answer_timeout,
                reason=f"connected, but no answer to the hello within {waited}",
            )
        raise _Failed(
            WsFailure.INCOMPLETE,
            waited_s=self.answer_timeout,
            reason=f"answered ({answered}), but no {protocol.ready_event} within {timeout_text(self.answer_timeout)}",
        )

    # Running

    async def _run_once(self, agent: AgentContext, session: _Session, timings: dict[str, int]) -> OpResult:
        """Start one run (or ``runs_at_once`` runs on threads of their own) and read until every one is done."""
        protocol = self.protocol
        together = self.runs_at_once > 1
        first = not agent.state.get("started") or protocol.message is None or together
        requests = [
            f"{agent.marker}-{agent.iteration}" + (f"-{k}" if together else "") for k in range(1, self.runs_at_once + 1)
        ]
        frames = []
        for request in requests:
            values = self._values(agent, request=request)
            if together:
                values["thread"] = f"thread-{agent.agent}-{request}"
            frames.append(json.dumps(render(protocol.start if first else protocol.message, values)))
        written = {
            "request": requests[0] if not together else requests,
            "template": "start" if first else "message",
            "marker": agent.marker,
            "thread": values["thread"],
            "bytes": sum(len(f.encode()) for f in frames),
        }
        progress: dict[str, Any] = {"events": 0, "types": [], "foreign": 0}
        sent = time.monotonic_ns()
        try:
            for frame in frames:
                await self._send(session, frame)
            done = await self._read_run(agent, session, set(requests), sent, progress, timings)
        except _Failed as failed:
            failed.details = {**progress, **failed.details}
            failed.details["written"] = written
            raise
        timings["run"] = done - sent
        agent.state["started"] = True
        return OpResult(read=self._read_of(session, progress), written=written, timings=timings)

    async def _read_run(
        self,
        agent: AgentContext,
        session: _Session,
        requests: set[str],
        sent: int,
        progress: dict[str, Any],
        timings: dict[str, int],
    ) -> int:
        """Read until the done event of every run in ``requests``; return when the last arrived (monotonic ns)."""
        protocol = self.protocol
        resuming: int | None = None
        while True:
            message, fields, received = await self._next_run_frame(agent, session, sent, progress, resuming)
            if not received.mine:
                progress["foreign"] += 1
                continue
            if resuming is not None and fields.type == protocol.resumed_event:
                timings["resume"] = received.t_ns - resuming
                resuming = None
                continue
            ours = protocol.fields.request is None or fields.request in requests
            if fields.type in protocol.error_events and (fields.request is None or ours):
                failure = WsFailure.RESUME_FAILED if resuming is not None else WsFailure.REJECTED
                raise _Failed(failure, code=fields.error_code, message=_text_of(message))
            if fields.type not in protocol.run_event_types or not ours:
                continue
            progress["events"] += 1
            if len(progress["types"]) < TYPES_KEPT:
                progress["types"].append(fields.type)
            progress["run_id"] = fields.run_id
            if "first_event" not in timings:
                timings["first_event"] = received.t_ns - sent
                progress[FIRST_EVENT_KEY] = received.t_ns
            if fields.type in protocol.done_events:
                requests.discard(fields.request)
                if requests and protocol.fields.request is not None:
                    continue
                progress[DONE_KEY] = received.t_ns
                return received.t_ns
            if fields.type in protocol.failed_events:
                raise _Failed(WsFailure.RUN_FAILED, code=fields.error_code, message=_text_of(message))
            if progress["events"] == self.drop_after_events and resuming is None:
                resuming = time.monotonic_ns()
                await self._drop_and_resume(agent, session)
                if protocol.resumed_event is None:
                    timings["resume"] = time.monotonic_ns() - resuming
                    resuming = None

    async def _next_run_frame(
        self, agent: AgentContext, session: _Session, sent: int, progress: dict[str, Any], resuming: int | None
    ) -> tuple[Any, MessageFields, ReceivedMessage]:
        """The next frame within the run's deadlines: the answer timeout until its first event, then the run timeout."""
        answer_by = sent + int(self.answer_timeout * 1e9)
        done_by = sent + int(self.run_timeout * 1e9)
        while (left := ((done_by if progress["events"] else min(answer_by, done_by)) - time.monotonic_ns())) > 0:
            try:
                return await self._receive(agent, session, left / 1e9)
            except TimeoutError:
                continue
            except _Failed as failed:
                if resuming is not None and failed.failure in (WsFailure.CLOSED, WsFailure.CONNECTION_LOST):
                    raise _Failed(WsFailure.RESUME_FAILED, **failed.details) from None
                raise
        raise self._timed_out(progress)

    def _timed_out(self, progress: dict[str, Any]) -> _Failed:
        if progress["events"]:
            done = " or ".join(self.protocol.done_events)
            return _Failed(
                WsFailure.INCOMPLETE,
                waited_s=self.run_timeout,
                reason=f"{progress['events']} event(s) of the run, then no {done} "
                f"within {timeout_text(self.run_timeout)} of sending",
            )
        return _Failed(
            WsFailure.NO_ANSWER,
            waited_s=self.answer_timeout,
            reason=f"no event of the run within {timeout_text(self.answer_timeout)} of sending",
        )

    async def _drop_and_resume(self, agent: AgentContext, session: _Session) -> None:
        """Drop the connection as a network would (no close frame), then resume the session on a new one."""
        session.ws.transport.abort()
        await self._close(session.ws)
        values = self._values(agent)
        try:
            session.ws = await self._connect(values)
        except _Failed as failed:
            raise _Failed(WsFailure.RESUME_FAILED, **failed.details) from None
        session.leg += 1
        await self._send(
            session,
            render(
                self.protocol.resume,
                {**values, "resume_token": session.resume_token, "last_seq": session.last_seq or 0},
            ),
        )

    # Frames

    async def _send(self, session: _Session, message: Any) -> None:
        try:
            await asyncio.wait_for(
                session.ws.send(message if isinstance(message, str) else json.dumps(message)), self.answer_timeout
            )
        except ConnectionClosed as closed:
            raise self._closure(closed, session.ws) from None
        except TimeoutError:
            raise _Failed(
                WsFailure.NO_ANSWER,
                waited_s=self.answer_timeout,
                reason="the service did not take the frame (the send did not finish)",
            ) from None

    async def _receive(
        self, agent: AgentContext, session: _Session, timeout: float
    ) -> tuple[Any, MessageFields, ReceivedMessage]:
        """The next frame, logged: its JSON, its configured fields and its log entry."""
        try:
            frame = await asyncio.wait_for(session.ws.recv(), timeout)
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
            raise _Failed(
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

    def _closure(self, closed: ConnectionClosed, ws: ClientConnection) -> _Failed:
        if closed.rcvd is not None:
            return _Failed(WsFailure.CLOSED, close_code=closed.rcvd.code, reason=closed.rcvd.reason or None)
        cause = ws.protocol.parser_exc or closed.__cause__
        if closed.sent is not None and closed.sent.code in _BAD_DATA_CLOSES:
            why = (
                f"a frame larger than {self.max_frame_bytes} bytes"
                if closed.sent.code == MESSAGE_TOO_BIG
                else f"a frame the client could not read ({cause or closed.sent.reason})"
            )
            return _Failed(WsFailure.BAD_FRAME, close_code=closed.sent.code, reason=f"the service sent {why}")
        if isinstance(cause, EOFError):
            return _Failed(WsFailure.BAD_FRAME, reason=f"the service closed the connection mid-message ({cause})")
        if isinstance(cause, FrameError):
            return _Failed(WsFailure.BAD_FRAME, reason=f"the service sent a malformed frame ({cause})")
        return _Failed(WsFailure.CONNECTION_LOST, reason="the connection ended without a close frame")

    def _field_missing(self, error: FieldPathError) -> _Failed:
        if error.path not in self._problem_paths:
            self._problem_paths.add(error.path)
            self.config_problems.append(str(error))
        return _Failed(WsFailure.FIELD_MISSING, problem=str(error))

    # Outcomes

    async def _failed(self, agent: AgentContext, failed: _Failed, timings: dict[str, int]) -> OpResult:
        session = self._sessions.get(agent.agent)
        failure = failed.failure
        written = failed.details.pop("written", None)
        if session is None or failure is WsFailure.FIELD_MISSING:
            agent.finished = True  # no session to be had, or a configuration that cannot work: stop trying
        if failure not in (WsFailure.NO_ANSWER, WsFailure.INCOMPLETE, WsFailure.RUN_FAILED, WsFailure.REJECTED):
            await self._forget(agent)  # the connection is broken: the next operation opens a new session
        read = self._read_of(session, failed.details) if session is not None else failed.details
        return OpResult(failure.outcome, error=failure.value, read=read, written=written, timings=timings or None)

    @staticmethod
    def _read_of(session: _Session | None, details: dict[str, Any]) -> dict[str, Any]:
        read = dict(details)
        if session is not None:
            read[SESSION_KEY] = session.describe()
            read["legs"] = session.leg
        return read

    async def _forget(self, agent: AgentContext) -> None:
        session = self._sessions.pop(agent.agent, None)
        if session is not None:
            await self._close(session.ws)

    async def _close(self, ws: ClientConnection) -> None:
        try:
            await asyncio.wait_for(ws.close(), self.close_timeout + 1)
        except (TimeoutError, OSError, ConnectionClosed):
            ws.transport.abort()

    # Placeholder values

    def _values(self, agent: AgentContext, *, request: str = "") -> dict[str, Any]:
        return {
            "user": agent.user,
            "agent": agent.agent,
            "marker": agent.marker,
            "thread": f"thread-{agent.agent}",
            "token": self._token(agent),
            "text": f"message {agent.iteration} from {agent.user}",
            "context": self._context(agent),
            "request": request,
            "iteration": agent.iteration,
        }

    def _token(self, agent: AgentContext) -> str | None:
        if self.tokens is None:
            return None
        if "token" not in agent.state:
            tokens = self.tokens
            if isinstance(tokens, str):
                agent.state["token"] = tokens
            elif isinstance(tokens, Mapping):
                if agent.user not in tokens:
                    raise ConfigurationError(
                        f"No token for user {agent.user!r}: the tokens given cover "
                        f"{', '.join(sorted(map(str, tokens))[:10]) or 'no user'}"
                    )
                agent.state["token"] = tokens[agent.user]
            else:
                agent.state["token"] = tokens(agent.user)
        return agent.state["token"]

    def _context(self, agent: AgentContext) -> str:
        """``context_bytes`` of text (at least its head, which names the user, marker and run)."""
        head = f"Context of {agent.user} ({agent.marker}), run {agent.iteration}: "
        return head + "x" * max(0, self.context_bytes - len(head.encode()))


def _text_of(message: Any) -> str | None:
    """A failure or error event's human message, if it has one at the top level."""
    if isinstance(message, Mapping) and isinstance(message.get("message"), str):
        return str(message["message"])[:300]
    return None


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
