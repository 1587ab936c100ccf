"""SQL written in a suite: ``:name`` parameters, their values, and preparing it so errors show at once.

Shared by the SQL tools (one statement, or several in one transaction) and by
SQL invariants. Built-in parameters: ``:agent`` (int), ``:user`` and
``:marker`` (text), ``:iteration`` (int). A value given as text is converted to
the type PostgreSQL expects for it, so a suite can pass ``amount=5`` to
``balance - :amount``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from ..agents import AgentContext
from ..errors import ConfigurationError

BUILT_IN_PARAMETERS = ("agent", "user", "marker", "iteration")
# Quoted literals and identifiers are matched first so a ':word' inside them is left alone;
# '(?<!:)' keeps casts such as '::int' from being read as parameters.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(?<!:):([A-Za-z_][A-Za-z0-9_]*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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


def to_positional(sql: str, casts: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """Rewrite ``:name`` parameters as ``$n`` and return the names in order of ``n``.

    A parameter named in ``casts`` is written ``$n::<type>``, so PostgreSQL
    knows its type even where it could not infer one (``:a - :b``).
    """
    names: list[str] = []
    casts = casts or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        cast = f"::{casts[name]}" if name in casts else ""
        return f"${names.index(name) + 1}{cast}"

    return _TOKENS.sub(replace, sql), names


def built_in_values(agent: AgentContext) -> dict[str, Any]:
    """The values of the built-in parameters for ``agent``'s current operation."""
    return {"agent": agent.agent, "user": agent.user, "marker": agent.marker, "iteration": agent.iteration}


def check_constant_names(what: str, constants: Mapping[str, Any]) -> None:
    """Refuse constants that cannot be parameters: most often SQL that Robot read as ``name=value``."""
    for name in constants:
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"{what} was given {name}={constants[name]} as a parameter value, which looks like SQL that Robot "
                "read as a named argument because of its '='. Write the '=' as '\\=', or put the SQL in a variable "
                "and pass that."
            )


def missing_values(what: str, names: list[str], known: str) -> ConfigurationError:
    """The error for parameters that have no value, saying where values come from."""
    return ConfigurationError(
        f"{what} uses parameter(s) {', '.join(':' + p for p in names)} that have no value. "
        f"Give them as name=value when defining the tool; {known}."
    )


def built_ins_known() -> str:
    return f"built-in ones are {', '.join(':' + p for p in BUILT_IN_PARAMETERS)}"


async def prepare(
    connection: asyncpg.Connection, sql: str, what: str, written: str | None = None
) -> asyncpg.prepared_stmt.PreparedStatement:
    """Prepare ``sql`` on the server, or fail naming ``what``, with PostgreSQL's error and the statement ``written``."""
    try:
        return await connection.prepare(sql)
    except asyncpg.PostgresError as error:
        position = getattr(error, "position", None)
        where = f" at character {position}" if position else ""
        raise ConfigurationError(
            f"{what} does not run on PostgreSQL: {error.sqlstate} {error}{where}. Statement: {written or sql}"
        ) from None


def convert(what: str, name: str, value: Any, type_name: str) -> Any:
    """``value`` as PostgreSQL type ``type_name`` wants it, when it was given as text."""
    if not isinstance(value, str) or type_name not in _CONVERTERS:
        return value
    try:
        return _CONVERTERS[type_name](value)
    except (ValueError, ArithmeticError):
        raise ConfigurationError(f"{what}: parameter :{name} must be of type {type_name}, got {value!r}.") from None


def typed_constants(
    what: str, statement: asyncpg.prepared_stmt.PreparedStatement, parameters: list[str], constants: Mapping[str, Any]
) -> dict[str, Any]:
    """The constants ``statement`` uses, converted to the types of its parameters."""
    types = [parameter.name for parameter in statement.get_parameters()]
    return {
        name: convert(what, name, constants[name], types[index])
        for index, name in enumerate(parameters)
        if name in constants
    }


def column_type(attribute: asyncpg.Attribute) -> str:
    """The type of a result column, written as a cast can name it (``int8``, ``"public"."mood"``)."""
    kind = attribute.type
    if kind.schema == "pg_catalog":
        return str(kind.name)
    return f'"{kind.schema}"."{kind.name}"'
