"""List append: each operation is one transaction of random micro-operations on lists kept in PostgreSQL.

A micro-operation appends a value to a key's list or reads the key's whole list.
Values come from one counter, so each is appended once; every micro-operation
goes into the operation's record with its values (the shape in
``stampede.records.list_append``), so the list-append checker can infer from the
history alone which anomalies the launch showed. Keys rotate: a key retires once
``appends_per_key`` appends were planned for it and a fresh key takes its place,
so lists stay short however long the launch; each launch starts on fresh keys, so
its history holds every append its reads can show.

The lists live in one table of the run's schema, ``list_append (tool, key, vals)``,
each tool's rows apart. A transaction that outlives ``transaction_timeout`` is cut
off and recorded as a timeout (its outcome unknown: its commit may have gone through).
With ``lock_timeout``, a transaction that waits longer than that for a row lock is
aborted (55P03) and recorded as failed, so opposite lock orders cost the same short
wait on every server rather than each server's ``deadlock_timeout``.
"""

from __future__ import annotations

import asyncio
import random
from itertools import count
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome, classify_exception
from ..records.list_append import APPEND, READ
from ..retry import NO_RETRIES, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

TABLE = """
CREATE TABLE IF NOT EXISTS list_append (
    tool text   NOT NULL,
    key  bigint NOT NULL,
    vals bigint[] NOT NULL,
    PRIMARY KEY (tool, key)
)"""
APPEND_SQL = (
    "INSERT INTO list_append AS t (tool, key, vals) VALUES ($1, $2, ARRAY[$3::bigint]) "
    "ON CONFLICT (tool, key) DO UPDATE SET vals = t.vals || $3::bigint"
)
READ_SQL = "SELECT vals FROM list_append WHERE tool = $1 AND key = $2"
_OPS = "list_append_ops"


class ListAppendTool(PostgresTool):
    """Random list-append transactions over ``keys`` live keys at ``isolation``."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str,
        keys: int = 10,
        max_transaction_length: int = 4,
        read_fraction: float = 0.5,
        appends_per_key: int = 32,
        isolation: IsolationLevel = IsolationLevel.SERIALIZABLE,
        transaction_timeout: float = 5.0,
        lock_timeout: float | None = None,
        retry: RetryPolicy = NO_RETRIES,
        seed: int | None = None,
    ) -> None:
        super().__init__(target, name=name, isolation=isolation, retry=retry)
        _require(keys >= 1, f"keys must be at least 1, got {keys}")
        _require(
            max_transaction_length >= 1, f"max_transaction_length must be at least 1, got {max_transaction_length}"
        )
        _require(0.0 <= read_fraction <= 1.0, f"read_fraction must be between 0 and 1, got {read_fraction}")
        _require(appends_per_key >= 1, f"appends_per_key must be at least 1, got {appends_per_key}")
        _require(transaction_timeout > 0, f"transaction_timeout must be above 0 s, got {transaction_timeout} s")
        _require(lock_timeout is None or lock_timeout > 0, f"lock_timeout must be above 0 s, got {lock_timeout} s")
        self.keys = keys
        self.max_transaction_length = max_transaction_length
        self.read_fraction = read_fraction
        self.appends_per_key = appends_per_key
        self.transaction_timeout = transaction_timeout
        self._set_lock_timeout = (
            None if lock_timeout is None else f"SET LOCAL lock_timeout = '{max(1, round(lock_timeout * 1000))}ms'"
        )
        self._random = random.Random(seed)
        self._values = count(1)
        self._next_key = count(1)
        self._live: list[int] = []
        self._planned: dict[int, int] = {}

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "keys": str(self.keys),
            "max transaction length": str(self.max_transaction_length),
            "read fraction": f"{self.read_fraction:g}",
        }

    async def prepare(self) -> None:
        """Create the table and clear this tool's rows (a tool defined again starts from nothing)."""
        connection = await self.target.connect()
        try:
            await connection.execute(TABLE)
            await connection.execute("DELETE FROM list_append WHERE tool = $1", self.name)
        finally:
            await connection.close()

    async def setup(self, agents: int) -> None:
        await self.prepare()
        self._live = [next(self._next_key) for _ in range(self.keys)]
        self._planned = {}
        await super().setup(agents)

    def plan(self) -> list[list[Any]]:
        """A transaction's micro-operations: 1 to ``max_transaction_length`` reads and appends on live keys."""
        ops: list[list[Any]] = []
        for _ in range(self._random.randint(1, self.max_transaction_length)):
            slot = self._random.randrange(self.keys)
            key = self._live[slot]
            if self._random.random() < self.read_fraction:
                ops.append([READ, key, None])
                continue
            ops.append([APPEND, key, next(self._values)])
            self._planned[key] = self._planned.get(key, 0) + 1
            if self._planned[key] >= self.appends_per_key:
                self._live[slot] = next(self._next_key)
        return ops

    async def run(self, agent: AgentContext) -> OpResult:
        ops = self.plan()
        agent.state[_OPS] = ops
        try:
            async with asyncio.timeout(self.transaction_timeout):
                result = await super().run(agent)
        except TimeoutError:
            result = OpResult(Outcome.TIMEOUT, error="transaction_timeout")
        except Exception as error:  # noqa: BLE001 - recorded with its micro-operations, as the launcher would
            outcome, code = classify_exception(error)
            result = OpResult(outcome, error=code)
        result.written = ops
        return result

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        ops: list[list[Any]] = agent.state[_OPS]
        for op in ops:
            if op[0] == READ:
                op[2] = None  # a retried attempt reads afresh
        if self._set_lock_timeout is not None:
            await connection.execute(self._set_lock_timeout)
        for op in ops:
            if op[0] == APPEND:
                await connection.execute(APPEND_SQL, self.name, op[1], op[2])
            else:
                values = await connection.fetchval(READ_SQL, self.name, op[1])
                op[2] = list(values) if values is not None else []
        return OpResult()


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(f"List append tool: {message}.")
