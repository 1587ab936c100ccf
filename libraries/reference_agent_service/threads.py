"""What the HTTP side keeps in PostgreSQL: threads (owned by a user), every state a thread went through, its runs.

A thread's current state is a counter and its message list, kept on its
``threads`` row with the version it has reached; ``thread_states`` holds every
version (0 is the empty state). Each append and each removal is one
transaction that locks the thread's row, so versions are gapless.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

ACQUIRE_TIMEOUT = 10.0  # seconds a query waits for a pooled connection

THREAD_TABLES = """
CREATE TABLE IF NOT EXISTS {schema}.threads (
    thread_id text PRIMARY KEY,
    user_id text NOT NULL,
    metadata jsonb NOT NULL,
    version int NOT NULL,
    counter int NOT NULL,
    messages jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.thread_states (
    thread_id text NOT NULL,
    version int NOT NULL,
    run_id text,
    counter int NOT NULL,
    messages jsonb NOT NULL,
    PRIMARY KEY (thread_id, version)
);
CREATE TABLE IF NOT EXISTS {schema}.runs (
    run_id text PRIMARY KEY,
    number bigserial UNIQUE,
    thread_id text NOT NULL,
    user_id text NOT NULL,
    status text NOT NULL,
    multitask_strategy text NOT NULL,
    marker text NOT NULL,
    created_at double precision NOT NULL,
    started_at double precision,
    ended_at double precision
);
CREATE INDEX IF NOT EXISTS runs_by_thread ON {schema}.runs (thread_id, number);
"""
"""Created (in the service's schema) where :class:`~reference_agent_service.store.AgentStore` creates its tables."""

Message = dict[str, str]
"""``{"id": "<run_id>:<n>", "run_id", "marker", "text"}``."""


@dataclass(frozen=True)
class ThreadState:
    thread_id: str
    user_id: str
    version: int
    counter: int
    messages: list[Message]

    def describe(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "user_id": self.user_id,
            "version": self.version,
            "state": {"counter": self.counter, "messages": self.messages},
        }


def _messages(value: str | list[Message]) -> list[Message]:
    return json.loads(value) if isinstance(value, str) else value


class ThreadStore:
    """Threads, their states and runs, in the tables of :data:`THREAD_TABLES` (the pool's ``search_path``)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def _connection(self) -> asyncpg.pool.PoolAcquireContext:
        return self.pool.acquire(timeout=ACQUIRE_TIMEOUT)

    async def create(self, thread_id: str, user_id: str, metadata: dict[str, Any]) -> ThreadState:
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO threads (thread_id, user_id, metadata, version, counter, messages) "
                "VALUES ($1, $2, $3, 0, 0, '[]')",
                thread_id,
                user_id,
                json.dumps(metadata),
            )
            await connection.execute(
                "INSERT INTO thread_states (thread_id, version, run_id, counter, messages) "
                "VALUES ($1, 0, NULL, 0, '[]')",
                thread_id,
            )
        return ThreadState(thread_id, user_id, 0, 0, [])

    async def get(self, thread_id: str) -> ThreadState | None:
        """The thread's current state, whoever owns it (the caller checks the owner); None if there is none."""
        async with self._connection() as connection:
            row = await connection.fetchrow(
                "SELECT user_id, version, counter, messages FROM threads WHERE thread_id = $1", thread_id
            )
        if row is None:
            return None
        return ThreadState(thread_id, row["user_id"], row["version"], row["counter"], _messages(row["messages"]))

    async def history(self, thread_id: str) -> list[dict[str, Any]]:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT version, run_id, counter, messages FROM thread_states WHERE thread_id = $1 ORDER BY version",
                thread_id,
            )
        return [
            {
                "version": row["version"],
                "run_id": row["run_id"],
                "counter": row["counter"],
                "messages": _messages(row["messages"]),
            }
            for row in rows
        ]

    async def append(self, thread_id: str, run_id: str, message: Message) -> ThreadState:
        """Add ``message`` and one to the counter, as a new version; return the new state."""
        async with self._connection() as connection, connection.transaction():
            state = await self._locked(connection, thread_id)
            return await self._write(connection, state, run_id, state.counter + 1, [*state.messages, message])

    async def remove_run(self, thread_id: str, run_id: str, *, recorded_as: str) -> ThreadState:
        """Remove ``run_id``'s messages (and as many from the counter): a new version, recorded as ``recorded_as``'s."""
        async with self._connection() as connection, connection.transaction():
            state = await self._locked(connection, thread_id)
            kept = [message for message in state.messages if message["run_id"] != run_id]
            removed = len(state.messages) - len(kept)
            return await self._write(connection, state, recorded_as, state.counter - removed, kept)

    @staticmethod
    async def _locked(connection: asyncpg.Connection, thread_id: str) -> ThreadState:
        row = await connection.fetchrow(
            "SELECT user_id, version, counter, messages FROM threads WHERE thread_id = $1 FOR UPDATE", thread_id
        )
        return ThreadState(thread_id, row["user_id"], row["version"], row["counter"], _messages(row["messages"]))

    @staticmethod
    async def _write(
        connection: asyncpg.Connection, state: ThreadState, run_id: str, counter: int, messages: list[Message]
    ) -> ThreadState:
        version, text = state.version + 1, json.dumps(messages)
        await connection.execute(
            "UPDATE threads SET version = $2, counter = $3, messages = $4 WHERE thread_id = $1",
            state.thread_id,
            version,
            counter,
            text,
        )
        await connection.execute(
            "INSERT INTO thread_states (thread_id, version, run_id, counter, messages) VALUES ($1, $2, $3, $4, $5)",
            state.thread_id,
            version,
            run_id,
            counter,
            text,
        )
        return ThreadState(state.thread_id, state.user_id, version, counter, messages)

    # Runs

    async def add_run(self, run_id: str, thread_id: str, user_id: str, strategy: str, marker: str) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "INSERT INTO runs (run_id, thread_id, user_id, status, multitask_strategy, marker, created_at) "
                "VALUES ($1, $2, $3, 'pending', $4, $5, $6)",
                run_id,
                thread_id,
                user_id,
                strategy,
                marker,
                time.time(),
            )

    async def set_run_status(self, run_id: str, status: str, *, started: bool = False, ended: bool = False) -> None:
        async with self._connection() as connection:
            await connection.execute(
                "UPDATE runs SET status = $2, "
                "started_at = CASE WHEN $3 THEN $5 ELSE started_at END, "
                "ended_at = CASE WHEN $4 THEN $5 ELSE ended_at END WHERE run_id = $1",
                run_id,
                status,
                started,
                ended,
                time.time(),
            )

    async def runs(self, thread_id: str) -> list[dict[str, Any]]:
        async with self._connection() as connection:
            rows = await connection.fetch(
                "SELECT run_id, status, multitask_strategy, marker, created_at, started_at, ended_at "
                "FROM runs WHERE thread_id = $1 ORDER BY number",
                thread_id,
            )
        return [dict(row) for row in rows]
