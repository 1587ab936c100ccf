"""Multi-field JSON configuration: each agent sets its own field of one shared document.

``optimistic`` writes only when the version it read is still current and
retries otherwise, so no field update is lost. ``last writer wins`` writes the
whole document back unguarded, and concurrent agents erase each other's fields.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome
from ..retry import DEFAULT_RETRY, NO_RETRIES, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

CONFIGS_TABLE = """
CREATE TABLE IF NOT EXISTS configs (
    id      bigserial PRIMARY KEY,
    data    jsonb NOT NULL DEFAULT '{}',
    version bigint NOT NULL DEFAULT 0
)"""


class ConfigStrategy(Enum):
    """How an agent writes its field back; see the module documentation."""

    OPTIMISTIC = "optimistic"
    LAST_WRITER_WINS = "last writer wins"


async def create_config(target: PostgresTarget, document: dict[str, Any] | None = None) -> int:
    """Create one configuration document and return its id."""
    connection = await target.connect()
    try:
        await connection.execute(CONFIGS_TABLE)
        return int(
            await connection.fetchval(
                "INSERT INTO configs (data) VALUES ($1::jsonb) RETURNING id", json.dumps(document or {})
            )
        )
    finally:
        await connection.close()


async def read_config(target: PostgresTarget, config: int) -> dict[str, Any]:
    connection = await target.connect()
    try:
        data = await connection.fetchval("SELECT data FROM configs WHERE id = $1", config)
    finally:
        await connection.close()
    if data is None:
        raise ConfigurationError(f"There is no configuration {config}; create it with Create JSON Configuration first.")
    return dict(json.loads(data))


class JsonConfigTool(PostgresTool):
    """Sets field ``agent_<n>`` of configuration ``config`` to a value unique to the operation."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "update config",
        strategy: ConfigStrategy = ConfigStrategy.OPTIMISTIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        config: int = 1,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        guarded = strategy is ConfigStrategy.OPTIMISTIC
        super().__init__(target, name=name, isolation=isolation, retry=retry if guarded else NO_RETRIES)
        self.strategy = strategy
        self.config = config

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "strategy": self.strategy.value, "config": str(self.config)}

    async def final_document(self) -> dict[str, Any]:
        return await read_config(self.target, self.config)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        row = await connection.fetchrow("SELECT data, version FROM configs WHERE id = $1", self.config)
        if row is None:
            raise ConfigurationError(f"There is no configuration {self.config}.")
        document = json.loads(row["data"])
        field, value = f"agent_{agent.agent}", f"{agent.marker}-{agent.iteration}"
        document[field] = value
        guard = " AND version = $3" if self.strategy is ConfigStrategy.OPTIMISTIC else ""
        arguments = [json.dumps(document), self.config] + ([row["version"]] if guard else [])
        version = await connection.fetchval(
            f"UPDATE configs SET data = $1::jsonb, version = version + 1 WHERE id = $2{guard} RETURNING version",
            *arguments,
        )
        if version is None:
            return OpResult(Outcome.CONFLICT, error="version_mismatch")
        return OpResult(
            read={"config": self.config, "version": row["version"]},
            written={"config": self.config, "version": version, "field": field, "value": value},
        )
