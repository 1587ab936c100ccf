"""What the agent service keeps in PostgreSQL: credits per user, threads, thread messages (and the HTTP tables)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Self

import asyncpg

from .batches import Batched
from .errors import ConfigurationError, ServiceUnavailable
from .logsafe import mask_dsn, scrub
from .protocol import RunFailure
from .threads import THREAD_TABLES

APPLICATION_NAME = "stampede-agent-service"
"""Names the service's PostgreSQL connections, followed by the schema it serves (see :func:`application_name`)."""
LOST_UPDATE_PAUSE = 0.02  # the read-modify-write window of the lost_update bug, in seconds
_ACQUIRE_TIMEOUT = 10.0
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
"""What a call of the store raises when PostgreSQL fails or cannot be reached."""

_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.agent_credits (
    user_id text PRIMARY KEY,
    balance bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.agent_threads (
    user_id text NOT NULL,
    thread_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, thread_id)
);
CREATE TABLE IF NOT EXISTS {schema}.agent_messages (
    id bigserial PRIMARY KEY,
    user_id text NOT NULL,
    thread_id text NOT NULL,
    position int NOT NULL,
    run_id text NOT NULL,
    marker text NOT NULL,
    cost bigint NOT NULL,
    content text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, thread_id, position)
);
"""

# One statement per step, each one round trip: a session+run is a handful of statements, and on a loaded
# machine every round trip's CPU (driver and server) is what the service runs out of first. Sessions that
# start together, and threads opened together, share one statement (batches.py).
_ENSURE_USERS = """
WITH wanted AS (
    SELECT unnest($1::text[]) AS user_id
), created AS (
    INSERT INTO agent_credits (user_id, balance) SELECT user_id, $2 FROM wanted ON CONFLICT DO NOTHING
    RETURNING user_id, balance
)
SELECT user_id, balance FROM created UNION ALL SELECT user_id, balance FROM agent_credits JOIN wanted USING (user_id)
"""
_BALANCES = "SELECT user_id, balance FROM agent_credits WHERE user_id = ANY($1::text[])"
_OPEN_THREADS = """INSERT INTO agent_threads (user_id, thread_id) SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT DO NOTHING"""
_BALANCE = "SELECT balance FROM agent_credits WHERE user_id = $1"
_RECORD_MESSAGE = """INSERT INTO agent_messages (user_id, thread_id, position, run_id, marker, cost, content)
SELECT $1, $2, (SELECT coalesce(max(position), 0) + 1 FROM agent_messages WHERE user_id = $1 AND thread_id = $2),
       $3, $4, $5, $6 {source}
