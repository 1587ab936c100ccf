"""A tool written as SQL in the suite: one statement with ``:name`` parameters.

Built-in parameters: ``:agent`` (int), ``:user`` and ``:marker`` (text),
``:iteration`` (int). Others are constants given when the tool is defined; a
constant given as text is converted to the type PostgreSQL expects for that
parameter, so a suite can pass ``amount=5`` to ``balance - :amount``.
The statement is prepared when the tool is defined, so a syntax error or an
unknown table is reported at once, naming the tool, not in the middle of a launch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..retry import NO_RETRIES, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool
from .sql_parameters import (
    BUILT_IN_PARAMETERS,
    built_in_values,
    built_ins_known,
    check_constant_names,
    missing_values,
    prepare,
    to_positional,
    typed_constants,
)

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

ROWS_KEPT_PER_OPERATION = 5


class SqlTool(PostgresTool):
    """Runs the suite's SQL statement once per operation, in a transaction."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str,
        sql: str,
        constants: Mapping[str, Any] | None = None,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        retry: RetryPolicy = NO_RETRIES,
    ) -> None:
        super().__init__(target, name=name, isolation=isolation, retry=retry)
        self.source_sql = sql
        if not sql.strip():
            raise ConfigurationError(f"SQL tool {name!r} has no SQL statement.")
        self.sql, self.parameters = to_positional(sql)
        self.constants = dict(constants or {})
        check_constant_names(f"SQL tool {name!r}", self.constants)
        unknown = [p for p in self.parameters if p not in BUILT_IN_PARAMETERS and p not in self.constants]
        if unknown:
            raise missing_values(f"SQL tool {name!r}", unknown, built_ins_known())
        self._typed_constants: dict[str, Any] = {}

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "sql": self.sql}

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sql": self.source_sql,
            "constants": self.constants,
            "isolation": self.isolation,
            "retry": self.retry,
        }

    async def validate(self) -> None:
        """Prepare the statement on the server: report syntax and type errors now, by tool name."""
        what = f"SQL tool {self.name!r}"
        connection = await self.target.connect()
        try:
            statement = await prepare(connection, self.sql, what)
            self._typed_constants = typed_constants(what, statement, self.parameters, self.constants)
        finally:
            await connection.close()

    async def setup(self, agents: int) -> None:
        await self.validate()
        await super().setup(agents)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        built_in = built_in_values(agent)
        arguments = [self._typed_constants[p] if p in self._typed_constants else built_in[p] for p in self.parameters]
        statement = await connection.prepare(self.sql)
        rows = await statement.fetch(*arguments)
        kept = [json.loads(json.dumps(dict(row.items()), default=str)) for row in rows[:ROWS_KEPT_PER_OPERATION]]
        return OpResult(read=kept or None, written={"status": statement.get_statusmsg(), "rows": len(rows)})
