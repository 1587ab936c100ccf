"""Agent runs: each a task of its session that thinks, uses the credit tool and reports every step as an event."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis import exceptions as rx

from .bugs import Bug
from .coordination import RedisLocks
from .protocol import TOOL_NAME, ClientType, ErrorCode, EventType, ProtocolError, RunFailure, RunRequest
from .sessions import Session
from .settings import ServiceSettings
from .store import DATABASE_ERRORS, AgentStore, ToolFailure, ToolResult

log = logging.getLogger(__package__)

LEAKED_BUFFER_BYTES = 256 * 1024  # what the memory_growth bug keeps per run besides the transcript


@dataclass
class Run:
    session: Session
    request: RunRequest
    run_id: str

    def frame(self, kind: EventType, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind,
            "user_id": self.session.user_id,
            "run_id": self.run_id,
            "thread_id": self.request.thread_id,
            "marker": self.request.marker,
            "request_id": self.request.request_id,
            **fields,
        }


class AgentRuns:
    """Starts each run a session asks for and carries it out, sending its events through ``emit``.

    ``describe_error`` turns a database or Redis error into text without passwords.
    """

    def __init__(
        self,
        store: AgentStore,
        locks: RedisLocks,
        settings: ServiceSettings,
        bugs: frozenset[Bug],
        *,
        emit: Callable[[Session, dict[str, Any]], Awaitable[None]],
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self.settings = settings
        self.bugs = bugs
        self._store = store
        self._locks = locks
        self._emit = emit
        self._describe_error = describe_error
        self._reporting_to: Session | None = None  # the leak bug's shared "current session"
        self._archive: list[tuple[str, list[dict[str, Any]], bytes]] = []  # the memory_growth bug's

    async def start(self, session: Session, request: RunRequest) -> None:
        """Start the run ``request`` asks for as a task of ``session``; ProtocolError for a thread it has not opened."""
        if request.kind is ClientType.START_RUN:
            await self._store.open_thread(session.user_id, request.thread_id)
        elif not await self._store.thread_exists(session.user_id, request.thread_id):
            raise ProtocolError(
                ErrorCode.UNKNOWN_THREAD,
                f"you have no thread {request.thread_id!r}: open it with start_run first",
                request.request_id,
            )
        session.runs_started += 1
        run_id = f"run-{session.runs_started}" if Bug.DUPLICATE_RUN_IDS in self.bugs else f"run-{uuid.uuid4().hex}"
        task = asyncio.create_task(self._run(Run(session, request, run_id)))
        session.runs.add(task)
        task.add_done_callback(session.runs.discard)

    async def _run(self, run: Run) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent: list[dict[str, Any]] = []
        try:
            async with self._whole_run_lock():
                self._reporting_to = run.session
                await self._run_event(
                    run,
                    sent,
                    EventType.AGENT_STARTED,
                    context_bytes=run.request.content_bytes,
                    context_sha256=run.request.content_sha256,
                )
                await self._run_event(run, sent, EventType.AGENT_THINKING, think_ms=self.settings.think_ms)
                await asyncio.sleep(self.settings.think_ms / 1000)
                cost = self.settings.run_cost if run.request.cost is None else run.request.cost
                await self._run_event(run, sent, EventType.TOOL_EXECUTING, tool=TOOL_NAME, cost=cost)
                result = await self._use_tool(run, cost)
                await self._run_event(
                    run,
                    sent,
                    EventType.TOOL_COMPLETED,
                    tool=TOOL_NAME,
                    cost=cost,
                    balance=result.balance,
                    message_position=result.message_position,
                )
                await self._run_event(
                    run, sent, EventType.AGENT_COMPLETED, duration_ms=round((loop.time() - started) * 1000)
                )
        except ToolFailure as failure:
            await self._run_event(run, sent, EventType.AGENT_FAILED, code=failure.code, message=failure.message)
        except Exception:
            log.exception("run %s of %s failed", run.run_id, run.session.user_id)
            await self._run_event(
                run,
                sent,
                EventType.AGENT_FAILED,
                code=RunFailure.INTERNAL_ERROR,
                message="the service failed unexpectedly; see its log",
            )
        finally:
            if Bug.MEMORY_GROWTH in self.bugs:
                self._archive.append((run.request.content, sent, b"\xa5" * LEAKED_BUFFER_BYTES))

    def _whole_run_lock(self) -> AbstractAsyncContextManager[None]:
        return self._locks.held("global") if Bug.GLOBAL_LOCK in self.bugs else nullcontext()

    async def _run_event(self, run: Run, sent: list[dict[str, Any]], kind: EventType, **fields: Any) -> None:
        frame = run.frame(kind, **fields)
        sent.append(frame)
        # The leak bug: report to the shared "current session" instead of the run's own.
        target = self._reporting_to if Bug.LEAK in self.bugs and self._reporting_to is not None else run.session
        await self._emit(target, frame)

    async def _use_tool(self, run: Run, cost: int) -> ToolResult:
        user_id, request = run.session.user_id, run.request
        try:
            async with self._locks.held(f"thread:{user_id}:{request.thread_id}"):
                return await self._store.deduct_and_record(
                    user_id, request.thread_id, run.run_id, request.marker, request.content, cost
                )
        except rx.RedisError as error:
            raise ToolFailure(RunFailure.REDIS_UNAVAILABLE, f"Redis failed: {self._describe_error(error)}") from None
        except asyncpg.UniqueViolationError:
            raise ToolFailure(RunFailure.CONFLICT, "another run wrote the same thread position") from None
        except DATABASE_ERRORS as error:
            raise ToolFailure(
                RunFailure.DATABASE_UNAVAILABLE,
                f"PostgreSQL failed: {self._describe_error(error)}",
            ) from None
