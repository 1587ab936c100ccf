"""HTTP + SSE agents: users of an agent service's threads, each operation one run on a thread of its user.

Before the start barrier each user gets its thread(s) (``threads_per_user``,
created by the first of its agents; the user's other agents share them, so
eight agents of two users put four concurrent runs on each thread). Each
operation then starts one run on the agent's thread with a marker of its own
(``<agent marker>-<iteration>``) and the launch's policy, and follows it:

- streamed (the default): reads the SSE stream to the run's terminal event,
  recording every event (:attr:`HttpAgentTool.messages`) with its arrival time;
  a stream cut before it is resumed with ``Last-Event-ID`` when the protocol
  says so (``cut_after_events`` cuts each run's stream on purpose;
  ``cancel_after_events`` asks the service to cancel each run after that many
  of its events);
- ``wait``: one request whose answer is the ended run.

Each run is a :class:`~stampede.records.threads.RunAttempt` in
:attr:`HttpAgentTool.attempts` (status code, run id, what the service
answered, how the run ended, the messages it reported appended, why it
failed); with ``read_every=N`` every N-th operation of an agent then reads its
thread's state (:attr:`HttpAgentTool.reads`). After the launch a check reads
the threads (:meth:`HttpAgentTool.final_threads`) and asks for other users'
threads (:meth:`HttpAgentTool.probe_foreign_access`).

Per operation the history holds ``timings`` ``first_event`` (request → first
event: startup latency), ``started`` (→ the started event), ``run`` (→ the
terminal event or the wait answer), ``resume`` (cut → resumed) and ``read``; in
``read`` the run id, HTTP status, event count and types, messages, outcome and
failure; in ``written`` the marker, thread and policy. Every wait is bounded;
all agents share one connection pool, closed at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError, ServiceUnavailable, StampedeError
from ..outcomes import Outcome
from ..records.threads import (
    ForeignAccess,
    HttpFailure,
    RunAttempt,
    RunPolicy,
    RunStatus,
    ServiceRun,
    ThreadFinal,
    ThreadMessage,
    ThreadRead,
    ThreadRunRecords,
)
from ..records.websocket import MessageLog, ReceivedMessage, timeout_text
from .http_protocol import HttpProtocol, RequestName
from .sse import SseEvent, SseParser
from .websocket_fields import SHOWN_CHARACTERS, FieldPathError, lookup, message_text, shorten
from .websocket_values import PlaceholderValues, TokenSource

TYPES_KEPT = 12  # event types listed per operation in ``read``
MAX_RESUMES = 3  # per run
DRAIN_SECONDS = 0.25  # a stream left open after its terminal event is closed this long after it
READS_AT_ONCE = 16  # requests at once when reading threads after a launch
_REFUSING_READ = range(400, 500)
_SEQ_AT_END = re.compile(r"(\d+)$")

_OUTCOMES = {
    RunStatus.SUCCESS: (Outcome.OK, None),
    RunStatus.INTERRUPTED: (Outcome.CONFLICT, "interrupted"),
    RunStatus.ROLLED_BACK: (Outcome.CONFLICT, "rolled_back"),
    RunStatus.FAILED: (Outcome.ERROR, "run_failed"),
}


class RunFailed(Exception):
    """A run request that did not reach its run's end: becomes the attempt's failure and the operation's error."""

    def __init__(self, failure: HttpFailure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


class ThreadReadFailed(StampedeError):
    """Reading a thread after the launch failed: the message names the thread, the request and the answer."""


@dataclass
class _Stream:
    """One run's stream as it is read: its attempt, its leg (resumes + 1), its last event id, what it saw."""

    attempt: RunAttempt
    agent: AgentContext
    values: dict[str, Any] = field(default_factory=dict)
    leg: int = 1
    last_id: str | None = None
    events: int = 0
    foreign: int = 0
    types: list[str] = field(default_factory=list)
    cut_ns: int | None = None
    resume_ns: int = 0
    """Time from each cut to the first event after it, summed."""
    cancel: int | str | None = None
    """What the service answered the cancel request (its status, or why there was none)."""


class HttpAgentTool(BaseTool):
    """Agents as users of an HTTP + SSE agent service, talking the ``protocol`` (see the module documentation).

    ``tokens`` gives each user's token (a function of the user id, a mapping
    user → token, or one token; needed when the protocol sends one). ``policy``
    is sent with every run. ``mode`` is ``stream`` or ``wait``.
    ``connect_timeout`` bounds opening a connection, ``answer_timeout`` the wait
    for a run's first event (or any other answer), ``run_timeout`` a run from
    its request to its end (resumes included). Events keep ``raw_limit``
    characters of their text; the message log keeps at most ``max_messages``;
    an SSE line may be ``max_line_bytes`` long.
    """

    timed_phases = ("first_event", "started", "run", "resume", "read")

    def __init__(
        self,
        protocol: HttpProtocol,
        *,
        tokens: TokenSource | None = None,
        name: str = "http_agents",
        policy: RunPolicy | str = RunPolicy.REJECT,
        mode: str = "stream",
        threads_per_user: int = 1,
        read_every: int | None = None,
        cut_after_events: int | None = None,
        cancel_after_events: int | None = None,
        connect_timeout: float = 10.0,
        answer_timeout: float = 10.0,
        run_timeout: float = 30.0,
        context_bytes: int = 0,
        raw_limit: int = 256,
        max_messages: int = 200_000,
        max_line_bytes: int = 2**20,
        connections: int | None = None,
    ) -> None:
        _check_timeouts(connect_timeout, answer_timeout, run_timeout)
        try:
            self.policy = RunPolicy(str(policy).strip().lower())
        except ValueError:
            raise ConfigurationError(
                f"policy must be one of {', '.join(p.value for p in RunPolicy)}, got {policy!r}"
            ) from None
        if mode not in ("stream", "wait"):
            raise ConfigurationError(f"mode must be stream (read the run's SSE stream) or wait, got {mode!r}")
        request = RequestName.RUN_STREAM if mode == "stream" else RequestName.RUN_WAIT
        if protocol.request(request) is None:
            raise ConfigurationError(f"mode {mode} needs requests.{request} in the HTTP protocol, which is null")
        for what, count, low in (
            ("threads_per_user", threads_per_user, 1),
            ("read_every", read_every, 1),
            ("cut_after_events", cut_after_events, 1),
            ("cancel_after_events", cancel_after_events, 1),
            ("context size", context_bytes, 0),
            ("raw_limit", raw_limit, 0),
            ("max_line_bytes", max_line_bytes, 1024),
            ("connections", connections, 1),
        ):
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < low):
                raise ConfigurationError(f"{what} must be a whole number of at least {low}, got {count!r}")
        if cut_after_events is not None and (mode != "stream" or not protocol.resume):
            raise ConfigurationError(
                "cut_after_events cuts streams to test resuming them: it needs mode stream and a protocol with "
                '"resume": true and a requests.resume_stream'
            )
        if cancel_after_events is not None and (mode != "stream" or protocol.request(RequestName.CANCEL) is None):
            raise ConfigurationError(
                "cancel_after_events cancels each run after that many of its events: it needs mode stream and a "
                "requests.cancel in the HTTP protocol"
            )
        if protocol.needs_token() and tokens is None:
            raise ConfigurationError(
                f"The HTTP protocol for {protocol.base_url} sends a token (auth {protocol.auth.value}): give "
                "tokens (each user's token, or a function of the user id), or set auth to none"
            )
        self.protocol = protocol
        self.name = name
        self.mode = mode
        self.threads_per_user = threads_per_user
        self.read_every = read_every
        self.cut_after_events = cut_after_events
        self.cancel_after_events = cancel_after_events
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.run_timeout = run_timeout
        self.raw_limit = raw_limit
        self.max_line_bytes = max_line_bytes
        self.connections = connections
        self.values = PlaceholderValues(tokens, context_bytes)
        assert not isinstance(protocol.messages_per_run, str), "the protocol resolves a path when it loads"
        self.messages_per_run: int | None = protocol.messages_per_run
        self.refusal_statuses: Sequence[int] = protocol.refusal_statuses
        self.attempts: list[RunAttempt] = []
        self.reads: list[ThreadRead] = []
        self.messages = MessageLog(max_messages)
        self.threads: dict[str, list[str]] = {}
        """Each user's threads in the latest launch."""
        self.marker_owners: dict[str, str] = {}
        """Marker → the user whose run sent it (for the contamination check)."""
        self.config_problems: list[str] = []
        """The first field-path error met for each path in the latest launch."""
        self._problem_paths: set[str] = set()
        self._creating: dict[str, asyncio.Task[list[str]]] = {}
        self._ordinals: dict[str, int] = {}
        self._http: aiohttp.ClientSession | None = None

    @property
    def records(self) -> ThreadRunRecords:
        """This tool as the thread checkers see it (the contract of :mod:`stampede.records.threads`)."""
        return self

    @property
    def operation_bound(self) -> float:
        """Seconds one operation can take at most: the launch's operation timeout should be longer."""
        read = self.answer_timeout + self.connect_timeout if self.read_every else 0.0
        return self.connect_timeout + self.run_timeout + DRAIN_SECONDS + read

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            **self.protocol.describe(),
            "policy": f"{self.policy.value} (sent as {self.protocol.policies[self.policy]!r})",
            "mode": "streamed (SSE)" if self.mode == "stream" else "waited for",
            "threads per user": str(self.threads_per_user),
            "reads the thread": f"every {self.read_every} operation(s) of an agent" if self.read_every else "never",
            "cuts each stream": f"after {self.cut_after_events} events" if self.cut_after_events else "never",
            "cancels each run": f"after {self.cancel_after_events} events" if self.cancel_after_events else "never",
            "answer timeout": timeout_text(self.answer_timeout),
            "run timeout": timeout_text(self.run_timeout),
            "token": self.protocol.token.describe() if self.protocol.needs_token() else "(none)",
        }

    # Launch hooks

    async def setup(self, agents: int) -> None:
        self.attempts, self.reads, self.threads, self.marker_owners = [], [], {}, {}
        self.messages = MessageLog(self.messages.limit)
        self.config_problems, self._problem_paths = [], set()
        self._creating, self._ordinals = {}, {}
        await self._reachable()
        self._http = self._session()

    async def open_agent(self, agent: AgentContext) -> None:
        task = self._creating.get(agent.user)
        if task is None:
            task = self._creating[agent.user] = asyncio.ensure_future(self._create_threads(agent))
        threads = await asyncio.shield(task)
        ordinal = self._ordinals[agent.user] = self._ordinals.get(agent.user, 0) + 1
        agent.state["thread"] = threads[(ordinal - 1) % len(threads)]

    async def run(self, agent: AgentContext) -> OpResult:
        assert self._http is not None, "setup() opens the connection pool"
        marker = f"{agent.marker}-{agent.iteration}"
        self.marker_owners[marker] = agent.user
        thread = agent.state["thread"]
        values = self._values(agent, thread=thread, marker=marker)
        stream = agent.state["streams"] = agent.state.get("streams", 0) + 1
        attempt = RunAttempt(agent.agent, agent.user, thread, marker, self.policy, time.monotonic_ns(), stream)
        self.attempts.append(attempt)
        progress = _Stream(attempt, agent, values)
        try:
            if self.mode == "stream":
                await self._stream_run(self._http, progress, values)
            else:
                await self._wait_run(self._http, attempt, values)
        except RunFailed as failed:
            attempt.failure, attempt.detail = failed.failure, _scrub(failed.detail, values.get("token"))
        timings = self._timings(progress)
        if self.read_every and agent.iteration % self.read_every == 0:
            read = await self._read_during(agent, thread, values)
            timings["read"] = read.end_ns - read.start_ns
        return self._result(progress, timings)

    async def teardown(self) -> None:
        http, self._http = self._http, None
        for task in self._creating.values():
            task.cancel()
        if http is not None:
            await http.close()

    # Threads

    async def _create_threads(self, agent: AgentContext) -> list[str]:
        """Create ``threads_per_user`` threads as ``agent``'s user; StampedeError naming the answer if refused."""
        template = self.protocol.request(RequestName.CREATE_THREAD)
        assert template is not None, "the protocol requires it"
        values = self._values(agent, thread="", marker=agent.marker)
        async with self._client() as http:
            threads = []
            for _ in range(self.threads_per_user):
                try:
                    async with asyncio.timeout(self.answer_timeout):
                        status, answer = await self._json_request(http, RequestName.CREATE_THREAD, values, agent.user)
                except TimeoutError:
                    raise ServiceUnavailable(
                        f"Creating a thread for {agent.user} ({_line(self.protocol, RequestName.CREATE_THREAD)} at "
                        f"{self.protocol.base_url}): no answer within {timeout_text(self.answer_timeout)}"
                    ) from None
                except RunFailed as failed:
                    raise ServiceUnavailable(f"Creating a thread for {agent.user}: {failed.detail}") from None
                if status is None or not 200 <= status < 300:
                    raise _refused_request(RequestName.CREATE_THREAD, status, answer, agent.user, self.protocol)
                try:
                    thread = self.protocol.answer_field(answer, "thread_id", RequestName.CREATE_THREAD)
                except FieldPathError as error:
                    raise ConfigurationError(str(error)) from None
                threads.append(str(thread))
        self.threads[agent.user] = threads
        return threads

    # Streamed runs

    async def _stream_run(self, http: aiohttp.ClientSession, stream: _Stream, values: dict[str, Any]) -> None:
        """Read the run's stream (resuming it when cut) to its terminal event; RunFailed otherwise."""
        attempt = stream.attempt
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.answer_timeout) as bound:
                await self._first_leg(http, stream, values, bound, started)
                while attempt.outcome is None:
                    await self._resume(http, stream, values, bound, started)
        except TimeoutError:
            if stream.events:
                done = " or ".join(self.protocol.terminal_events)
                raise RunFailed(
                    HttpFailure.TIMEOUT,
                    f"{stream.events} event(s) of the run, then no {done} within {timeout_text(self.run_timeout)} "
                    "of the request",
                ) from None
            raise RunFailed(
                HttpFailure.TIMEOUT,
                f"no event of the run within {timeout_text(self.answer_timeout)} of the request"
                + ("" if attempt.status is None else f" (the service answered HTTP {attempt.status})"),
            ) from None

    async def _first_leg(
        self,
        http: aiohttp.ClientSession,
        stream: _Stream,
        values: dict[str, Any],
        bound: asyncio.Timeout,
        started: float,
    ) -> None:
        request = self._request(http, RequestName.RUN_STREAM, values, {"Accept": "text/event-stream"})
        async with await self._answered(request, RequestName.RUN_STREAM) as response:
            stream.attempt.status = response.status
            await self._check_start(response, stream.attempt)
            await self._read_events(response, stream, bound, started)

    async def _resume(
        self,
        http: aiohttp.ClientSession,
        stream: _Stream,
        values: dict[str, Any],
        bound: asyncio.Timeout,
        started: float,
    ) -> None:
        """Resume a cut stream with Last-Event-ID; RunFailed (cut) when the protocol or the run cannot."""
        attempt = stream.attempt
        why = attempt.detail or "the stream ended"
        if not self.protocol.resume:
            raise RunFailed(HttpFailure.CUT, f"{why} before the run's terminal event (the protocol does not resume)")
        if attempt.run_id is None:
            raise RunFailed(HttpFailure.CUT, f"{why} before any event said the run's id, so it cannot be resumed")
        if stream.leg > MAX_RESUMES:
            raise RunFailed(HttpFailure.CUT, f"{why} before the run's terminal event, after {MAX_RESUMES} resumes")
        stream.leg += 1
        headers = {"Accept": "text/event-stream"}
        if stream.last_id is not None:
            headers["Last-Event-ID"] = stream.last_id
        request = self._request(http, RequestName.RESUME_STREAM, {**values, "run_id": attempt.run_id}, headers)
        async with await self._answered(request, RequestName.RESUME_STREAM) as response:
            if not 200 <= response.status < 300:
                said = _said(await _body(response))
                raise RunFailed(
                    HttpFailure.STREAM_ERROR,
                    f"{why}; the resume request ({_line(self.protocol, RequestName.RESUME_STREAM)}) was answered "
                    f"HTTP {response.status}: {said}",
                )
            attempt.detail = None
            await self._read_events(response, stream, bound, started)

    async def _check_start(self, response: aiohttp.ClientResponse, attempt: RunAttempt) -> None:
        """RunFailed unless the start request was answered with an SSE stream; a refusal's arrival ends the attempt."""
        status, arrived = response.status, time.monotonic_ns()
        if 200 <= status < 300:
            kind = response.headers.get("Content-Type", "")
            if not kind.startswith("text/event-stream"):
                said = _said(await _body(response))
                raise RunFailed(
                    HttpFailure.HTTP_ERROR,
                    f"HTTP {status} with {kind or 'no content type'}, not an SSE stream (text/event-stream): check "
                    f"requests.run_stream ({_line(self.protocol, RequestName.RUN_STREAM)}). Answer: {said}",
                )
            return
        said = _said(await _body(response))
        if status in self.refusal_statuses:
            attempt.end_ns = arrived  # so the refusal is judged against the runs that had ended by then
            raise RunFailed(HttpFailure.REFUSED, f"HTTP {status}: {said}")
        if status in (401, 403):
            raise RunFailed(
                HttpFailure.UNAUTHORIZED,
                f"HTTP {status}: {said}. The service refused the user's token: check the secret it is signed with "
                "(STAMPEDE_AGENT_JWT_SECRET), the token's claims (the protocol's \"token\"), or the tokens given, "
                "and where it goes (auth, header_name, header_value, query_param)",
            )
        raise RunFailed(HttpFailure.HTTP_ERROR, f"HTTP {status} before any event: {said}")

    async def _read_events(
        self, response: aiohttp.ClientResponse, stream: _Stream, bound: asyncio.Timeout, started: float
    ) -> None:
        """Read events to the run's terminal one; at a cut, note why in the attempt and return."""
        attempt, parser = stream.attempt, SseParser()
        parser.last_id = stream.last_id
        try:
            async for event in self._events(response, parser):
                stream.last_id = parser.last_id
                first = stream.events == 0
                self._on_event(event, stream)
                if first and stream.events:
                    bound.reschedule(started + self.run_timeout)
                if attempt.outcome is not None:
                    await self._drain(response)
                    return
                if stream.events == self.cut_after_events and stream.leg == 1:
                    response.close()
                    stream.cut_ns = time.monotonic_ns()
                    attempt.detail = f"Stampede cut the stream after {stream.events} events (cut_after_events)"
                    return
                if stream.events == self.cancel_after_events and stream.cancel is None:
                    stream.cancel = await self._cancel(stream)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as error:
            attempt.detail = f"the connection dropped mid-stream ({_error_text(error)})"
        else:
            attempt.detail = "the stream ended" + (" in the middle of an event" if parser.pending else "")
        stream.cut_ns = time.monotonic_ns()

    async def _cancel(self, stream: _Stream) -> int | str:
        """Ask the service to cancel the stream's run; its status, or why no answer came (bounded)."""
        assert self._http is not None
        if stream.attempt.run_id is None:
            return "not sent: no event said the run's id"
        values = {**stream.values, "run_id": stream.attempt.run_id}
        try:
            async with asyncio.timeout(self.answer_timeout):
                async with await self._answered(
                    self._request(self._http, RequestName.CANCEL, values), RequestName.CANCEL
                ) as answer:
                    await answer.read()
                    return answer.status
        except TimeoutError:
            return f"no answer within {timeout_text(self.answer_timeout)}"
        except RunFailed as failed:
            return failed.detail

    async def _events(self, response: aiohttp.ClientResponse, parser: SseParser) -> AsyncIterator[SseEvent]:
        content = response.content
        while True:
            try:
                line = await content.readuntil(b"\n", max_size=self.max_line_bytes)
            except ValueError:
                raise RunFailed(
                    HttpFailure.BAD_EVENT, f"an SSE line longer than {self.max_line_bytes} bytes (max_line_bytes)"
                ) from None
            if not line:
                return
            event = parser.line(line.decode("utf-8", errors="replace"))
            if event is not None:
                yield event

    def _on_event(self, sse: SseEvent, stream: _Stream) -> None:
        """Log one event and apply it to the attempt; RunFailed for data that is not JSON, a path matching nothing."""
        protocol, attempt, agent = self.protocol, stream.attempt, stream.agent
        now = time.monotonic_ns()
        entry = ReceivedMessage(
            agent.agent,
            agent.user,
            attempt.stream,
            now,
            f"event: {sse.event}\nid: {sse.id}\ndata: {sse.data}"[: self.raw_limit],
            own_marker=attempt.marker,
            leg=stream.leg,
            type=sse.event,
        )
        self.messages.append(entry)
        if attempt.first_event_ns is None:
            attempt.first_event_ns = now
        try:
            data = json.loads(sse.data)
        except ValueError:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the {sse.event} event's data is not JSON: {sse.data[:200]!r} (the protocol reads each event's "
                "data as JSON)",
            ) from None
        event = {"event": sse.event, "id": sse.id, "data": data}
        try:
            kind = str(lookup(event, protocol.events.type, what="events.type, the event's type", protocol="HTTP"))
            entry.type = kind
            ours = kind in protocol.run_events
            entry.seq = _seq(protocol.event_field(event, "seq", required=ours))
            entry.user_id = protocol.event_field(event, "user", required=ours)
            entry.marker = protocol.event_field(event, "marker", required=ours)
            entry.run_id = protocol.event_field(event, "run_id", required=ours)
            message = (
                protocol.event_field(event, "message_id", required=True) if kind in protocol.message_events else None
            )
        except FieldPathError as error:
            raise self._field_missing(error) from None
        if not entry.mine:
            stream.foreign += 1  # another user's or run's event: the contamination check's finding
            return
        stream.events += 1
        if stream.cut_ns is not None:
            stream.resume_ns += now - stream.cut_ns
            stream.cut_ns = None
        if len(stream.types) < TYPES_KEPT:
            stream.types.append(kind)
        if entry.run_id is not None:
            attempt.run_id = str(entry.run_id)
        if kind in protocol.started_events and attempt.started_ns is None:
            attempt.started_ns = now
        elif message is not None:
            attempt.messages.append(str(message))
        elif kind in protocol.error_events:
            raise RunFailed(HttpFailure.STREAM_ERROR, f"the service sent {kind}: {message_text(data) or shorten(data)}")
        elif kind in protocol.terminal_events:
            attempt.outcome = self._end_of(kind, event)
            attempt.end_ns = now

    def _end_of(self, kind: str, event: Mapping[str, Any]) -> RunStatus:
        said = self.protocol.terminal_events[kind]
        if said is not None:
            return said
        try:
            word = self.protocol.event_field(event, "status", required=True)
        except FieldPathError as error:
            raise self._field_missing(error) from None
        status = self.protocol.status_of(word)
        if status is None:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the {kind} event's status {word!r} is not one of the protocol's statuses "
                f"({', '.join(self.protocol.statuses)}): add it to statuses",
            )
        return status

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Let the stream end (so its connection goes back to the pool); close it if it stays open."""
        try:
            await asyncio.wait_for(response.content.read(), DRAIN_SECONDS)
        except (TimeoutError, aiohttp.ClientError):
            response.close()

    # Waited-for runs

    async def _wait_run(self, http: aiohttp.ClientSession, attempt: RunAttempt, values: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(self.run_timeout):
                request = self._request(http, RequestName.RUN_WAIT, values)
                async with await self._answered(request, RequestName.RUN_WAIT) as response:
                    attempt.status = response.status
                    if not 200 <= response.status < 300:
                        await self._check_start(response, attempt)
                    body = await _body(response)
        except TimeoutError:
            raise RunFailed(HttpFailure.TIMEOUT, f"no answer within {timeout_text(self.run_timeout)}") from None
        attempt.end_ns = time.monotonic_ns()
        protocol = self.protocol
        try:
            answer = json.loads(body)
        except ValueError:
            raise RunFailed(HttpFailure.BAD_EVENT, f"the run_wait answer is not JSON: {body[:200]!r}") from None
        try:
            word = protocol.answer_field(answer, "wait_status", RequestName.RUN_WAIT)
            run_id = protocol.answer_field(answer, "wait_run_id", RequestName.RUN_WAIT)
            messages = protocol.answer_field(answer, "wait_messages", RequestName.RUN_WAIT) or []
            attempt.messages = [m.id for m in self._messages_of(messages, RequestName.RUN_WAIT)]
        except FieldPathError as error:
            raise self._field_missing(error) from None
        except ThreadReadFailed as error:
            raise RunFailed(HttpFailure.BAD_EVENT, str(error)) from None
        attempt.run_id = None if run_id is None else str(run_id)
        attempt.outcome = protocol.status_of(word)
        if attempt.outcome is None or not attempt.outcome.ended:
            raise RunFailed(
                HttpFailure.BAD_EVENT,
                f"the run_wait answer's status {word!r} is not an ended run's status in the protocol's statuses "
                f"({', '.join(protocol.statuses)})",
            )

    # Reading threads

    async def _read_during(self, agent: AgentContext, thread: str, values: dict[str, Any]) -> ThreadRead:
        assert self._http is not None
        start = time.monotonic_ns()
        status: int | None = None
        messages: tuple[ThreadMessage, ...] | None = None
        try:
            async with asyncio.timeout(self.answer_timeout):
                status, answer = await self._json_request(self._http, RequestName.READ_STATE, values, agent.user)
            if status is not None and 200 <= status < 300:
                messages = self._state_messages(answer)
        except (TimeoutError, RunFailed, ThreadReadFailed):
            messages = None
        read = ThreadRead(agent.agent, agent.user, thread, start, time.monotonic_ns(), status, messages)
        self.reads.append(read)
        return read

    async def final_threads(self) -> list[ThreadFinal]:
        """Read every thread the launch used: state, run list and (when the protocol has it) history."""
        limit = asyncio.Semaphore(READS_AT_ONCE)
        async with self._client() as http:

            async def one(owner: str, thread: str) -> ThreadFinal:
                async with limit:
                    return await self._final(http, owner, thread)

            return list(
                await asyncio.gather(*(one(owner, t) for owner, threads in self.threads.items() for t in threads))
            )

    async def _final(self, http: aiohttp.ClientSession, owner: str, thread: str) -> ThreadFinal:
        values = self._values(AgentContext(0, owner, ""), thread=thread, marker="")
        answer = await self._read(http, RequestName.READ_STATE, values, owner)
        messages = self._state_messages(answer)
        runs: tuple[ServiceRun, ...] = ()
        if self.protocol.request(RequestName.LIST_RUNS) is not None:
            listed = await self._read(http, RequestName.LIST_RUNS, values, owner)
            runs = tuple(self._service_runs(listed, thread))
        history = None
        if self.protocol.request(RequestName.READ_HISTORY) is not None and self.protocol.answers.history_states:
            answer = await self._read(http, RequestName.READ_HISTORY, values, owner)
            history = self._history(answer)
        return ThreadFinal(thread, owner, messages, runs, history)

    async def probe_foreign_access(self) -> list[ForeignAccess]:
        """For each user, ask for the next user's first thread (state, history, run list, a run's stream)."""
        users = sorted(self.threads)
        if len(users) < 2:
            return []
        probes: list[tuple[str, str, str, RequestName, str | None]] = []
        for place, user in enumerate(users):
            owner = users[(place + 1) % len(users)]
            thread = self.threads[owner][0]
            run_id = next((a.run_id for a in self.attempts if a.thread == thread and a.run_id), None)
            for name in (RequestName.READ_STATE, RequestName.READ_HISTORY, RequestName.LIST_RUNS):
                if self.protocol.request(name) is not None:
                    probes.append((user, owner, thread, name, None))
            if run_id is not None and self.protocol.request(RequestName.RESUME_STREAM) is not None:
                probes.append((user, owner, thread, RequestName.RESUME_STREAM, run_id))
        limit = asyncio.Semaphore(READS_AT_ONCE)
        async with self._client() as http:

            async def one(user: str, owner: str, thread: str, name: RequestName, run_id: str | None) -> ForeignAccess:
                async with limit:
                    return await self._probe(http, user, owner, thread, name, run_id)

            return list(await asyncio.gather(*(one(*probe) for probe in probes)))

    async def _probe(
        self, http: aiohttp.ClientSession, user: str, owner: str, thread: str, name: RequestName, run_id: str | None
    ) -> ForeignAccess:
        values = self._values(AgentContext(0, user, ""), thread=thread, marker="")
        values["run_id"] = run_id or ""
        status, detail = None, None
        try:
            async with asyncio.timeout(self.answer_timeout):
                async with await self._answered(self._request(http, name, values), name) as response:
                    status = response.status
                    if not 200 <= status < 300:
                        detail = _said(await _body(response))
                    else:
                        response.close()  # served: that is the finding; a stream's events are not read
        except TimeoutError:
            detail = f"no answer within {timeout_text(self.answer_timeout)}"
        except RunFailed as failed:
            detail = failed.detail
        refused = status is not None and status in _REFUSING_READ
        return ForeignAccess(user, owner, thread, f"{name} ({_line(self.protocol, name)})", status, refused, detail)

    def _state_messages(self, answer: Any) -> tuple[ThreadMessage, ...]:
        try:
            listed = self.protocol.answer_field(answer, "state_messages", RequestName.READ_STATE)
        except FieldPathError as error:
            raise ThreadReadFailed(str(error)) from None
        return self._messages_of(listed, RequestName.READ_STATE)

    def _messages_of(self, listed: Any, request: str) -> tuple[ThreadMessage, ...]:
        if not isinstance(listed, list):
            raise ThreadReadFailed(
                f"The {request} answer's message list (answers.state_messages or wait_messages) is not a list: "
                f"{shorten(listed)}"
            )
        protocol, found = self.protocol, []
        for item in listed:
            try:
                message_id = protocol.answer_field(item, "message_id", f"{request} (a message)")
            except FieldPathError as error:
                raise ThreadReadFailed(str(error)) from None
            run_id = protocol.answer_field(item, "message_run_id", request, required=False)
            marker = protocol.answer_field(item, "message_marker", request, required=False)
            found.append(
                ThreadMessage(
                    str(message_id), None if run_id is None else str(run_id), None if marker is None else str(marker)
                )
            )
        return tuple(found)

    def _service_runs(self, answer: Any, thread: str) -> Iterator[ServiceRun]:
        protocol = self.protocol
        try:
            listed = protocol.answer_field(answer, "runs", RequestName.LIST_RUNS)
            if not isinstance(listed, list):
                raise ThreadReadFailed(
                    f"The list_runs answer's run list (answers.runs) is not a list: {shorten(listed)}"
                )
            for run in listed:
                word = protocol.answer_field(run, "run_status", f"{RequestName.LIST_RUNS} (a run)")
                run_id = protocol.answer_field(run, "run_id", f"{RequestName.LIST_RUNS} (a run)")
                marker = protocol.answer_field(run, "run_marker", RequestName.LIST_RUNS, required=False)
                yield ServiceRun(
                    str(run_id),
                    thread,
                    protocol.status_of(word),
                    word,
                    marker=None if marker is None else str(marker),
                    started_at=self._run_time(run, "run_started_at"),
                    ended_at=self._run_time(run, "run_ended_at"),
                )
        except FieldPathError as error:
            raise ThreadReadFailed(str(error)) from None

    def _run_time(self, run: Any, name: str) -> float | None:
        """A time of a listed run in seconds (``answers.<name>``); None where the run list does not give it."""
        value = self.protocol.answer_field(run, name, RequestName.LIST_RUNS, required=False)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
            with contextlib.suppress(ValueError):
                moment = datetime.fromisoformat(value)
                return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        raise ThreadReadFailed(
            f"The list_runs answer's answers.{name} ({getattr(self.protocol.answers, name)!r}) is "
            f"{shorten(value)}, not a time: give the path of a number of seconds or an ISO 8601 time, or null"
        )

    def _history(self, answer: Any) -> tuple[tuple[ThreadMessage, ...], ...]:
        protocol = self.protocol
        assert protocol.answers.history_states is not None
        try:
            states = protocol.answer_field(answer, "history_states", RequestName.READ_HISTORY)
            if not isinstance(states, list):
                raise ThreadReadFailed(f"The read_history answer's states are not a list: {shorten(states)}")
            return tuple(
                self._messages_of(
                    protocol.answer_field(state, "history_messages", f"{RequestName.READ_HISTORY} (a state)"),
                    RequestName.READ_HISTORY,
                )
                for state in states
            )
        except FieldPathError as error:
            raise ThreadReadFailed(str(error)) from None

    async def _read(self, http: aiohttp.ClientSession, name: RequestName, values: dict[str, Any], user: str) -> Any:
        """The JSON answer of a read after the launch; ThreadReadFailed naming the thread and the answer otherwise."""
        try:
            async with asyncio.timeout(self.answer_timeout):
                status, answer = await self._json_request(http, name, values, user)
        except TimeoutError:
            raise ThreadReadFailed(
                f"Reading thread {values['thread']} of {user} ({name}): no answer within "
                f"{timeout_text(self.answer_timeout)}"
            ) from None
        except RunFailed as failed:
            raise ThreadReadFailed(f"Reading thread {values['thread']} of {user} ({name}): {failed.detail}") from None
        if status is None or not 200 <= status < 300:
            raise ThreadReadFailed(
                f"Reading thread {values['thread']} of its owner {user} ({_line(self.protocol, name)}) was answered "
                f"HTTP {status}: {shorten(answer)}"
            )
        return answer

    # Requests

    def _values(self, agent: AgentContext, *, thread: str, marker: str) -> dict[str, Any]:
        values = self.values.of(agent, request=marker)
        values.update(thread=thread, marker=marker, policy=self.protocol.policies[self.policy], run_id="")
        return values

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.connections or 0, limit_per_host=0)
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # agents of different users share the pool: never their cookies
            trust_env=False,
        )

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The launch's connection pool while it is open, else a pool of its own for this use."""
        if self._http is not None:
            yield self._http
            return
        http = self._session()
        try:
            yield http
        finally:
            await http.close()

    def _request(
        self,
        http: aiohttp.ClientSession,
        name: RequestName,
        values: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> Any:
        template = self.protocol.request(name)
        assert template is not None, f"{name} is checked before it is sent"
        method, path, body = template.rendered(values)
        token = values.get("token")
        return http.request(
            method,
            self.protocol.base_url + path,
            json=body,
            headers={**self.protocol.headers(token, values), **(headers or {})},
            params=self.protocol.query(token) or None,
        )

    async def _answered(self, request: Any, name: RequestName) -> aiohttp.ClientResponse:
        """The response of ``request`` (``async with`` it to release it); RunFailed when no HTTP answer came."""
        try:
            return await request
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise RunFailed(
                HttpFailure.CONNECT_FAILED,
                f"no HTTP answer from {self.protocol.base_url} to {name} ({_error_text(error)}): check base_url "
                "and that the service runs",
            ) from None

    async def _json_request(
        self, http: aiohttp.ClientSession, name: RequestName, values: dict[str, Any], user: str
    ) -> tuple[int | None, Any]:
        """The status and JSON answer (its text when not JSON) of one request."""
        async with await self._answered(self._request(http, name, values), name) as response:
            text = await _body(response)
        try:
            return response.status, json.loads(text)
        except ValueError:
            if 200 <= response.status < 300:
                raise ThreadReadFailed(
                    f"The {name} answer for {user} (HTTP {response.status}) is not JSON: {text[:200]!r}"
                ) from None
            return response.status, text

    async def _reachable(self) -> None:
        """ServiceUnavailable naming the base URL when nothing accepts connections there."""
        parts = urlsplit(self.protocol.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, writer = await asyncio.open_connection(parts.hostname, port)
        except (OSError, TimeoutError) as error:
            why = f"no answer within {timeout_text(self.connect_timeout)}" if isinstance(error, TimeoutError) else error
            raise ServiceUnavailable(
                f"Nothing accepts connections at the HTTP agent service {self.protocol.base_url} ({why}): start the "
                "service, or fix the base URL (the tool's base_url or the protocol's base_url)"
            ) from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    # Outcomes

    def _field_missing(self, error: FieldPathError) -> RunFailed:
        if error.path not in self._problem_paths:
            self._problem_paths.add(error.path)
            self.config_problems.append(str(error))
        return RunFailed(HttpFailure.BAD_EVENT, str(error))

    def _timings(self, stream: _Stream) -> dict[str, int]:
        attempt, timings = stream.attempt, {}
        for phase, at in (("first_event", attempt.first_event_ns), ("started", attempt.started_ns)):
            if at is not None and self.mode == "stream":
                timings[phase] = at - attempt.request_ns
        if attempt.end_ns is not None and not attempt.refused:
            timings["run"] = attempt.end_ns - attempt.request_ns
        if stream.resume_ns:
            timings["resume"] = stream.resume_ns
        return timings

    def _result(self, stream: _Stream, timings: dict[str, int]) -> OpResult:
        attempt = stream.attempt
        if attempt.failure is not None:
            outcome = {
                HttpFailure.REFUSED: Outcome.CONFLICT,
                HttpFailure.TIMEOUT: Outcome.TIMEOUT,
            }.get(attempt.failure, Outcome.ERROR)
            error: str | None = attempt.failure.value
            if attempt.failure in (HttpFailure.UNAUTHORIZED, HttpFailure.BAD_EVENT):
                stream.agent.finished = True  # a configuration that cannot work: stop trying
        else:
            assert attempt.outcome is not None, "a run without failure has ended"
            outcome, error = _OUTCOMES.get(attempt.outcome, (Outcome.ERROR, attempt.outcome.value))
        read = {
            "run_id": attempt.run_id,
            "status": attempt.status,
            "events": stream.events,
            "types": stream.types,
            "messages": len(attempt.messages),
            "outcome": attempt.outcome.value if attempt.outcome else None,
            "foreign": stream.foreign,
            "legs": stream.leg,
        }
        if attempt.detail is not None:
            read["detail"] = attempt.detail
        if stream.cancel is not None:
            read["cancel"] = stream.cancel
        written = {"marker": attempt.marker, "thread": attempt.thread, "policy": attempt.policy.value}
        return OpResult(outcome, error=error, read=read, written=written, timings=timings or None)


def _check_timeouts(connect: float, answer: float, run: float) -> None:
    for what, seconds in (("connect timeout", connect), ("answer timeout", answer), ("run timeout", run)):
        if not seconds > 0:
            raise ConfigurationError(f"The HTTP {what} must be longer than 0 s, got {seconds!r} s")
    if answer > run:
        raise ConfigurationError(
            f"The answer timeout ({answer:g} s) cannot be longer than the run timeout "
            f"({run:g} s): a run's first event is part of the run"
        )


def _refused_request(name: str, status: int | None, answer: Any, user: str, protocol: HttpProtocol) -> StampedeError:
    template = protocol.request(RequestName(name))
    line = f"{template.method} {template.path}" if template else name
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


def _line(protocol: HttpProtocol, name: RequestName) -> str:
    template = protocol.request(name)
    return f"{template.method} {template.path}" if template is not None else name


async def _body(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.read()).decode("utf-8", errors="replace")
    except aiohttp.ClientError as error:
        return f"(the answer's body could not be read: {_error_text(error)})"


def _said(text: str) -> str:
    """An answer's body for a message: its JSON compact and with secrets hidden, else its text, both shortened."""
    try:
        return shorten(json.loads(text))
    except ValueError:
        return shorten(text) if len(text) > SHOWN_CHARACTERS else text


def _seq(value: Any) -> Any:
    """A sequence number: a number as it is, a string ending in digits (``r-4:17``) as that number."""
    if isinstance(value, str) and (found := _SEQ_AT_END.search(value)):
        return int(found.group(1))
    return value


def _error_text(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _scrub(text: str, token: Any) -> str:
    return text.replace(token, "***") if isinstance(token, str) and token else text
