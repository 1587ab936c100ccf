"""The base of tools that run on PostgreSQL: one connection per agent, held for the launch.

Each agent takes its connection before the start barrier, so when the barrier
opens every agent is ready to hit the database at the same instant. A connection
that dies (its backend terminated, or its operation cut off by the operation
timeout) is never used again: the agent takes a fresh one for its next operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast

import asyncpg

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..retry import RetryPolicy, with_retries
from .agent_connections import AgentConnections
from .isolation import IsolationLevel

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresEndpoint, PostgresTarget


class PostgresTool(BaseTool):
    """Runs :meth:`attempt` in a transaction at the chosen isolation level, retried by policy."""

    def __init__(self, target: PostgresTarget, *, name: str, isolation: IsolationLevel, retry: RetryPolicy) -> None:
        self.target = target
        self.name = name
        self.isolation = isolation
        self.retry = retry
        self.connections = AgentConnections()

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "isolation": self.isolation.value,
            "max retries": str(self.retry.max_retries),
        }

    def recipe(self) -> PostgresToolRecipe:
        """What rebuilds this tool in a worker process: its definition and where the run's connections go."""
        return PostgresToolRecipe(self.name, type(self), self.definition(), self.target.endpoint())

    def definition(self) -> dict[str, Any]:
        """The keyword arguments that make this tool anew on an endpoint (a tool that has them says so)."""
        raise ConfigurationError(
            f"Tool {self.name!r} ({type(self).__name__}) cannot run on workers yet: of the PostgreSQL tools, the SQL "
            "tool and the credit deduction tool are rebuilt in a worker process. Launch it with workers=1."
        )

    @classmethod
    def rebuilt(cls, endpoint: PostgresEndpoint, options: Mapping[str, Any]) -> Self:
        # A tool that gives its definition connects through what an endpoint has (connect, create_pool) only.
        return cls(cast("PostgresTarget", endpoint), **options)

    async def setup(self, agents: int) -> None:
        await self.connections.open(self.target, agents)

    async def open_agent(self, agent: AgentContext) -> None:
        await self.connections.take(agent)

    async def close_agent(self, agent: AgentContext) -> None:
        await self.connections.give_back(agent)

    async def teardown(self) -> None:
        await self.connections.close()

    async def run(self, agent: AgentContext) -> OpResult:
        connection = await self._live_connection(agent)

        async def attempt() -> OpResult:
            try:
                async with connection.transaction(isolation=self.isolation.asyncpg_name):
                    try:
                        return await self.attempt(connection, agent)
                    except asyncio.CancelledError:
                        _drop(connection)  # before the transaction tries to roll back over it
                        raise
            except (asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
                if isinstance(error.__context__, asyncio.CancelledError):
                    raise error.__context__ from None  # the cut, not the failed rollback after it
                if isinstance(error, asyncpg.InterfaceError) and not _dead(connection):
                    raise
                raise _lost(connection, error) from None

        try:
            return await with_retries(attempt, self.retry)
        except BaseException:
            _drop(connection)
            raise

    async def _live_connection(self, agent: AgentContext) -> asyncpg.Connection:
        """The agent's connection, or a fresh one from the pool when the old one died."""
        connection: asyncpg.Connection | None = agent.state.get("connection")
        if connection is not None and not _dead(connection):
            return connection
        return await self.connections.take(agent)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        """One try of the operation, inside a transaction; raise or return a conflict to retry."""
        raise NotImplementedError


def _lost(connection: asyncpg.Connection, error: Exception) -> asyncpg.PostgresError:
    """What to record when the connection died under an operation: the server's error when it sent one.

    The rollback fails too on a dead connection, and a FATAL that arrives between
    queries (a terminated backend) leaves asyncpg's protocol in a state it
    reports as an internal error; the connection is dropped either way.
    """
    _drop(connection)
    if isinstance(error.__context__, asyncpg.PostgresError):
        return error.__context__
    return asyncpg.ConnectionDoesNotExistError(f"the connection was lost: {error}")


def _dead(connection: asyncpg.Connection) -> bool:
    """Whether ``connection`` is closed; a pool's connection is detached from the pool when it closes."""
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:
        return True


def _drop(connection: asyncpg.Connection) -> None:
    """Close ``connection`` at once, sending nothing: no rollback, no cancel request.

    For a connection cut off mid-operation, whose state is unknown; over a
    partitioned network a graceful close or a cancel request would hang. The
    server ends the transaction when it sees the connection go.
    """
    if not _dead(connection):
        connection.terminate()


@dataclass(frozen=True)
class PostgresToolRecipe:
    """A PostgreSQL tool's definition, picklable: a worker rebuilds it and connects as the run does (its schema)."""

    name: str
    tool_type: type[PostgresTool]
    options: Mapping[str, Any]
    endpoint: PostgresEndpoint

    def build(self) -> PostgresTool:
        return self.tool_type.rebuilt(self.endpoint, self.options)
