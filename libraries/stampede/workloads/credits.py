"""Credit deduction: agents take credits from a shared account, by one of five strategies.

===================  ===========================================================
naive                read the balance, write balance − amount; no guard, no retry
atomic               one ``UPDATE … SET balance = balance − amount``
optimistic           read balance and version, write only if the version is unchanged
for update           ``SELECT … FOR UPDATE`` then write
serializable retry   read-modify-write that retries serialization failures (40001)
===================  ===========================================================

Every strategy except ``naive`` retries concurrency conflicts (version mismatch,
40001, 40P01) with the tool's retry policy. ``serializable retry`` is safe only
where PostgreSQL raises 40001, i.e. at repeatable read and serializable: at read
committed it loses updates just like ``naive``, which the matrix suite shows.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome
from ..retry import DEFAULT_RETRY, NO_RETRIES, RetryPolicy
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

ACCOUNTS_TABLE = """
CREATE TABLE IF NOT EXISTS accounts (
    id      bigserial PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0),
    version bigint NOT NULL DEFAULT 0
)"""


class Strategy(Enum):
    """How an agent deducts credits; see the module documentation."""

    NAIVE = "naive"
    ATOMIC = "atomic"
    OPTIMISTIC = "optimistic"
    FOR_UPDATE = "for update"
    SERIALIZABLE_RETRY = "serializable retry"



async def create_accounts(target: PostgresTarget, count: int, balance: int) -> list[int]:
    """Create ``count`` accounts holding ``balance`` credits each and return their ids."""
    if count < 1:
        raise ConfigurationError(f"account count must be at least 1, got {count}")
    if balance < 0:
        raise ConfigurationError(f"a starting balance cannot be negative, got {balance}")
    connection = await target.connect()
    try:
        await connection.execute(ACCOUNTS_TABLE)
        rows = await connection.fetch(
            "INSERT INTO accounts (balance) SELECT $1 FROM generate_series(1, $2) RETURNING id", balance, count
        )
    finally:
        await connection.close()
    return [row["id"] for row in rows]


async def account_balance(target: PostgresTarget, account: int) -> int:
    connection = await target.connect()
    try:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1", account)
    finally:
        await connection.close()
    if balance is None:
        raise ConfigurationError(f"There is no account {account}; create it with Create Credit Accounts first.")
    return int(balance)


class CreditDeductionTool(PostgresTool):
    """Deducts ``amount`` credits from ``account`` by ``strategy``, one deduction per operation."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "deduct credits",
        strategy: Strategy = Strategy.ATOMIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        account: int = 1,
        amount: int = 1,
        retry: RetryPolicy = DEFAULT_RETRY,
        think_time: float = 0.0,
    ) -> None:
        if amount < 1:
            raise ConfigurationError(f"amount to deduct must be at least 1 credit, got {amount}")
        if think_time < 0:
            raise ConfigurationError(f"think time cannot be negative, got {think_time} s")
        super().__init__(
            target, name=name, isolation=isolation, retry=NO_RETRIES if strategy is Strategy.NAIVE else retry
        )
        self.strategy = strategy
        self.account = account
        self.amount = amount
        self.think_time = think_time
        self.initial_balance: int | None = None
        self._attempt = {
            Strategy.NAIVE: self._read_modify_write,
            Strategy.SERIALIZABLE_RETRY: self._read_modify_write,
            Strategy.ATOMIC: self._atomic,
            Strategy.OPTIMISTIC: self._optimistic,
            Strategy.FOR_UPDATE: self._for_update,
        }[strategy]

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "strategy": self.strategy.value,
            "account": str(self.account),
            "amount": str(self.amount),
        }

    async def setup(self, agents: int) -> None:
        self.initial_balance = await account_balance(self.target, self.account)
        await super().setup(agents)

    def amount_of(self, _operation: object) -> int:
        return self.amount

    async def final_balance(self) -> int:
        return await account_balance(self.target, self.account)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        return await self._attempt(connection)

    async def _think(self) -> None:
        if self.think_time:
            await asyncio.sleep(self.think_time)

    def _deducted(self, balance: int) -> OpResult:
        return OpResult(
            read={"account": self.account, "balance": balance},
            written={"account": self.account, "balance": balance - self.amount},
        )

    async def _read_modify_write(self, connection: asyncpg.Connection) -> OpResult:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1", self.account)
        await self._think()
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - self.amount, self.account)
        return self._deducted(balance)

    async def _for_update(self, connection: asyncpg.Connection) -> OpResult:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE", self.account)
        await self._think()
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - self.amount, self.account)
        return self._deducted(balance)

    async def _atomic(self, connection: asyncpg.Connection) -> OpResult:
        await self._think()
        left = await connection.fetchval(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance", self.amount, self.account
        )
        return self._deducted(left + self.amount)

    async def _optimistic(self, connection: asyncpg.Connection) -> OpResult:
        row = await connection.fetchrow("SELECT balance, version FROM accounts WHERE id = $1", self.account)
        await self._think()
        updated = await connection.fetchval(
            "UPDATE accounts SET balance = $1, version = version + 1 WHERE id = $2 AND version = $3 RETURNING version",
            row["balance"] - self.amount,
            self.account,
            row["version"],
        )
        if updated is None:
            return OpResult(Outcome.CONFLICT, error="version_mismatch")
        return self._deducted(row["balance"])
