"""One PostgreSQL connection per agent, taken before the start barrier and held for the launch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresEndpoint


class AgentConnections:
    """A pool sized to the launch's agents; each agent keeps its connection in ``agent.state["connection"]``.

    Taking it before the barrier means every agent is ready to hit the database
    the instant the barrier opens.
    """

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None

    async def open(self, target: PostgresEndpoint, agents: int, **pool_options: Any) -> None:
        self._pool = await target.create_pool(agents, **pool_options)

    async def take(self, agent: AgentContext) -> asyncpg.Connection:
        """Give ``agent`` a connection of its own (a fresh one, returning any it held)."""
        assert self._pool is not None, "open() the pool before agents start"
        await self.give_back(agent)
        agent.state["connection"] = await self._pool.acquire()
        return agent.state["connection"]

    async def give_back(self, agent: AgentContext) -> None:
        connection = agent.state.pop("connection", None)
        if connection is not None and self._pool is not None:
            await self._pool.release(connection)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
