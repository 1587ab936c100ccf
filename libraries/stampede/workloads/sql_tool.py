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
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..retry import NO_RETRIES, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

BUILT_IN_PARAMETERS = ("agent", "user", "marker", "iteration")
ROWS_KEPT_PER_OPERATION = 5
# Quoted literals and identifiers are matched first so a ':word' inside them is left alone;
# '(?<!:)' keeps casts such as '::int' from being read as parameters.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "int2": int,
    "int4": int,
    "int8": int,
    "float4": float,
    "float8": float,
    "numeric": Decimal,
    "bool": lambda text: text.strip().lower() in ("true", "t", "yes", "1", "on"),
    "json": lambda text: text,
    "jsonb": lambda text: text,
}


def to_positional(sql: str) -> tuple[str, list[str]]:
    """Rewrite ``:name`` parameters as ``$n`` and return the names in order of ``n``."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _TOKENS.sub(replace, sql), names


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
        if not sql.strip():
            raise ConfigurationError(f"SQL tool {name!r} has no SQL statement.")
        self.sql, self.parameters = to_positional(sql)
        self.constants = dict(constants or {})
        unknown = [p for p in self.parameters if p not in BUILT_IN_PARAMETERS and p not in self.constants]
        if unknown:
            raise ConfigurationError(
                f"SQL tool {name!r} uses parameter(s) {', '.join(':' + p for p in unknown)} that have no value. "
                f"Give them as name=value when defining the tool; built-in ones are "
                f"{', '.join(':' + p for p in BUILT_IN_PARAMETERS)}."
            )
        self._typed_constants: dict[str, Any] = {}

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "sql": self.sql}

    async def validate(self) -> None:
        """Prepare the statement on the server: report syntax and type errors now, by tool name."""
        connection = await self.target.connect()
        try:
            statement = await connection.prepare(self.sql)
            types = [parameter.name for parameter in statement.get_parameters()]
        except asyncpg.PostgresError as error:
            position = getattr(error, "position", None)
            where = f" at character {position}" if position else ""
            raise ConfigurationError(
                f"SQL tool {self.name!r} does not run on PostgreSQL: {error.sqlstate} {error}{where}. "
                f"Statement: {self.sql}"
            ) from None
        finally:
            await connection.close()
        self._typed_constants = {
            name: self._convert(name, self.constants[name], types[index])
            for index, name in enumerate(self.parameters)
            if name in self.constants
        }

    def _convert(self, name: str, value: Any, type_name: str) -> Any:
        if not isinstance(value, str) or type_name not in _CONVERTERS:
            return value
        try:
            return _CONVERTERS[type_name](value)
        except (ValueError, ArithmeticError):
            raise ConfigurationError(
                f"SQL tool {self.name!r}: parameter :{name} must be of type {type_name}, got {value!r}."
            ) from None

    async def setup(self, agents: int) -> None:
        await self.validate()
        await super().setup(agents)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        built_in = {"agent": agent.agent, "user": agent.user, "marker": agent.marker, "iteration": agent.iteration}
        arguments = [self._typed_constants[p] if p in self._typed_constants else built_in[p] for p in self.parameters]
        statement = await connection.prepare(self.sql)
        rows = await statement.fetch(*arguments)
        kept = [json.loads(json.dumps(dict(row.items()), default=str)) for row in rows[:ROWS_KEPT_PER_OPERATION]]
        return OpResult(read=kept or None, written={"status": statement.get_statusmsg(), "rows": len(rows)})
