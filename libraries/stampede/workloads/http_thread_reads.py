"""Reading threads: during the launch (``read_every``), every thread after it, and other users' threads (the probe).

After the launch :meth:`ThreadReads.final_threads` reads each thread's state,
run list and (when the protocol has it) history, and
:meth:`ThreadReads.probe_foreign_access` asks, as each user, for the next
user's first thread: an answer outside 400-499 is access the service should
have refused. At most :data:`READS_AT_ONCE` requests are in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp

from ..agents import AgentContext
from ..records.threads import ForeignAccess, RunAttempt, ServiceRun, ThreadFinal, ThreadMessage, ThreadRead
from ..records.websocket import timeout_text
from .http_answers import history, service_runs, state_messages
from .http_failures import RunFailed, ThreadReadFailed, body, request_line, said
from .http_protocol import HttpProtocol
from .http_request_templates import RequestName
from .http_requests import answered, json_answer, send
from .websocket_fields import shorten

READS_AT_ONCE = 16  # requests at once when reading threads after a launch
_REFUSING_READ = range(400, 500)


class ThreadReads:
    """The part of :class:`~stampede.workloads.http_agents.HttpAgentTool` that reads threads."""

    protocol: HttpProtocol
    answer_timeout: float
    threads: dict[str, list[str]]
    attempts: list[RunAttempt]
    reads: list[ThreadRead]
    _http: aiohttp.ClientSession | None
    _values: Callable[..., dict[str, Any]]
    """The placeholder values of a request as a user (the tool's)."""
    _client: Callable[[], AbstractAsyncContextManager[aiohttp.ClientSession]]
    """The launch's connection pool, or one for this use (the tool's)."""

    async def _read_during(self, agent: AgentContext, thread: str, values: dict[str, Any]) -> ThreadRead:
        """Read the thread's state during the launch (``read_every``): a failed read is recorded without messages."""
        assert self._http is not None
        start = time.monotonic_ns()
        status: int | None = None
        messages: tuple[ThreadMessage, ...] | None = None
        try:
            async with asyncio.timeout(self.answer_timeout):
                status, answer = await json_answer(
                    self._http, self.protocol, RequestName.READ_STATE, values, agent.user
                )
            if status is not None and 200 <= status < 300:
                messages = state_messages(self.protocol, answer)
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
        messages = state_messages(self.protocol, answer)
        runs: tuple[ServiceRun, ...] = ()
        if self.protocol.request(RequestName.LIST_RUNS) is not None:
            listed = await self._read(http, RequestName.LIST_RUNS, values, owner)
            runs = tuple(service_runs(self.protocol, listed, thread))
        states = None
        if self.protocol.request(RequestName.READ_HISTORY) is not None and self.protocol.answers.history_states:
            answer = await self._read(http, RequestName.READ_HISTORY, values, owner)
            states = history(self.protocol, answer)
        return ThreadFinal(thread, owner, messages, runs, states)

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
                request = send(http, self.protocol, name, values)
                async with await answered(request, name, self.protocol.base_url) as response:
                    status = response.status
                    if not 200 <= status < 300:
                        detail = said(await body(response))
                    else:
                        response.close()  # served: that is the finding; a stream's events are not read
        except TimeoutError:
            detail = f"no answer within {timeout_text(self.answer_timeout)}"
        except RunFailed as failed:
            detail = failed.detail
        refused = status is not None and status in _REFUSING_READ
        return ForeignAccess(
            user, owner, thread, f"{name} ({request_line(self.protocol, name)})", status, refused, detail
        )

    async def _read(self, http: aiohttp.ClientSession, name: RequestName, values: dict[str, Any], user: str) -> Any:
        """The JSON answer of a read after the launch; ThreadReadFailed naming the thread and the answer otherwise."""
        try:
            async with asyncio.timeout(self.answer_timeout):
                status, answer = await json_answer(http, self.protocol, name, values, user)
        except TimeoutError:
            raise ThreadReadFailed(
                f"Reading thread {values['thread']} of {user} ({name}): no answer within "
                f"{timeout_text(self.answer_timeout)}"
            ) from None
        except RunFailed as failed:
            raise ThreadReadFailed(f"Reading thread {values['thread']} of {user} ({name}): {failed.detail}") from None
        if status is None or not 200 <= status < 300:
            line = request_line(self.protocol, name)
            raise ThreadReadFailed(
                f"Reading thread {values['thread']} of its owner {user} ({line}) was answered HTTP {status}: "
                f"{shorten(answer)}"
            )
        return answer
