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

On workers (:mod:`stampede.workers`) the tool here creates every user's
threads before the launch (:meth:`HttpAgentTool.before_workers`), so a user's
agents share them in whichever worker they run; each shard rebuilds the tool
from its recipe with those threads and sends back its records, which the tool
here takes in with their instants on the launch's clock.

The tool's parts have modules of their own: :mod:`.http_streams` (a run over
its stream), :mod:`.http_waited_runs` (a run waited for),
:mod:`.http_thread_reads` (thread reads, final reads, the foreign-access
probe), :mod:`.http_outcomes` (what an operation reports),
:mod:`.http_failures` (why a request failed), :mod:`.http_requests` and
:mod:`.http_answers` (a request sent, an answer read), :mod:`.http_pool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import aiohttp

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError, ServiceUnavailable
from ..records.threads import RunAttempt, RunPolicy, ThreadRead, ThreadRunRecords
from ..records.websocket import MessageLog, ReceivedMessage, timeout_text
from .http_failures import RunFailed, ThreadReadFailed, request_line, scrub, thread_refused
from .http_outcomes import RunProgress, op_result, timings
from .http_pool import check_listening, shared_session
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .http_requests import json_answer
from .http_streams import DRAIN_SECONDS, StreamedRuns
from .http_thread_reads import ThreadReads
from .http_waited_runs import WaitedRuns
from .websocket_fields import FieldPathError
from .websocket_values import PlaceholderValues, TokenSource, check_sendable

if TYPE_CHECKING:
    from ..launcher import LaunchPlan, LaunchResult

__all__ = ["HttpAgentTool", "ThreadReadFailed"]


class HttpAgentTool(StreamedRuns, WaitedRuns, ThreadReads, BaseTool):
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
        self.options: dict[str, Any] = {
            "tokens": tokens,
            "name": name,
            "policy": self.policy,
            "mode": mode,
            "threads_per_user": threads_per_user,
            "read_every": read_every,
            "cut_after_events": cut_after_events,
            "cancel_after_events": cancel_after_events,
            "connect_timeout": connect_timeout,
            "answer_timeout": answer_timeout,
            "run_timeout": run_timeout,
            "context_bytes": context_bytes,
            "raw_limit": raw_limit,
            "max_messages": max_messages,
            "max_line_bytes": max_line_bytes,
            "connections": connections,
        }
        # What made it (a worker makes it anew from them, see recipe), and each user's threads made before the
        # launch (on workers, by the tool in the launching process).
        self.given_threads: dict[str, list[str]] = {}
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
        self._new_records()
        await check_listening(
            self.protocol.base_url,
            self.connect_timeout,
            f"the HTTP agent service {self.protocol.base_url}",
            "start the service, or fix the base URL (the tool's base_url or the protocol's base_url)",
        )
        self._http = shared_session(self.connections, self.connect_timeout)

    def _new_records(self) -> None:
        """A new launch's records: none yet."""
        self.attempts, self.reads, self.threads, self.marker_owners = [], [], {}, {}
        self.messages = MessageLog(self.messages.limit)
        self.config_problems, self._problem_paths = [], set()
        self._creating, self._ordinals = {}, {}

    async def open_agent(self, agent: AgentContext) -> None:
        task = self._creating.get(agent.user)
        if task is None:
            task = self._creating[agent.user] = asyncio.ensure_future(self._threads_of(agent))
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
        progress = RunProgress(attempt, agent, values)
        try:
            if self.mode == "stream":
                await self._stream_run(self._http, progress, values)
            else:
                await self._wait_run(self._http, progress, values)
        except RunFailed as failed:
            attempt.failure, attempt.detail = failed.failure, scrub(failed.detail, values.get("token"))
        timed = timings(progress, streamed=self.mode == "stream")
        if self.read_every and agent.iteration % self.read_every == 0:
            read = await self._read_during(agent, thread, values)
            timed["read"] = read.end_ns - read.start_ns
        return op_result(progress, timed)

    async def close_agent(self, agent: AgentContext) -> None:
        self._close_run_bound(agent)

    async def teardown(self) -> None:
        http, self._http = self._http, None
        for task in self._creating.values():
            task.cancel()
        if http is not None:
            await http.close()

    # On workers

    async def before_workers(self, plan: LaunchPlan) -> None:
        """Before a launch on workers, here: create every user's threads (a user's agents may be in two workers)."""
        self.threads = {}
        firsts = {plan.user_of(agent): agent for agent in reversed(range(1, plan.agents + 1))}  # each user's first
        for user, agent in sorted(firsts.items()):
            await self._create_threads(AgentContext(agent, user, f"threads-of-{user}"))

    def recipe(self) -> HttpToolRecipe:
        """What rebuilds this tool in a worker process: its protocol, options and the users' threads."""
        check_sendable(self.values.tokens, self.name)
        return HttpToolRecipe(self.name, self.protocol, self.options, dict(self.threads))

    def notes(self) -> HttpNotes:
        """What the checkers read off this tool beyond the history: for a shard's to be sent back."""
        return HttpNotes(
            self.attempts,
            self.reads,
            list(self.messages),
            self.messages.left_out,
            self.marker_owners,
            self.config_problems,
        )

    async def after_workers(self, result: LaunchResult | None) -> None:
        """After a launch on workers, here: take in every shard's records, their instants on the launch's clock."""
        threads = self.threads  # made here, before the launch
        self._new_records()
        self.threads = threads
        for shard in () if result is None else result.tool_notes:
            noted: HttpNotes = shard.notes
            offset = shard.offset_ns
            self.attempts += [_attempt_moved(attempt, offset) for attempt in noted.attempts]
            self.reads += [
                replace(read, start_ns=read.start_ns - offset, end_ns=read.end_ns - offset) for read in noted.reads
            ]
            for message in noted.messages:
                message.t_ns -= offset
                self.messages.append(message)
            self.messages.left_out += noted.left_out
            self.marker_owners.update(noted.marker_owners)
            self.config_problems.extend(p for p in noted.config_problems if p not in self.config_problems)

    # Threads

    async def _threads_of(self, agent: AgentContext) -> list[str]:
        """The user's threads: those made before the launch, else created now by its first agent."""
        given = self.given_threads.get(agent.user)
        if given is None:
            return await self._create_threads(agent)
        self.threads[agent.user] = given
        return given

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
                        status, answer = await json_answer(
                            http, self.protocol, RequestName.CREATE_THREAD, values, agent.user
                        )
                except TimeoutError:
                    line = request_line(self.protocol, RequestName.CREATE_THREAD)
                    raise ServiceUnavailable(
                        f"Creating a thread for {agent.user} ({line} at {self.protocol.base_url}): no answer within "
                        f"{timeout_text(self.answer_timeout)}"
                    ) from None
                except RunFailed as failed:
                    raise ServiceUnavailable(f"Creating a thread for {agent.user}: {failed.detail}") from None
                if status is None or not 200 <= status < 300:
                    raise thread_refused(status, answer, agent.user, self.protocol)
                try:
                    thread = self.protocol.answer_field(answer, "thread_id", RequestName.CREATE_THREAD)
                except FieldPathError as error:
                    raise ConfigurationError(str(error)) from None
                threads.append(str(thread))
        self.threads[agent.user] = threads
        return threads

    def _values(self, agent: AgentContext, *, thread: str, marker: str) -> dict[str, Any]:
        values = self.values.of(agent, request=marker)
        values.update(thread=thread, marker=marker, policy=self.protocol.policies[self.policy], run_id="")
        return values

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[aiohttp.ClientSession]:
        """The launch's connection pool while it is open, else a pool of its own for this use."""
        if self._http is not None:
            yield self._http
            return
        http = shared_session(self.connections, self.connect_timeout)
        try:
            yield http
        finally:
            await http.close()


def _check_timeouts(connect: float, answer: float, run: float) -> None:
    for what, seconds in (("connect timeout", connect), ("answer timeout", answer), ("run timeout", run)):
        if not seconds > 0:
            raise ConfigurationError(f"The HTTP {what} must be longer than 0 s, got {seconds!r} s")
    if answer > run:
        raise ConfigurationError(
            f"The answer timeout ({answer:g} s) cannot be longer than the run timeout "
            f"({run:g} s): a run's first event is part of the run"
        )


def _attempt_moved(attempt: RunAttempt, offset_ns: int) -> RunAttempt:
    """``attempt`` with its instants moved back by its shard clock's ``offset_ns``."""
    moved = {
        name: at - offset_ns
        for name in ("request_ns", "first_event_ns", "started_ns", "end_ns")
        if (at := getattr(attempt, name)) is not None
    }
    return replace(attempt, **moved)


@dataclass(frozen=True)
class HttpNotes:
    """What one shard's HTTP agents recorded (its instants on its worker's clock), and whose markers are whose."""

    attempts: list[RunAttempt]
    reads: list[ThreadRead]
    messages: list[ReceivedMessage]
    left_out: int
    marker_owners: dict[str, str]
    config_problems: list[str]


@dataclass(frozen=True)
class HttpToolRecipe:
    """An HTTP agent tool's definition, picklable: protocol, options (tokens signed in the worker), users' threads."""

    name: str
    protocol: HttpProtocol
    options: dict[str, Any]
    threads: dict[str, list[str]]

    def build(self) -> HttpAgentTool:
        tool = HttpAgentTool(self.protocol, **self.options)
        tool.given_threads = self.threads
        return tool

    @staticmethod
    def notes(tool: HttpAgentTool) -> HttpNotes:
        return tool.notes()

    def __repr__(self) -> str:  # the tokens may be a secret
        return f"HttpToolRecipe({self.name!r})"
