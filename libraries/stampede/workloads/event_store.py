"""Event-sourced writes and their projection: agents append events, a worker folds them into a read model.

Agents append credit and debit events to per-user streams in ``es_events``; each
event takes a global sequence number (``seq``, a bigserial) and records the id of
the transaction that wrote it (``tx``, ``pg_current_xact_id()``). A projection
worker, a task of its own on the engine's loop, polls for new events and folds
them into ``es_projection`` (a total per stream), recording each application in
``es_applied`` and its position in ``es_checkpoint``, all in one transaction.

Sequence numbers are taken when a row is inserted, not when it commits, so
events become visible out of ``seq`` order: a transaction holding seq 12 may
commit after the one holding seq 13. A projector has two ways to read new events:

=====  ==========================================================================
naive  ``WHERE seq > last_seq``: once it has read 13 it never looks at 12 again,
       so an event committed after a higher one is skipped for ever.
safe   ``WHERE (tx, seq) > (last_tx, last_seq) AND tx < pg_snapshot_xmin(...)``,
       in ``(tx, seq)`` order: it only reads events of transactions older than
       every transaction still running. No such transaction can still commit or
       start, so nothing can ever appear behind its position. The price: the
       projection waits for the oldest transaction that has written anything
       anywhere on the server, so a long one elsewhere shows up as lag here.
=====  ==========================================================================

The safe projector is the transaction-id horizon that PostgreSQL event stores
use for the same problem. Serialising appends would also work but takes away the
concurrency under test; waiting for gaps to fill needs a timeout that is either
too short (skips a slow commit) or never right (a rolled-back append leaves a gap
for ever).

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
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..records.fields import LAG_TIMING
from ..records.snapshots import ProjectionSnapshot, StoredEvent
from ..retry import NO_RETRIES
from ..units import format_duration
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

EVENT_STORE_TABLES = """
CREATE TABLE IF NOT EXISTS es_events (
    seq     bigserial PRIMARY KEY,
    store   text   NOT NULL,
    stream  text   NOT NULL,
    type    text   NOT NULL CHECK (type IN ('credit', 'debit')),
    amount  bigint NOT NULL CHECK (amount > 0),
    tx      xid8   NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX IF NOT EXISTS es_events_by_seq ON es_events (store, seq);
CREATE INDEX IF NOT EXISTS es_events_by_tx ON es_events (store, tx, seq);
CREATE TABLE IF NOT EXISTS es_projection (
    store   text   NOT NULL,
    stream  text   NOT NULL,
    total   bigint NOT NULL,
    events  bigint NOT NULL,
    PRIMARY KEY (store, stream)
);
-- One row per application of an event; no key, so an event applied twice shows as two rows.
CREATE TABLE IF NOT EXISTS es_applied (
    store   text   NOT NULL,
    seq     bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS es_applied_by_seq ON es_applied (store, seq);
CREATE TABLE IF NOT EXISTS es_checkpoint (
    store    text   PRIMARY KEY,
    last_tx  xid8   NOT NULL,
    last_seq bigint NOT NULL
)"""

_APPEND = "INSERT INTO es_events (store, stream, type, amount) VALUES ($1, $2, $3, $4) RETURNING seq"
_COLUMNS = "seq, tx, stream, CASE type WHEN 'credit' THEN amount ELSE -amount END AS change"
_APPLY = """
WITH batch AS (
    SELECT * FROM unnest($2::bigint[], $3::text[], $4::bigint[]) AS b (seq, stream, change)
), applied AS (
    INSERT INTO es_applied (store, seq) SELECT $1, seq FROM batch
)
INSERT INTO es_projection AS p (store, stream, total, events)
SELECT $1, stream, sum(change), count(*) FROM batch GROUP BY stream
ON CONFLICT (store, stream) DO UPDATE SET total = p.total + excluded.total, events = p.events + excluded.events"""
_SAVE_CHECKPOINT = """
INSERT INTO es_checkpoint (store, last_tx, last_seq) VALUES ($1, $2, $3)
ON CONFLICT (store) DO UPDATE SET last_tx = excluded.last_tx, last_seq = excluded.last_seq"""
STATEMENT_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 5.0


class Projector(Enum):
    """How the projection worker finds new events; see the module documentation."""

    SAFE = "safe"
    NAIVE = "naive"


@dataclass(frozen=True)
class _Reads:
    """A projector's two queries: the next batch past its position, and whether anything lies past it at all."""

    next_batch: str
    anything_past: str


_NAIVE_PAST = "store = $1 AND seq > $2"
_SAFE_PAST = "store = $1 AND (tx, seq) > ($2::xid8, $3)"
_READS = {
    Projector.NAIVE: _Reads(
        f"SELECT {_COLUMNS} FROM es_events WHERE {_NAIVE_PAST} ORDER BY seq LIMIT $3",
        f"SELECT EXISTS (SELECT FROM es_events WHERE {_NAIVE_PAST})",
    ),
    Projector.SAFE: _Reads(
        f"SELECT {_COLUMNS} FROM es_events WHERE {_SAFE_PAST} "
        "AND tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx, seq LIMIT $4",
        f"SELECT EXISTS (SELECT FROM es_events WHERE {_SAFE_PAST})",
    ),
}


async def create_event_store(target: PostgresTarget) -> None:
    """Create the ``es_`` tables in the run's schema, if they do not exist yet."""
    connection = await target.connect()
    try:
        async with connection.transaction():
            await connection.execute(EVENT_STORE_TABLES)
    finally:
        await connection.close()


class ProjectionWorker:
    """Polls one store's new events and folds them into its projection, one transaction per batch.

    Runs until told the appends are over (:meth:`appends_done`) and then until it
    has caught up, or ``max_catch_up`` has passed, or a database error stops it;
    it never outlives those bounds. ``applied_at_ns`` (shared with the tool, so it
    spans launches) records when each event's application committed.
    """

    def __init__(
        self,
        target: PostgresTarget,
        store: str,
        projector: Projector,
        *,
        poll_interval: float,
        batch_size: int,
        max_catch_up: float,
        applied_at_ns: dict[int, int],
    ) -> None:
        self.target = target
        self.store = store
        self.projector = projector
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_catch_up = max_catch_up
        self.applied_at_ns = applied_at_ns
        self.error: str | None = None
        self.gave_up = False
        self._reads = _READS[projector]
        self._position = (0, 0)  # (last_tx, last_seq); the naive projector uses last_seq only
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._catch_up_deadline_ns: int | None = None
        self._waiters: dict[int, asyncio.Future[int | None]] = {}
        self._caught_up = asyncio.Event()

    async def start(self) -> None:
        """Open the worker's connection, resume from the store's checkpoint and start polling."""
        self._connection = await self.target.connect()
        try:
            row = await self._connection.fetchrow(
                "SELECT last_tx, last_seq FROM es_checkpoint WHERE store = $1", self.store
            )
        except BaseException:
            await self._close_connection()
            raise
        if row is not None:
            self._position = (int(row["last_tx"]), int(row["last_seq"]))
        self._task = asyncio.create_task(self._run(), name=f"projection worker {self.store}")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def caught_up(self) -> bool:
        """Whether the worker stopped because it had applied every event it could find."""
        return self._caught_up.is_set()

    def describe_state(self) -> str:
        if self.error is not None:
            return f"failed: {self.error}"
        if self.caught_up:
            return "caught up and stopped"
        if self.gave_up:
            return f"gave up catching up after {format_duration(self.max_catch_up)}"
        if self.running:
            return "was still catching up"
        return "was stopped before it caught up"

    def appends_done(self) -> None:
        """The agents stopped appending: catch up, then stop (within ``max_catch_up``)."""
        if self._catch_up_deadline_ns is None:
            self._catch_up_deadline_ns = time.monotonic_ns() + int(self.max_catch_up * 1e9)

    async def wait_applied(self, seq: int, timeout: float) -> int | None:
        """When (monotonic ns) event ``seq``'s application committed; ``None`` if not within ``timeout`` s."""
        if seq in self.applied_at_ns:
            return self.applied_at_ns[seq]
        if not self.running:
            return None
        waiter = self._waiters[seq] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(seq, None)

    async def wait_stopped(self, timeout: float) -> None:
        """Wait at most ``timeout`` s for the worker to stop by itself."""
        if self._task is not None and timeout > 0:
            await asyncio.wait([self._task], timeout=timeout)

    async def stop(self) -> None:
        """Stop the worker now (idempotent, bounded)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task], timeout=STOP_GRACE_SECONDS)
        await self._close_connection()

    async def _run(self) -> None:
        try:
            while True:
                applied = await self._project_next_batch()
                if self._catch_up_deadline_ns is not None:
                    if not applied and not await self._anything_past_position():
                        self._caught_up.set()
                        return
                    if time.monotonic_ns() >= self._catch_up_deadline_ns:
                        self.gave_up = True
                        return
                if applied < self.batch_size:
                    await asyncio.sleep(self.poll_interval)
        except Exception as error:  # noqa: BLE001 - unattended: whatever stops the worker is reported, not lost
            self.error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        finally:
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_result(None)
            await self._close_connection()

    def _position_args(self) -> tuple[int, ...]:
        return (self._position[1],) if self.projector is Projector.NAIVE else self._position

    async def _project_next_batch(self) -> int:
        connection = self._connection
        assert connection is not None, "start() opens the connection"
        async with connection.transaction():
            rows = await connection.fetch(
                self._reads.next_batch,
                self.store,
                *self._position_args(),
                self.batch_size,
                timeout=STATEMENT_TIMEOUT_SECONDS,
            )
            if not rows:
                return 0
            last = rows[-1]  # both projectors read in the order of their position
            position = (0 if self.projector is Projector.NAIVE else int(last["tx"]), int(last["seq"]))
            await connection.execute(
                _APPLY,
                self.store,
                [row["seq"] for row in rows],
                [row["stream"] for row in rows],
                [row["change"] for row in rows],
                timeout=STATEMENT_TIMEOUT_SECONDS,
            )
            await connection.execute(_SAVE_CHECKPOINT, self.store, *position, timeout=STATEMENT_TIMEOUT_SECONDS)
        applied_at = time.monotonic_ns()
        self._position = position
        for row in rows:
            seq = int(row["seq"])
            self.applied_at_ns.setdefault(seq, applied_at)
            waiter = self._waiters.get(seq)
            if waiter is not None and not waiter.done():
                waiter.set_result(applied_at)
        return len(rows)

    async def _anything_past_position(self) -> bool:
        assert self._connection is not None, "start() opens the connection"
        return bool(
            await self._connection.fetchval(
                self._reads.anything_past, self.store, *self._position_args(), timeout=STATEMENT_TIMEOUT_SECONDS
            )
        )

    async def _close_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=STOP_GRACE_SECONDS)
            except Exception:  # noqa: BLE001 - a broken connection may fail to close in any way; terminate it
                connection.terminate()


class EventAppendTool(PostgresTool):
    """Each operation appends one credit or debit event to a random user stream and reads it back.

    A projection worker starts with each launch and catches up after it; see the
    module documentation for the two projectors.
    """

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
                events = await connection.fetch(f"SELECT {_COLUMNS} FROM es_events WHERE store = $1", self.store)
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
