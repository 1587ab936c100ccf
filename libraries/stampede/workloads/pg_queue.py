"""The work queue in PostgreSQL: one row per item, claimed with ``FOR UPDATE SKIP LOCKED``.

Tables (in the run's schema, shared by every queue of the run):
``work_queues(id, name, capacity)`` and ``queue_items(id, queue_id, priority,
claimed_by, completed)``, and the function ``queue_offer`` that adds an item
when there is room. An item is waiting while ``claimed_by`` is null; a
partial index over waiting items keeps both the claim and the capacity count
cheap. Each agent holds one connection for the launch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext
from .agent_connections import AgentConnections
from .work_queue import CapacityCheck, Claimed, ClaimStrategy, QueueBackend, QueueSettings, WorkQueueTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

SCHEMA = """
CREATE TABLE IF NOT EXISTS work_queues (
    id       serial PRIMARY KEY,
    name     text NOT NULL,
    capacity integer NOT NULL CHECK (capacity > 0)
);
CREATE TABLE IF NOT EXISTS queue_items (
    id         bigserial PRIMARY KEY,
    queue_id   integer NOT NULL REFERENCES work_queues,
    priority   integer NOT NULL,
    claimed_by integer,
    completed  boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS queue_items_waiting ON queue_items (queue_id, priority DESC, id) WHERE claimed_by IS NULL;
-- The queue's row is locked first; the count then takes a snapshot of its own (each statement of a
-- function does), so it sees every item the producer that held the lock before us inserted. One
-- statement could not: its snapshot predates the lock. A function keeps the lock off the client's
-- round trips, so producers queue behind each other for microseconds, not for network latency.
CREATE OR REPLACE FUNCTION queue_offer(queue integer, item_priority integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    room integer;
    item bigint;
BEGIN
    SELECT capacity INTO room FROM work_queues WHERE id = queue FOR UPDATE;
    IF (SELECT count(*) FROM queue_items WHERE queue_id = queue AND claimed_by IS NULL) >= room THEN
        RETURN NULL;
    END IF;
    INSERT INTO queue_items (queue_id, priority) VALUES (queue, item_priority) RETURNING id INTO item;
    RETURN item;
END $$;
"""

_COUNT_WAITING = "SELECT count(*) FROM queue_items WHERE queue_id = $1 AND claimed_by IS NULL"
_INSERT = "INSERT INTO queue_items (queue_id, priority) VALUES ($1, $2) RETURNING id"

_CLAIM_SKIP_LOCKED = """
    UPDATE queue_items SET claimed_by = $2
    WHERE id = (SELECT id FROM queue_items WHERE queue_id = $1 AND claimed_by IS NULL
                ORDER BY {order} FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING id, priority
"""
_BY_PRIORITY = "priority DESC, id"
_FIRST_WAITING = f"""
    SELECT id, priority FROM queue_items WHERE queue_id = $1 AND claimed_by IS NULL
    ORDER BY {_BY_PRIORITY} LIMIT 1
"""
_TAKE_UNCONDITIONALLY = "UPDATE queue_items SET claimed_by = $2 WHERE id = $1"
_COMPLETE = "UPDATE queue_items SET completed = true WHERE id = $1"
_CONTENTS = "SELECT id, claimed_by IS NOT NULL AS claimed FROM queue_items WHERE queue_id = $1 AND NOT completed"


class PostgresWorkQueue(WorkQueueTool):
    """A work queue in PostgreSQL; create one with :meth:`create`."""

    def __init__(self, target: PostgresTarget, queue_id: int, name: str, settings: QueueSettings) -> None:
        super().__init__(name, settings)
        self.target = target
        self.queue_id = queue_id
        self.connections = AgentConnections()
        self._claim = {
            ClaimStrategy.SKIP_LOCKED: self._claim_skip_locked,
            ClaimStrategy.OLDEST_FIRST: self._claim_skip_locked,
            ClaimStrategy.NAIVE: self._claim_naive,
        }[settings.claim_strategy]
        order = "id" if settings.claim_strategy is ClaimStrategy.OLDEST_FIRST else _BY_PRIORITY
        self._claim_sql = _CLAIM_SKIP_LOCKED.format(order=order)

    @classmethod
    async def create(cls, target: PostgresTarget, name: str, settings: QueueSettings) -> PostgresWorkQueue:
        """Create the tables if needed and a new, empty queue named ``name``."""
        assert settings.backend is QueueBackend.POSTGRESQL, "PostgreSQL settings"
        connection = await target.connect()
        try:
            await connection.execute(SCHEMA)
            queue_id = await connection.fetchval(
                "INSERT INTO work_queues (name, capacity) VALUES ($1, $2) RETURNING id", name, settings.capacity
            )
        finally:
            await connection.close()
        return cls(target, queue_id, name, settings)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "table": f"{self.target.schema}.queue_items (queue {self.queue_id})"}

    async def setup(self, agents: int) -> None:
        await super().setup(agents)
        await self.connections.open(self.target, agents)

    async def open_agent(self, agent: AgentContext) -> None:
        await self.connections.take(agent)
        await super().open_agent(agent)

    async def close_agent(self, agent: AgentContext) -> None:
        await super().close_agent(agent)
        await self.connections.give_back(agent)

    async def teardown(self) -> None:
        await self.connections.close()

    async def enqueue(self, agent: AgentContext, priority: int) -> int | None:
        connection: asyncpg.Connection = agent.state["connection"]
        if self.settings.capacity_check is CapacityCheck.ATOMIC:
            return await connection.fetchval("SELECT queue_offer($1, $2)", self.queue_id, priority)
        waiting = await connection.fetchval(_COUNT_WAITING, self.queue_id)
        if waiting >= self.capacity:
            return None
        await self.think()
        return await connection.fetchval(_INSERT, self.queue_id, priority)

    async def claim(self, agent: AgentContext) -> Claimed | None:
        return await self._claim(agent)

    async def _claim_skip_locked(self, agent: AgentContext) -> Claimed | None:
        row = await agent.state["connection"].fetchrow(self._claim_sql, self.queue_id, agent.agent)
        return None if row is None else Claimed(row["id"], row["priority"])

    async def _claim_naive(self, agent: AgentContext) -> Claimed | None:
        connection: asyncpg.Connection = agent.state["connection"]
        row = await connection.fetchrow(_FIRST_WAITING, self.queue_id)
        if row is None:
            return None
        await self.think()
        await connection.execute(_TAKE_UNCONDITIONALLY, row["id"], agent.agent)
        return Claimed(row["id"], row["priority"])

    async def complete(self, agent: AgentContext, item: int) -> None:
        await agent.state["connection"].execute(_COMPLETE, item)

    async def contents(self) -> dict[int, str]:
        connection = await self.target.connect()
        try:
            rows = await connection.fetch(_CONTENTS, self.queue_id)
        finally:
            await connection.close()
        return {row["id"]: "in progress" if row["claimed"] else "waiting" for row in rows}
