"""The base of tools that run on PostgreSQL: one connection per agent, held for the launch.

Each agent takes its connection before the start barrier, so when the barrier
opens every agent is ready to hit the database at the same instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, BaseTool, OpResult
from ..retry import RetryPolicy, with_retries
from .isolation import IsolationLevel

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget


class PostgresTool(BaseTool):
    """Runs :meth:`attempt` in a transaction at the chosen isolation level, retried by policy."""

    def __init__(
        self, target: PostgresTarget, *, name: str, isolation: IsolationLevel, retry: RetryPolicy
    ) -> None:
        self.target = target
        self.name = name
        self.isolation = isolation
        self.retry = retry
        self._pool: asyncpg.Pool | None = None

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "isolation": self.isolation.value,
            "max retries": str(self.retry.max_retries),
        }

    async def setup(self, agents: int) -> None:
        self._pool = await self.target.create_pool(agents)

    async def open_agent(self, agent: AgentContext) -> None:
        assert self._pool is not None, "setup() opens the pool before agents start"
        agent.state["connection"] = await self._pool.acquire()

    async def close_agent(self, agent: AgentContext) -> None:
        connection = agent.state.pop("connection", None)
        if connection is not None and self._pool is not None:
            await self._pool.release(connection)

    async def teardown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def run(self, agent: AgentContext) -> OpResult:
        connection: asyncpg.Connection = agent.state["connection"]

        async def attempt() -> OpResult:
            async with connection.transaction(isolation=self.isolation.asyncpg_name):
                return await self.attempt(connection, agent)

        return await with_retries(attempt, self.retry)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        """One try of the operation, inside a transaction; raise or return a conflict to retry."""
        raise NotImplementedError
