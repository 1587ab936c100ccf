"""Runs on threads: at most one active run per thread, a FIFO queue behind it, and the four multitask strategies.

A run is a task of the service that appends one message per step to its
thread. Its events go to its :class:`EventLog`, which every stream of the run
follows (a stream that was cut resumes from any event id in it); the log of an
ended run is kept until :attr:`ServiceSettings.finished_runs_kept` newer runs
have ended. When run B is requested while run A is active (or queued) on the
same thread, B's ``multitask_strategy`` decides: ``reject`` refuses B,
``enqueue`` queues it, ``interrupt`` and ``rollback`` stop A at its next step
boundary (removing A's messages for ``rollback``), end the runs queued behind
A without starting them, then start B.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .bugs import Bug
from .run_events import Event, EventLog
from .settings import ServiceSettings
from .store import DATABASE_ERRORS
from .threads import Message, ThreadStore

log = logging.getLogger(__package__)

GUARD_PAUSE = 0.05  # seconds between checking and setting the active-run guard, under the concurrent_runs bug

Spawn = Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]


class Strategy(StrEnum):
    REJECT = "reject"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    INTERRUPTED = "interrupted"
    ROLLED_BACK = "rolled_back"
    ERROR = "error"


TERMINAL_EVENTS = {
    Status.SUCCESS: "run_completed",
    Status.INTERRUPTED: "run_interrupted",
    Status.ROLLED_BACK: "run_rolled_back",
    Status.ERROR: "run_failed",
}


class ThreadBusy(Exception):
    """The thread has an active run and the request's strategy is ``reject``."""

    def __init__(self, active_run_id: str) -> None:
        super().__init__(active_run_id)
        self.active_run_id = active_run_id


class ServiceClosing(Exception):
    """The service is shutting down and starts no run."""


@dataclass(frozen=True)
class RunInput:
    """What a run request asks for (checked by the HTTP layer)."""

    marker: str
    text: str
    steps: int
    step_ms: int
    strategy: Strategy


@dataclass(frozen=True)
class Stop:
    """Why a run stops early: ``status`` it ends with, ``by`` the run that displaced it (None for a cancel)."""

    status: Status
    by: str | None


@dataclass(eq=False)
class Lane:
    """One thread's runs: the active one, those queued behind it."""

    active: Run | None = None
    queue: deque[Run] = field(default_factory=deque)
    admission: asyncio.Lock = field(default_factory=asyncio.Lock)
    shared_writer: EventLog | None = None  # the crossed_streams bug's one writer per thread

    @property
    def busy(self) -> bool:
        return self.active is not None or bool(self.queue)


@dataclass(eq=False)
class Run:
    run_id: str
    thread_id: str
    user_id: str
    request: RunInput
    lane: Lane
    status: Status = Status.PENDING
    log: EventLog = field(default_factory=EventLog)
    messages: list[Message] = field(default_factory=list)
    stop: Stop | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    next_seq: int = 1
    task: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_EVENTS

    def request_stop(self, status: Status, by: str | None) -> None:
        """Stop at the next step boundary; the first request to stop the run decides how it ends."""
        if self.stop is None:
            self.stop = Stop(status, by)
            self.stopping.set()

    async def step_wait(self, step_ms: int) -> bool:
        """Wait out a step; True if the run is to stop instead of taking it."""
        if not self.stopping.is_set() and step_ms:
            with suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), step_ms / 1000)
        return self.stopping.is_set()


