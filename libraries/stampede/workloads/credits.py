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
import random
from collections.abc import Sequence
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
    from ..launcher import LaunchPlan
    from ..services.postgres_target import PostgresEndpoint, PostgresTarget

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


async def account_balances(target: PostgresEndpoint, accounts: Sequence[int]) -> dict[int, int]:
    """The balance of each of ``accounts`` by id; every one of them must exist."""
    connection = await target.connect()
    try:
        rows = await connection.fetch("SELECT id, balance FROM accounts WHERE id = ANY($1::bigint[])", list(accounts))
    finally:
        await connection.close()
    missing = sorted(set(accounts) - {row["id"] for row in rows})
    if missing:
        raise ConfigurationError(f"There is no account {missing}; create accounts with Create Credit Accounts first.")
    return {int(row["id"]): int(row["balance"]) for row in rows}


async def total_balance(target: PostgresEndpoint, accounts: Sequence[int]) -> int:
    """The sum of the balances of ``accounts``; every one of them must exist."""
    return sum((await account_balances(target, accounts)).values())


class CreditDeductionTool(PostgresTool):
    """Deducts ``amount`` credits by ``strategy``, one deduction per operation.

    Each operation picks one of ``accounts`` at random; with one account every
    agent contends for the same row.
    """

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "deduct credits",
        strategy: Strategy = Strategy.ATOMIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        accounts: Sequence[int] = (1,),
        amount: int = 1,
        retry: RetryPolicy = DEFAULT_RETRY,
        think_time: float = 0.0,
    ) -> None:
        if amount < 1:
            raise ConfigurationError(f"amount to deduct must be at least 1 credit, got {amount}")
        if not accounts:
            raise ConfigurationError("a credit deduction tool needs at least one account")
        if think_time < 0:
            raise ConfigurationError(f"think time cannot be negative, got {think_time} s")
        super().__init__(
            target, name=name, isolation=isolation, retry=NO_RETRIES if strategy is Strategy.NAIVE else retry
        )
        self.strategy = strategy
        self.accounts = tuple(accounts)
        self.amount = amount
        self._retry = retry
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
            "accounts": ", ".join(str(account) for account in self.accounts),
            "amount": str(self.amount),
        }

    def definition(self) -> dict[str, Any]:
        if type(self) is not CreditDeductionTool:
            return super().definition()  # a kind of its own, with more to its definition: refused
        return {
            "name": self.name,
            "strategy": self.strategy,
            "isolation": self.isolation,
            "accounts": self.accounts,
            "amount": self.amount,
            "retry": self._retry,
            "think_time": self.think_time,
        }

    async def setup(self, agents: int) -> None:
        await self._note_starting_balance()
        await super().setup(agents)

    async def before_workers(self, _plan: LaunchPlan) -> None:
        """Note the starting balance here (a launch on workers sets the tool up in each worker, not here)."""
        await self._note_starting_balance()

    async def _note_starting_balance(self) -> None:
        self.initial_balance = await total_balance(self.target, self.accounts)

    def amount_of(self, _operation: object) -> int:
        return self.amount

    async def final_balance(self) -> int:
        """The balance of all the tool's accounts together."""
        return await total_balance(self.target, self.accounts)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        account = self.accounts[0] if len(self.accounts) == 1 else random.choice(self.accounts)
        return await self._attempt(connection, account)

    async def _think(self) -> None:
        if self.think_time:
            await asyncio.sleep(self.think_time)

    def _deducted(self, account: int, balance: int) -> OpResult:
        return OpResult(
            read={"account": account, "balance": balance},
            written={"account": account, "balance": balance - self.amount},
        )

    async def _read_modify_write(self, connection: asyncpg.Connection, account: int) -> OpResult:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1", account)
        await self._think()
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - self.amount, account)
        return self._deducted(account, balance)

    async def _for_update(self, connection: asyncpg.Connection, account: int) -> OpResult:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1 FOR UPDATE", account)
        await self._think()
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - self.amount, account)
        return self._deducted(account, balance)

    async def _atomic(self, connection: asyncpg.Connection, account: int) -> OpResult:
        await self._think()
        left = await connection.fetchval(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance", self.amount, account
        )
        return self._deducted(account, left + self.amount)

    async def _optimistic(self, connection: asyncpg.Connection, account: int) -> OpResult:
        row = await connection.fetchrow("SELECT balance, version FROM accounts WHERE id = $1", account)
        await self._think()
        updated = await connection.fetchval(
            "UPDATE accounts SET balance = $1, version = version + 1 WHERE id = $2 AND version = $3 RETURNING version",
            row["balance"] - self.amount,
            account,
            row["version"],
        )
        if updated is None:
            return OpResult(Outcome.CONFLICT, error="version_mismatch")
        return self._deducted(account, row["balance"])
