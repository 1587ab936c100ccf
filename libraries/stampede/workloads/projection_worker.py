"""The projection worker: folds a store's new events into ``es_projection``, one transaction per batch.

A task of its own on the engine's loop, it polls for new events and folds them
into ``es_projection`` (a total per stream), recording each application in
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
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import asyncpg

from ..units import format_duration
from .event_store_schema import EVENT_COLUMNS

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

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
        f"SELECT {EVENT_COLUMNS} FROM es_events WHERE {_NAIVE_PAST} ORDER BY seq LIMIT $3",
        f"SELECT EXISTS (SELECT FROM es_events WHERE {_NAIVE_PAST})",
    ),
    Projector.SAFE: _Reads(
        f"SELECT {EVENT_COLUMNS} FROM es_events WHERE {_SAFE_PAST} "
        "AND tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx, seq LIMIT $4",
        f"SELECT EXISTS (SELECT FROM es_events WHERE {_SAFE_PAST})",
    ),
}


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
