"""A tool written as SQL in the suite: several statements in one transaction, values carried between them.

Parameters are ``:name`` as in :mod:`.sql_tool` (built-ins and constants), and
every column an earlier statement returns (its first row) is a parameter of the
later ones: ``SELECT balance, version ...`` then ``... WHERE version = :version``.
A carried value is cast to its column's type, so ``:balance - :amount`` needs
no cast of its own. What the transaction read (the constants it used and the
columns its statements returned) is the operation's ``read``, where the
lost-update check looks for ``account`` and ``balance`` (or the names it is given).

A statement that returns no row and changes none (an ``UPDATE ... WHERE version
= :version`` that lost the race, a ``SELECT`` that found nothing) ends the
attempt as a conflict: the transaction is rolled back and retried by the retry
policy, like a serialization failure (40001) or a deadlock (40P01).

Every statement is prepared when the tool is defined, in order, so a syntax
error or an unknown column is reported at once, naming the statement's number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError, StampedeError
from ..outcomes import ConflictError
from ..retry import DEFAULT_RETRY, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool
from .sql_parameters import (
    BUILT_IN_PARAMETERS,
    built_in_values,
    built_ins_known,
    check_constant_names,
    column_type,
    missing_values,
    prepare,
    to_positional,
    typed_constants,
)

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

_ROW_COUNT = re.compile(r"\s(\d+)$")


@dataclass(frozen=True)
class PreparedStatement:
    """One statement of the transaction as it runs: positional SQL, its parameters and its converted constants."""

    number: int
    sql: str
    parameters: list[str]
    constants: dict[str, Any]


class SqlTransactionTool(PostgresTool):
    """Runs the suite's statements in order, in one transaction per operation, retried on conflicts."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str,
        statements: Sequence[str],
        constants: Mapping[str, Any] | None = None,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        super().__init__(target, name=name, isolation=isolation, retry=retry)
        what = f"SQL transaction tool {name!r}"
        if not statements:
            raise ConfigurationError(f"{what} has no statements: give each SQL statement as an argument of its own.")
        empty = [str(number) for number, text in enumerate(statements, 1) if not str(text).strip()]
        if empty:
            raise ConfigurationError(f"{what}: statement {', '.join(empty)} is empty.")
        self.texts = [str(text).strip() for text in statements]
        self.constants = dict(constants or {})
        check_constant_names(what, self.constants)
        self._statements: list[PreparedStatement] = []

    def describe(self) -> dict[str, str]:
        return {**super().describe(), **{f"statement {n}": text for n, text in enumerate(self.texts, 1)}}

    async def validate(self) -> None:
        """Prepare the statements in order, knowing the columns earlier ones return; fail naming the first bad one."""
        carried: dict[str, str] = {}  # column -> its type, for the cast
        prepared: list[PreparedStatement] = []
        connection = await self.target.connect()
        try:
            for number, text in enumerate(self.texts, 1):
                what = f"Statement {number} of SQL transaction tool {self.name!r}"
                _, names = to_positional(text)
                unknown = [n for n in names if n not in carried and n not in self.constants]
                unknown = [n for n in unknown if n not in BUILT_IN_PARAMETERS]
                if unknown:
                    columns = ", ".join(carried) or "none"
                    raise missing_values(what, unknown, f"{built_ins_known()}; earlier statements return {columns}")
                sql, names = to_positional(text, {n: carried[n] for n in names if n in carried})
                statement = await prepare(connection, sql, what, text)
                constants = {n: value for n, value in self.constants.items() if n not in carried}
                prepared.append(
                    PreparedStatement(number, sql, names, typed_constants(what, statement, names, constants))
                )
                carried.update({attribute.name: column_type(attribute) for attribute in statement.get_attributes()})
        finally:
            await connection.close()
        self._statements = prepared

    async def setup(self, agents: int) -> None:
        await self.validate()
        await super().setup(agents)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        if not self._statements:
            raise StampedeError(f"SQL transaction tool {self.name!r} was not validated before it ran.")
        values = built_in_values(agent)
        read: dict[str, Any] = {}
        statuses: list[str] = []
        for statement in self._statements:
            arguments = [
                statement.constants[p] if p in statement.constants else values[p] for p in statement.parameters
            ]
            for name in statement.constants:
                read.setdefault(name, statement.constants[name])
            query = await connection.prepare(statement.sql)
            rows = await query.fetch(*arguments)
            status = query.get_statusmsg()
            statuses.append(status)
            if not rows and _row_count(status) == 0:
                raise ConflictError(
                    f"no_row_statement_{statement.number}", f"statement {statement.number} found no row ({status})"
                )
            if rows:
                first = dict(rows[0].items())
                values.update(first)
                read.update(first)
        return OpResult(read=read or None, written={"status": statuses})


def _row_count(status: str) -> int | None:
    """The row count a command tag ends with (``UPDATE 0``, ``INSERT 0 1``); None for tags without one (``SET``)."""
    match = _ROW_COUNT.search(status)
    return int(match.group(1)) if match else None