class ThreadRuns:
    """Every thread's lane and every remembered run; ``describe_error`` turns a database error into safe text."""

    def __init__(
        self,
        threads: ThreadStore,
        settings: ServiceSettings,
        bugs: frozenset[Bug],
        *,
        spawn: Spawn,
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self.settings = settings
        self.bugs = bugs
        self.closing = False
        self._threads = threads
        self._spawn = spawn
        self._describe_error = describe_error
        self._lanes: dict[str, Lane] = {}
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._ended: deque[str] = deque()

    def find(self, thread_id: str, run_id: str) -> Run | None:
        """A remembered run of ``thread_id`` (the caller has checked the thread is the user's)."""
        run = self._runs.get(run_id)
        return run if run is not None and run.thread_id == thread_id else None

    async def request(self, thread_id: str, user_id: str, request: RunInput) -> Run:
        """Admit a run on the thread as its strategy says; ThreadBusy under ``reject`` when the thread is busy."""
        if self.closing:
            raise ServiceClosing
        lane = self._lanes.setdefault(thread_id, Lane())
        async with self._admission(lane):
            busy = lane.busy
            if busy and request.strategy is Strategy.REJECT:
                raise ThreadBusy(self._blocking(lane).run_id)
            run = Run(f"run-{uuid.uuid4().hex}", thread_id, user_id, request, lane)
            await self._threads.add_run(run.run_id, thread_id, user_id, request.strategy, request.marker)
            if Bug.CONCURRENT_RUNS in self.bugs:
                await asyncio.sleep(GUARD_PAUSE)  # the guard read before the insert is what decides
            else:
                busy = lane.busy  # a run may have ended during the insert
            self._runs[run.run_id] = run
            if Bug.CROSSED_STREAMS in self.bugs:
                lane.shared_writer = run.log
            if not busy:
                self._start(lane, run)
            elif request.strategy is Strategy.ENQUEUE:
                await self._enqueue(lane, run)
            else:
                await self._displace(lane, run)
        return run

    async def cancel(self, run: Run) -> Status:
        """Interrupt the run at its next step (or at once if it is queued); return its status now."""
        if run in run.lane.queue:
            run.lane.queue.remove(run)
            await self._end(run, Status.INTERRUPTED, by=None)
        elif not run.ended:
            run.request_stop(Status.INTERRUPTED, None)
        return run.status

    async def close(self, timeout: float) -> None:
        """Shutting down: cancel every run still going, end every stream."""
        self.closing = True
        tasks = [run.task for run in self._runs.values() if run.task is not None and not run.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        for run in self._runs.values():
            run.log.close()
            run.done.set()

    # Admission

    def _admission(self, lane: Lane) -> AbstractAsyncContextManager[Any]:
        # The concurrent_runs bug: no lock, so a second request checks the guard before the first has set it.
        return nullcontext() if Bug.CONCURRENT_RUNS in self.bugs else lane.admission

    @staticmethod
    def _blocking(lane: Lane) -> Run:
        return lane.active if lane.active is not None else lane.queue[0]

    def _start(self, lane: Lane, run: Run) -> None:
        lane.active = run
        run.task = self._spawn(self._execute(lane, run))

    async def _enqueue(self, lane: Lane, run: Run) -> None:
        if Bug.LOST_ENQUEUED_RUN in self.bugs:
            # The bug: one slot for "the next run"; a newer one takes it, and the one it held is called done.
            for replaced in list(lane.queue):
                await self._end(replaced, Status.SUCCESS, by=None)
            lane.queue.clear()
        lane.queue.append(run)
        self._emit(run, "run_queued", position=len(lane.queue))

    async def _displace(self, lane: Lane, run: Run) -> None:
        waiting, lane.queue = list(lane.queue), deque([run])
        for queued in waiting:
            await self._end(queued, Status.INTERRUPTED, by=run.run_id)
        if lane.active is not None:
            stopped = Status.INTERRUPTED if run.request.strategy is Strategy.INTERRUPT else Status.ROLLED_BACK
            lane.active.request_stop(stopped, run.run_id)

    def _advance(self, lane: Lane, ended: Run) -> None:
        if lane.active is ended:
            lane.active = None
        if lane.active is None and lane.queue and not self.closing:
            self._start(lane, lane.queue.popleft())
        elif not lane.busy and not lane.admission.locked() and self._lanes.get(ended.thread_id) is lane:
            del self._lanes[ended.thread_id]  # an idle thread costs nothing; its next run makes a new lane

    # Execution

    async def _execute(self, lane: Lane, run: Run) -> None:
        try:
            run.status = Status.RUNNING
            await self._threads.set_run_status(run.run_id, Status.RUNNING, started=True)
            self._emit(run, "run_started")
            request = run.request
            for step in range(1, request.steps + 1):
                if await run.step_wait(request.step_ms):
                    break
                message = {"id": f"{run.run_id}:{step}", "run_id": run.run_id, "marker": request.marker}
                message["text"] = request.text
                state = await self._threads.append(run.thread_id, run.run_id, message)
                run.messages.append(message)
                self._emit(run, "message_appended", message=message, counter=state.counter, version=state.version)
            await self._stop_or_complete(run)
        except DATABASE_ERRORS as error:
            log.warning("run %s on thread %s failed: %s", run.run_id, run.thread_id, self._describe_error(error))
            await self._fail(run, "the service could not reach its database; try again")
        except Exception:
            log.exception("run %s on thread %s failed", run.run_id, run.thread_id)
            await self._fail(run, "the service failed unexpectedly; see its log")
        finally:
            self._advance(lane, run)

    async def _stop_or_complete(self, run: Run) -> None:
        stop = run.stop
        if stop is None:
            await self._end(run, Status.SUCCESS, by=None)
        elif stop.status is Status.ROLLED_BACK:
            # The rollback_keeps_writes bug: the removal is keyed by the run that displaced it (which wrote nothing).
            removed = stop.by if Bug.ROLLBACK_KEEPS_WRITES in self.bugs and stop.by else run.run_id
            await self._threads.remove_run(run.thread_id, removed, recorded_as=run.run_id)
            await self._end(run, Status.ROLLED_BACK, by=stop.by)
        elif Bug.INTERRUPT_REPORTS_SUCCESS in self.bugs:
            await self._end(run, Status.SUCCESS, by=None)  # the bug: a run that stopped early "completed"
        else:
            await self._end(run, Status.INTERRUPTED, by=stop.by)

    async def _fail(self, run: Run, message: str) -> None:
        try:
            await self._end(run, Status.ERROR, by=None, message=message)
        except DATABASE_ERRORS:
            self._finish(run, Status.ERROR, by=None, message=message)

    async def _end(self, run: Run, status: Status, *, by: str | None, message: str | None = None) -> None:
        """Record how the run ended, send its terminal event, end its stream."""
        await self._threads.set_run_status(run.run_id, status, ended=True)
        self._finish(run, status, by=by, message=message)

    def _finish(self, run: Run, status: Status, *, by: str | None, message: str | None) -> None:
        run.status = status
        extra: dict[str, Any] = {"status": status}
        if status in (Status.INTERRUPTED, Status.ROLLED_BACK):
            extra["by"] = by
        if message is not None:
            extra["message"] = message
        self._emit(run, TERMINAL_EVENTS[status], **extra)
        run.log.close()
        run.done.set()
        self._forget_old(run)

    def _forget_old(self, run: Run) -> None:
        self._ended.append(run.run_id)
        while len(self._ended) > self.settings.finished_runs_kept:
            self._runs.pop(self._ended.popleft(), None)

    def _emit(self, run: Run, name: str, **extra: Any) -> None:
        seq, run.next_seq = run.next_seq, run.next_seq + 1
        data = {
            "run_id": run.run_id,
            "thread_id": run.thread_id,
            "user_id": run.user_id,
            "marker": run.request.marker,
            "seq": seq,
            **extra,
        }
        event = Event(name, f"{run.run_id}:{seq}", json.dumps(data))
        # The crossed_streams bug: every run of the thread writes to the stream of the run requested last.
        writer = run.lane.shared_writer if run.lane.shared_writer is not None else run.log
        writer.add(event)