RETURNING position"""
_DEDUCT_AND_RECORD = f"""
WITH deducted AS (
    UPDATE agent_credits SET balance = balance - $5 WHERE user_id = $1 AND balance >= $5 RETURNING balance
), recorded AS (
    {_RECORD_MESSAGE.format(source="FROM deducted")}
)
SELECT deducted.balance, recorded.position FROM deducted, recorded
"""


class ToolFailure(Exception):
    """A run's tool could not do its work; ``code`` goes into the ``agent_failed`` event."""

    def __init__(self, code: RunFailure, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ToolResult:
    balance: int
    message_position: int


def application_name(schema: str) -> str:
    """The ``application_name`` of the service's connections: which service, and for which schema (tenant)."""
    return f"{APPLICATION_NAME} {schema}"


def check_schema_name(schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema or ""):
        raise ConfigurationError(
            f"PostgreSQL schema {schema!r} cannot be used: give a lower-case name of a-z, 0-9 and _ "
            "(at most 63 characters), such as the harness's stampede_<run_id>."
        )
    return schema


class AgentStore:
    """The service's PostgreSQL pool, confined to one schema (``search_path``)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, initial_credits: int, lost_update: bool) -> None:
        self.pool = pool
        self.schema = schema
        self.initial_credits = initial_credits
        self.lost_update = lost_update
        # Both batchers together hold half the pool at most, so they never crowd out the runs' own statements.
        flushers = max(1, pool.get_max_size() // 4)
        self._users: Batched[str, int] = Batched(self._ensure_users, flushers)
        self._threads: Batched[tuple[str, str], None] = Batched(self._open_threads, flushers)

    @classmethod
    async def open(
        cls,
        dsn: str,
        schema: str,
        *,
        pool_size: int,
        initial_credits: int,
        lost_update: bool,
        connect_timeout: float = 10.0,
    ) -> Self:
        """Connect, check that ``schema`` exists, create the tables in it if they are missing."""
        check_schema_name(schema)
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                server_settings={"search_path": schema, "application_name": application_name(schema)},
                reset=_nothing_to_reset,
            )
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise ServiceUnavailable(
                f"Cannot connect to PostgreSQL at {mask_dsn(dsn)}: {scrub(str(error), dsn)}"
            ) from None
        try:
            async with pool.acquire() as connection, connection.transaction():
                if not await connection.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
                    raise ConfigurationError(
                        f"PostgreSQL at {mask_dsn(dsn)} has no schema {schema}: create it (CREATE SCHEMA "
                        f"{schema}) or give the schema of the run (PostgresTarget.schema)."
                    )
                # Two services starting on one schema would race on CREATE TABLE IF NOT EXISTS.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", schema)
                await connection.execute((_TABLES + THREAD_TABLES).format(schema=schema))
        except BaseException:
            await pool.close()
            raise
        return cls(pool, schema, initial_credits, lost_update)

    async def close(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout)
        except TimeoutError:
            self.pool.terminate()

    async def ensure_user(self, user_id: str) -> int:
        """Create the user's credits on first sight; return the balance."""
        return await self._users.get(user_id)

    async def _ensure_users(self, user_ids: list[str]) -> dict[str, int]:
        async with self._connection() as connection:
            rows = await connection.fetch(_ENSURE_USERS, user_ids, self.initial_credits)
            balances = {row["user_id"]: int(row["balance"]) for row in rows}
            missing = [user_id for user_id in user_ids if user_id not in balances]
            if missing:  # created by another connection after this statement's snapshot was taken
                rows = await connection.fetch(_BALANCES, missing)
                balances.update((row["user_id"], int(row["balance"])) for row in rows)
            return balances

    async def open_thread(self, user_id: str, thread_id: str) -> None:
        await self._threads.get((user_id, thread_id))

    async def _open_threads(self, threads: list[tuple[str, str]]) -> dict[tuple[str, str], None]:
        async with self._connection() as connection:
            await connection.execute(_OPEN_THREADS, *map(list, zip(*threads, strict=True)))
        return dict.fromkeys(threads)

    async def thread_exists(self, user_id: str, thread_id: str) -> bool:
        async with self._connection() as connection:
            return bool(
                await connection.fetchval(
                    "SELECT 1 FROM agent_threads WHERE user_id = $1 AND thread_id = $2", user_id, thread_id
                )
            )

    async def deduct_and_record(
        self, user_id: str, thread_id: str, run_id: str, marker: str, content: str, cost: int
    ) -> ToolResult:
        """The tool: take ``cost`` credits and append the message to the thread, in one transaction.

        The caller holds the thread's lock, which keeps message positions unique.
        """
        message = (user_id, thread_id, run_id, marker, cost, content)
        if self.lost_update:
            return await self._deduct_and_record_racily(message)
        async with self._connection() as connection:
            row = await connection.fetchrow(_DEDUCT_AND_RECORD, *message)
        if row is None:
            raise _insufficient_credits(user_id, cost)
        return ToolResult(int(row["balance"]), int(row["position"]))

    async def _deduct_and_record_racily(self, message: tuple[str, str, str, str, int, str]) -> ToolResult:
        """The lost_update bug: read the balance, pause, write back what was read minus the cost."""
        user_id, cost = message[0], message[4]
        async with self._connection() as connection, connection.transaction():
            balance = await connection.fetchval(_BALANCE, user_id)
            await asyncio.sleep(LOST_UPDATE_PAUSE)
            if balance is None or balance < cost:
                raise _insufficient_credits(user_id, cost)
            await connection.execute(
                "UPDATE agent_credits SET balance = $2 WHERE user_id = $1", user_id, balance - cost
            )
            position = await connection.fetchval(_RECORD_MESSAGE.format(source=""), *message)
            return ToolResult(int(balance - cost), int(position))

    def _connection(self) -> _PooledConnection:
        return _PooledConnection(self.pool)


class _PooledConnection:
    """A connection of the pool for one ``async with``; waiting past the bound raises a TimeoutError saying so."""

    __slots__ = ("_acquiring", "_pool")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._acquiring = pool.acquire(timeout=_ACQUIRE_TIMEOUT)

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            return await self._acquiring.__aenter__()
        except TimeoutError:
            raise TimeoutError(
                f"none of the {self._pool.get_max_size()} connections of the service's PostgreSQL pool came free "
                f"within {_ACQUIRE_TIMEOUT:g} s: PostgreSQL or this process is overloaded, or the pool is too small "
                "(--pg-pool-size)"
            ) from None

    async def __aexit__(self, *exc_info: object) -> None:
        await self._acquiring.__aexit__(*exc_info)


def _insufficient_credits(user_id: str, cost: int) -> ToolFailure:
    return ToolFailure(RunFailure.INSUFFICIENT_CREDITS, f"{user_id} has fewer than {cost} credits left")


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing, as the service changes no session state (no SET, LISTEN, cursor or
    session lock), so asyncpg's default reset query would be a round trip per release for nothing. The pool still
    rolls back a transaction left open."""
