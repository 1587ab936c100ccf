"""Event-sourced writes: agents append events, a projection worker folds them into a read model, agents read back.

Agents append credit and debit events to per-user streams in ``es_events``
(the tables are in :mod:`~stampede.workloads.event_store_schema`); each event
takes a global sequence number (``seq``, a bigserial) and records the id of
the transaction that wrote it (``tx``, ``pg_current_xact_id()``). A projection
worker (:mod:`~stampede.workloads.projection_worker`, which explains the safe
and the naive way to read new events) folds them into ``es_projection``.

Each append holds its transaction open for a random ``commit_delay`` after
taking its seq, as a tool that does more work before committing would, so
commits do land out of seq order. After committing, the agent waits (at most
``read_timeout``) until the projection reflects its own event and records that
read-your-writes lag as the timing ``projection_lag``. The worker tells the
waiting agent as soon as its projection transaction commits, so the lag is the
exact time from one commit to the other, not rounded up to a polling interval.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..records.fields import LAG_TIMING
from ..records.snapshots import ProjectionSnapshot, StoredEvent
from ..retry import NO_RETRIES
from ..units import format_duration
from .event_store_schema import EVENT_COLUMNS, create_event_store
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool
from .projection_worker import ProjectionWorker, Projector

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

_APPEND = "INSERT INTO es_events (store, stream, type, amount) VALUES ($1, $2, $3, $4) RETURNING seq"


class EventAppendTool(PostgresTool):
    """Each operation appends one credit or debit event to a random user stream and reads it back.

    A projection worker starts with each launch and catches up after it; see
    :mod:`~stampede.workloads.projection_worker` for the two projectors.
    """

    timed_phases = ("append", LAG_TIMING)

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "append events",
        streams: int = 10,
        projector: Projector = Projector.SAFE,
        poll_interval: float = 0.02,
        commit_delay: float = 0.05,
        read_timeout: float = 2.0,
        max_catch_up: float = 30.0,
        batch_size: int = 500,
    ) -> None:
        if streams < 1:
            raise ConfigurationError(f"an event append tool needs at least 1 stream, got {streams}")
        if batch_size < 1:
            raise ConfigurationError(f"the projection batch size must be at least 1, got {batch_size}")
        for what, seconds in (
            ("poll interval", poll_interval),
            ("read timeout", read_timeout),
            ("max catch-up time", max_catch_up),
        ):
            if seconds <= 0:
                raise ConfigurationError(f"the {what} must be longer than 0 s, got {seconds} s")
        if commit_delay < 0:
            raise ConfigurationError(f"the commit delay cannot be negative, got {commit_delay} s")
        super().__init__(target, name=name, isolation=IsolationLevel.READ_COMMITTED, retry=NO_RETRIES)
        self.streams = streams
        self.projector = projector
        self.poll_interval = poll_interval
        self.commit_delay = commit_delay
        self.read_timeout = read_timeout
        self.max_catch_up = max_catch_up
        self.batch_size = batch_size
        self.store = secrets.token_hex(6)  # each tool its own store, in tables every tool of the run shares
        self.applied_at_ns: dict[int, int] = {}
        self.worker: ProjectionWorker | None = None

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "projector": self.projector.value,
            "streams": str(self.streams),
            "poll interval": format_duration(self.poll_interval),
            "commit delay": f"up to {format_duration(self.commit_delay)}",
            "read-your-writes wait": format_duration(self.read_timeout),
        }

    async def setup(self, agents: int) -> None:
        await create_event_store(self.target)
        await self.stop_worker()
        await super().setup(agents)
        worker = ProjectionWorker(
            self.target,
            self.store,
            self.projector,
            poll_interval=self.poll_interval,
            batch_size=self.batch_size,
            max_catch_up=self.max_catch_up,
            applied_at_ns=self.applied_at_ns,
        )
        try:
            await worker.start()
        except BaseException:
            await super().teardown()
            raise
        self.worker = worker

    async def teardown(self) -> None:
        try:
            await super().teardown()
        finally:
            if self.worker is not None:
                self.worker.appends_done()

    async def run(self, agent: AgentContext) -> OpResult:
        connection: asyncpg.Connection = agent.state["connection"]
        worker = self.worker
        assert worker is not None, "setup() starts the worker before agents run"
        stream = f"user-{random.randint(1, self.streams)}"
        kind = random.choice(("credit", "debit"))
        amount = random.randint(1, 100)
        started = time.monotonic_ns()
        async with connection.transaction():
            seq = await connection.fetchval(_APPEND, self.store, stream, kind, amount)
            if self.commit_delay:
                await asyncio.sleep(random.uniform(0.0, self.commit_delay))
        committed = time.monotonic_ns()
        applied = await worker.wait_applied(seq, self.read_timeout)
        timings = {"append": committed - started}
        if applied is not None:
            # The worker may commit before this coroutine resumes from its own commit: that is no lag at all.
            timings[LAG_TIMING] = max(0, applied - committed)
        return OpResult(
            read={"seen": applied is not None},
            written={"stream": stream, "seq": seq, "type": kind, "amount": amount, "committed_ns": committed},
            timings=timings,
        )

    async def stop_worker(self) -> None:
        """Stop the projection worker, if one runs."""
        if self.worker is not None:
            await self.worker.stop()

    async def converge(self, deadline_ns: int) -> ProjectionSnapshot:
        """Give the worker until ``deadline_ns`` (monotonic) to catch up, stop it, and snapshot the result."""
        worker = self.worker
        try:
            if worker is not None:
                await worker.wait_stopped((deadline_ns - time.monotonic_ns()) / 1e9)
            caught_up = worker is not None and worker.caught_up
            state = worker.describe_state() if worker is not None else "never ran"
        finally:
            await self.stop_worker()  # so the snapshot is final, and nothing is left running
        return await self.snapshot(caught_up=caught_up, worker_state=state)

    async def snapshot(self, *, caught_up: bool, worker_state: str) -> ProjectionSnapshot:
        """The store's events and its projection as they are now, with what the caller knows of the worker."""
        connection = await self.target.connect()
        try:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                events = await connection.fetch(f"SELECT {EVENT_COLUMNS} FROM es_events WHERE store = $1", self.store)
                applied = await connection.fetch("SELECT seq FROM es_applied WHERE store = $1", self.store)
                totals = await connection.fetch("SELECT stream, total FROM es_projection WHERE store = $1", self.store)
        finally:
            await connection.close()
        return ProjectionSnapshot(
            events=[StoredEvent(row["seq"], row["stream"], row["change"]) for row in events],
            applied=[row["seq"] for row in applied],
            totals={row["stream"]: row["total"] for row in totals},
            applied_at_ns=dict(self.applied_at_ns),
            caught_up=caught_up,
            worker=worker_state,
        )
