"""Asking PostgreSQL whether an invariant holds: once now, or every so often while a launch runs.

The query must return one row of one value: true when no ``expected`` value is
given (so it is written as a condition, ``SELECT sum(balance) = 1000 FROM
accounts``), else a value compared with ``expected`` (given as text, it is
converted to the column's type). Samples run on the engine's loop beside the
agents, on a connection of their own in the run's schema; each records when it
was sent, so a loop slowed by load makes samples late, never wrongly timed.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from ..errors import ConfigurationError, StampedeError
from ..records.invariants import InvariantSample
from ..units import format_duration
from .sql_parameters import convert, prepare

if TYPE_CHECKING:
    from ..launcher import RunningLaunch
    from ..services.postgres_target import PostgresTarget
    from ..workers_running import WorkersRunning

QUERY_TIMEOUT_SECONDS = 10.0
MIN_INTERVAL_SECONDS = 0.01
_SHAPE = "it must return one row with one value, e.g. SELECT sum(balance) = 100000 FROM accounts"


class InvariantQuery:
    """The invariant's query, prepared on a connection of its own; use it as ``async with``."""

    def __init__(self, target: PostgresTarget, sql: str, expected: Any = None) -> None:
        if not str(sql).strip():
            raise ConfigurationError(f"The invariant has no SQL query: {_SHAPE}.")
        self.target = target
        self.sql = str(sql).strip()
        self.given = expected
        self.expected: Any = True if expected is None else expected
        self._connection: asyncpg.Connection | None = None
        self._statement: asyncpg.prepared_stmt.PreparedStatement | None = None

    async def __aenter__(self) -> InvariantQuery:
        self._connection = await self.target.connect()
        try:
            self._statement = await prepare(self._connection, self.sql, "The invariant query")
            columns = self._statement.get_attributes()
            if len(columns) != 1:
                raise ConfigurationError(f"The invariant query returns {len(columns)} columns, not 1: {_SHAPE}.")
            kind = columns[0].type.name
            if self.given is None and kind != "bool":
                raise ConfigurationError(
                    f"The invariant query returns a {kind}, not true or false: write it as a condition "
                    f"(... = 100000) or give the value it must return as expected=."
                )
            self.expected = convert("The invariant", "expected", self.expected, kind)
        except BaseException:
            await self._connection.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def value(self) -> Any:
        """The query's one value now."""
        assert self._statement is not None, "use the query as async with"
        try:
            rows = await asyncio.wait_for(self._statement.fetch(), QUERY_TIMEOUT_SECONDS)
        except TimeoutError:
            raise StampedeError(
                f"The invariant query did not answer within {format_duration(QUERY_TIMEOUT_SECONDS)}: {self.sql}"
            ) from None
        if len(rows) != 1:
            raise ConfigurationError(f"The invariant query returned {len(rows)} rows, not 1: {_SHAPE}.")
        return rows[0][0]


async def sample_now(query: InvariantQuery) -> list[InvariantSample]:
    """One sample, not tied to a launch."""
    return [InvariantSample(await query.value())]


async def sample_during(
    query: InvariantQuery, launch: RunningLaunch | WorkersRunning, every: float, bound: float
) -> list[InvariantSample]:
    """Sample every ``every`` s from the launch's start until it ends (at most ``bound`` s), then once more after."""
    if every < MIN_INTERVAL_SECONDS:
        raise ConfigurationError(
            f"Sample an invariant at most every {format_duration(MIN_INTERVAL_SECONDS)}, got every "
            f"{format_duration(every)}."
        )
    deadline = time.monotonic() + bound
    while launch.started_ns is None and not launch.done:
        _check_deadline(deadline, bound)
        await asyncio.sleep(MIN_INTERVAL_SECONDS)
    origin = launch.started_ns
    if origin is None:
        return []  # it ended while setting up: nothing ran, nothing to sample
    samples: list[InvariantSample] = []
    every_ns = int(every * 1e9)
    due_ns = time.monotonic_ns()
    while not launch.done:
        _check_deadline(deadline, bound)
        sent = time.monotonic_ns()
        samples.append(InvariantSample(await query.value(), sent - origin, during=True))
        due_ns = max(due_ns + every_ns, time.monotonic_ns())  # a slow answer skips ticks, it does not burst
        await asyncio.wait({launch.task}, timeout=(due_ns - time.monotonic_ns()) / 1e9)
    samples.append(InvariantSample(await query.value(), time.monotonic_ns() - origin, during=False))
    return samples


def _check_deadline(deadline: float, bound: float) -> None:
    if time.monotonic() >= deadline:
        raise StampedeError(
            f"The launch was still running after {format_duration(bound)} of sampling the invariant: wait for it "
            "with a longer timeout=, or stop it."
        )
