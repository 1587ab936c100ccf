"""WebSocket agents: each agent is one user who connects, authenticates and runs agent runs.

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
Opening, reading and closing the sessions is
:mod:`~stampede.workloads.websocket_sessions`'s part; this module runs the runs.

On workers (:mod:`stampede.workers`) each shard rebuilds the tool from its
recipe (the protocol and options; tokens signed in the worker with the same
secret) and sends back the messages its agents received: the tool here takes
them in (:meth:`WebSocketAgentTool.after_workers`), their arrival times and
the operations' session, first-event and done instants moved onto the
launch's clock, so the checkers judge every user's messages together.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from .websocket_fields import MessageFields, message_text
from .websocket_protocol import WebSocketProtocol
from .websocket_sessions import (
    CLOSE_SLACK_SECONDS,
    AgentSession,
    OperationFailed,
    WebSocketSessions,
    refuses_the_token,
)
from .websocket_templates import render
from .websocket_values import PlaceholderValues, TokenSource, check_sendable

if TYPE_CHECKING:
    from ..launcher import LaunchResult

TYPES_KEPT = 12  # event types listed per operation in ``read``


def _error_event(fields: MessageFields, said: str | None, *, resuming: bool) -> OperationFailed:
    """An error event for the request: a refusal when it names the credentials, else a rejection (or failed resume)."""
    failure = WsFailure.RESUME_FAILED if resuming else WsFailure.REJECTED
    if refuses_the_token(fields.error_code, said):
        failure = WsFailure.REFUSED
    return OperationFailed(failure, code=fields.error_code, message=said)


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

    timed_phases = ("connect", "first_event", "run", "resume")

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
        self.options: dict[str, Any] = {
            "tokens": tokens,
            "name": name,
            "connect_timeout": connect_timeout,
            "answer_timeout": answer_timeout,
            "run_timeout": run_timeout,
            "context_bytes": context_bytes,
            "connect_early": connect_early,
            "drop_after_events": drop_after_events,
            "raw_limit": raw_limit,
            "max_messages": max_messages,
            "max_frame_bytes": max_frame_bytes,
            "close_timeout": close_timeout,
            "runs_at_once": runs_at_once,
        }
        """The keyword arguments that made it: a worker process makes it anew from them (:meth:`recipe`)."""
        self.name = name
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.run_timeout = run_timeout
        self.close_timeout = close_timeout
        self.close_bound = close_timeout + CLOSE_SLACK_SECONDS
        self.connect_early = connect_early
        self.drop_after_events = drop_after_events
        self.runs_at_once = runs_at_once
        self.values = PlaceholderValues(tokens, context_bytes)
        self.sessions = WebSocketSessions(
            protocol,
            self.values,
            connect_timeout=connect_timeout,
            answer_timeout=answer_timeout,
            close_timeout=close_timeout,
            max_frame_bytes=max_frame_bytes,
            raw_limit=raw_limit,
            max_messages=max_messages,
            resumable=drop_after_events is not None,
        )
        self.marker_owners: dict[str, str] = {}
        """Marker → the user whose agent sends it (for the contamination check)."""

    @property
    def messages(self) -> MessageLog:
        """Every frame agents received in the latest launch, in arrival order."""
        return self.sessions.messages

    @property
    def config_problems(self) -> list[str]:
        """The first field-path error met for each path in the latest launch (the operations say ``field_missing``)."""
        return self.sessions.config_problems

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
            "context size": f"{self.values.context_bytes} bytes",
            "connects": "before the start barrier" if self.connect_early else "in its first operation",
            "drops the connection": f"after {self.drop_after_events} events of each run"
            if self.drop_after_events
            else "never",
        }

    # Launch hooks

    async def setup(self, agents: int) -> None:
        self.sessions.new_launch()
        self.marker_owners = {}

    async def open_agent(self, agent: AgentContext) -> None:
        self.marker_owners[agent.marker] = agent.user
        if self.connect_early:
            timings: dict[str, int] = {}
            try:
                await self.sessions.open(agent, timings)
                agent.state["early"] = timings
            except OperationFailed as failed:
                agent.state["early"] = failed

    async def run(self, agent: AgentContext) -> OpResult:
        timings: dict[str, int] = {}
        try:
            early = agent.state.pop("early", None)
            if isinstance(early, OperationFailed):
                raise early
            if early is not None:
                timings.update(early)
            session = self.sessions.of(agent) or await self.sessions.open(agent, timings)
            return await self._run_once(agent, session, timings)
        except OperationFailed as failed:
            return await self._failed(agent, failed, timings)

    async def close_agent(self, agent: AgentContext) -> None:
        await self.sessions.forget(agent)

    async def teardown(self) -> None:
        await self.sessions.close_all()

    # On workers

    def recipe(self) -> WebSocketToolRecipe:
        """What rebuilds this tool in a worker process: its protocol and the options that made it."""
        check_sendable(self.values.tokens, self.name)
        return WebSocketToolRecipe(self.name, self.protocol, self.options)

    def notes(self) -> WebSocketNotes:
        """What the checkers read off this tool beyond the history: for a shard's to be sent back."""
        return WebSocketNotes(list(self.messages), self.messages.left_out, self.marker_owners, self.config_problems)

    async def after_workers(self, result: LaunchResult | None) -> None:
        """After a launch on workers, here: take in what every shard's agents received, on the launch's clock."""
        self.sessions.new_launch()
        self.marker_owners = {}
        for shard in () if result is None else result.tool_notes:
            noted: WebSocketNotes = shard.notes
            for message in noted.messages:
                message.t_ns -= shard.offset_ns
                self.messages.append(message)
            self.messages.left_out += noted.left_out
            self.marker_owners.update(noted.marker_owners)
            self.config_problems.extend(p for p in noted.config_problems if p not in self.config_problems)

    # Running

    async def _run_once(self, agent: AgentContext, session: AgentSession, timings: dict[str, int]) -> OpResult:
        """Start one run (or ``runs_at_once`` runs on threads of their own) and read until every one is done."""
        protocol = self.protocol
        together = self.runs_at_once > 1
        first = not agent.state.get("started") or protocol.message is None or together
        requests = [
            f"{agent.marker}-{agent.iteration}" + (f"-{k}" if together else "") for k in range(1, self.runs_at_once + 1)
        ]
        frames = []
        for request in requests:
            values = self.values.of(agent, request=request)
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
                await self.sessions.send(session, frame)
            done = await self._read_run(agent, session, set(requests), sent, progress, timings)
        except OperationFailed as failed:
            failed.details = {**progress, **failed.details}
            failed.details["written"] = written
            raise
        timings["run"] = done - sent
        agent.state["started"] = True
        return OpResult(read=self._read_of(session, progress), written=written, timings=timings)

    async def _read_run(
        self,
        agent: AgentContext,
        session: AgentSession,
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
                raise _error_event(fields, message_text(message), resuming=resuming is not None)
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
                raise OperationFailed(WsFailure.RUN_FAILED, code=fields.error_code, message=message_text(message))
            if progress["events"] == self.drop_after_events and resuming is None:
                resuming = time.monotonic_ns()
                await self.sessions.drop_and_resume(agent, session)
                if protocol.resumed_event is None:
                    timings["resume"] = time.monotonic_ns() - resuming
                    resuming = None

    async def _next_run_frame(
        self, agent: AgentContext, session: AgentSession, sent: int, progress: dict[str, Any], resuming: int | None
    ) -> tuple[Any, MessageFields, ReceivedMessage]:
        """The next frame within the run's deadlines: the answer timeout until its first event, then the run timeout."""
        answer_by = sent + int(self.answer_timeout * 1e9)
        done_by = sent + int(self.run_timeout * 1e9)
        while (left := ((done_by if progress["events"] else min(answer_by, done_by)) - time.monotonic_ns())) > 0:
            try:
                return await self.sessions.receive(agent, session, left / 1e9)
            except TimeoutError:
                continue
            except OperationFailed as failed:
                if resuming is not None and failed.failure in (WsFailure.CLOSED, WsFailure.CONNECTION_LOST):
                    raise OperationFailed(WsFailure.RESUME_FAILED, **failed.details) from None
                raise
        raise self._timed_out(progress)

    def _timed_out(self, progress: dict[str, Any]) -> OperationFailed:
        if progress["events"]:
            done = " or ".join(self.protocol.done_events)
            return OperationFailed(
                WsFailure.INCOMPLETE,
                waited_s=self.run_timeout,
                reason=f"{progress['events']} event(s) of the run, then no {done} "
                f"within {timeout_text(self.run_timeout)} of sending",
            )
        return OperationFailed(
            WsFailure.NO_ANSWER,
            waited_s=self.answer_timeout,
            reason=f"no event of the run within {timeout_text(self.answer_timeout)} of sending",
        )

    # Outcomes

    async def _failed(self, agent: AgentContext, failed: OperationFailed, timings: dict[str, int]) -> OpResult:
        session = self.sessions.of(agent)
        failure = failed.failure
        written = failed.details.pop("written", None)
        if session is None or failure in (WsFailure.FIELD_MISSING, WsFailure.REFUSED):
            agent.finished = True  # no session to be had, or a configuration that cannot work: stop trying
        if failure not in (WsFailure.NO_ANSWER, WsFailure.INCOMPLETE, WsFailure.RUN_FAILED, WsFailure.REJECTED):
            await self.sessions.forget(agent)  # the connection is broken: the next operation opens a new session
        read = self._read_of(session, failed.details) if session is not None else failed.details
        return OpResult(failure.outcome, error=failure.value, read=read, written=written, timings=timings or None)

    @staticmethod
    def _read_of(session: AgentSession | None, details: dict[str, Any]) -> dict[str, Any]:
        read = dict(details)
        if session is not None:
            read[SESSION_KEY] = session.describe()
            read["legs"] = session.leg
        return read


@dataclass(frozen=True)
class WebSocketNotes:
    """What one shard's WebSocket agents received (its instants on its worker's clock), and whose markers are whose."""

    messages: list[ReceivedMessage]
    left_out: int
    marker_owners: dict[str, str]
    config_problems: list[str]


def on_launch_clock(read: Any, written: Any, offset_ns: int) -> tuple[Any, Any]:
    """An operation's ``read`` with its session's start and its run's first and done instants moved back by the
    shard clock's ``offset_ns``."""
    if not isinstance(read, dict):
        return read, written
    moved = dict(read)
    for key in (FIRST_EVENT_KEY, DONE_KEY):
        if isinstance(moved.get(key), int):
            moved[key] -= offset_ns
    session = moved.get(SESSION_KEY)
    if isinstance(session, dict) and isinstance(session.get("since_ns"), int):
        moved[SESSION_KEY] = {**session, "since_ns": session["since_ns"] - offset_ns}
    return moved, written


@dataclass(frozen=True)
class WebSocketToolRecipe:
    """A WebSocket agent tool's definition, picklable: its protocol and options (tokens signed in the worker)."""

    name: str
    protocol: WebSocketProtocol
    options: dict[str, Any]

    def build(self) -> WebSocketAgentTool:
        return WebSocketAgentTool(self.protocol, **self.options)

    @staticmethod
    def notes(tool: WebSocketAgentTool) -> WebSocketNotes:
        return tool.notes()

    on_launch_clock = staticmethod(on_launch_clock)

    def __repr__(self) -> str:  # the tokens may be a secret
        return f"WebSocketToolRecipe({self.name!r})"
