"""PostgreSQL locks: advisory locks (session and transaction forms) and ``SELECT … FOR UPDATE`` on a lock row.

Each holder keeps ONE connection for the whole launch. That is not a detail: a
session advisory lock belongs to the connection, and returning a connection to
a pool unlocks everything it held (asyncpg's pool runs
``pg_advisory_unlock_all()`` on release), so a lock taken on one pooled
connection and "released" on another was never held where the work ran. The
transaction forms hold until ``COMMIT``, which is their release.

None of them has a lease: the server keeps the lock until it is released or
the connection ends. Waits are bounded by ``lock_timeout`` (SQLSTATE 55P03
when the lock stays taken). Each grant draws a fencing number from the run's
sequence ``lock_fence`` while the lock is held; with no lease, a later grant
always draws a higher number.

=====================  ===============================================================
advisory session       ``pg_advisory_lock(k)`` … ``pg_advisory_unlock(k)`` (false: not owned)
advisory transaction   ``BEGIN; pg_advisory_xact_lock(k)`` … ``COMMIT``
for update             ``BEGIN; SELECT … FROM lock_rows WHERE key = $1 FOR UPDATE`` … ``COMMIT``
=====================  ===============================================================

``k`` is a 64-bit hash of the run's schema and the lock key: advisory locks are
database-wide, so two runs on one server must not share them.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.transaction import Transaction

from ..errors import ConfigurationError
from .base import Grant, Lock, LockHolder, LockKind, LockSpec, ReleaseAnswer

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

LOCK_NOT_AVAILABLE = "55P03"
_SETUP_KEY = "stampede lock setup"
_SETUP = (
    "CREATE SEQUENCE IF NOT EXISTS lock_fence",
    "CREATE TABLE IF NOT EXISTS lock_rows (key text PRIMARY KEY)",
)
_ACQUIRE = {
    LockKind.ADVISORY_SESSION: "SELECT pg_advisory_lock($1)",
    LockKind.ADVISORY_TRANSACTION: "SELECT pg_advisory_xact_lock($1)",
    LockKind.FOR_UPDATE: "SELECT key FROM lock_rows WHERE key = $1 FOR UPDATE",
}
_IN_TRANSACTION = (LockKind.ADVISORY_TRANSACTION, LockKind.FOR_UPDATE)


def advisory_key(schema: str, key: str) -> int:
    """A signed 64-bit advisory lock key for ``key`` in run schema ``schema``."""
    digest = hashlib.blake2b(f"{schema}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresLock(Lock):
    issues_fences = True

    def __init__(self, kind: LockKind, target: PostgresTarget, lease: float | None) -> None:
        if kind not in _ACQUIRE:
            raise ConfigurationError(f"{kind.value!r} is not a PostgreSQL lock")
        if lease is not None:
            raise ConfigurationError(
                f"The {kind.value} lock has no lease: PostgreSQL holds it until it is released or the connection "
                "ends. Leave lease out."
            )
        self.spec = LockSpec(kind)
        self.target = target
        self._pool: asyncpg.Pool | None = None

    async def setup(self, agents: int) -> None:
        self._pool = await self.target.create_pool(agents)
        async with self._pool.acquire() as connection, connection.transaction():
            # Shards on workers set the lock up at once, and CREATE … IF NOT EXISTS races with itself.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(self.target.schema, _SETUP_KEY))
            for statement in _SETUP:
                await connection.execute(statement)

    async def holder(self, key: str, wait: float) -> LockHolder:
        lock_key: str | int = key if self.spec.kind is LockKind.FOR_UPDATE else advisory_key(self.target.schema, key)
        holder = _PostgresHolder(self, lock_key, wait)
        await holder.live_connection()
        return holder

    async def connect(self, key: str | int, wait: float) -> asyncpg.Connection:
        """A connection of the pool, ready to take lock ``key`` waiting at most ``wait`` seconds."""
        assert self._pool is not None, "setup() runs before holders are made"
        connection = await self._pool.acquire()
        try:
            await connection.execute(f"SET lock_timeout = {max(1, round(wait * 1000))}")
            if self.spec.kind is LockKind.FOR_UPDATE:
                await connection.execute("INSERT INTO lock_rows (key) VALUES ($1) ON CONFLICT DO NOTHING", key)
        except BaseException:
            await self._pool.release(connection)
            raise
        return connection

    async def give_back(self, connection: asyncpg.Connection) -> None:
        if self._pool is not None:
            await self._pool.release(connection)

    async def teardown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


class _PostgresHolder(LockHolder):
    def __init__(self, lock: PostgresLock, key: str | int, wait: float) -> None:
        self.lock = lock
        self.kind = lock.spec.kind
        self.key = key
        self.wait = wait
        self.connection: asyncpg.Connection | None = None
        self.transaction: Transaction | None = None

    async def live_connection(self) -> asyncpg.Connection:
        """The holder's connection; a fresh one when the last was cut off (see :meth:`abandon`)."""
        if self.connection is not None and not self.connection.is_closed():
            return self.connection
        if self.connection is not None:
            dead, self.connection = self.connection, None
            await self.lock.give_back(dead)
        self.connection = await self.lock.connect(self.key, self.wait)
        return self.connection

    async def acquire(self, token: str) -> Grant | None:
        connection = await self.live_connection()
        tried = time.monotonic_ns()
        if self.kind in _IN_TRANSACTION:
            self.transaction = connection.transaction()
            await self.transaction.start()
        try:
            await connection.execute(_ACQUIRE[self.kind], self.key)
            fence = await connection.fetchval("SELECT nextval('lock_fence')")
        except asyncpg.PostgresError as error:
            await self._end_transaction(commit=False)
            if error.sqlstate == LOCK_NOT_AVAILABLE:
                return None
            raise
        return Grant(int(fence), tried)

    async def release(self) -> ReleaseAnswer:
        assert self.connection is not None, "released after an acquire"
        if self.kind is LockKind.ADVISORY_SESSION:
            unlocked = await self.connection.fetchval("SELECT pg_advisory_unlock($1)", self.key)
            return ReleaseAnswer.RELEASED if unlocked else ReleaseAnswer.NOT_OWNED
        await self._end_transaction(commit=True)
        return ReleaseAnswer.RELEASED

    async def _end_transaction(self, *, commit: bool) -> None:
        transaction, self.transaction = self.transaction, None
        if transaction is not None:
            await (transaction.commit() if commit else transaction.rollback())

    def abandon(self) -> None:
        # The server ends the hold (and any transaction) when it sees the connection go.
        self.transaction = None
        if self.connection is not None and not self.connection.is_closed():
            self.connection.terminate()

    async def close(self) -> None:
        if self.transaction is not None:  # a hold never released: end it with the connection
            self.abandon()
        connection, self.connection = self.connection, None
        if connection is not None:
            await self.lock.give_back(connection)
