"""Credit deductions written as Python tools (`Define Python Tool`): the shape a suite's own tool takes.

Each class is a factory: Stampede makes one object per agent, with the agent's
context, calls ``setup()`` before the start barrier, ``run()`` once per
operation and ``teardown()`` after the agent's last operation. ``run()``
returns what the operation read, so `No Update Should Be Lost` can judge it.
"""

from __future__ import annotations

from typing import Any

import asyncpg


class _Deduction:
    """Connects to the run's PostgreSQL (its own schema) and deducts from ``account`` one ``amount`` at a time."""

    def __init__(self, context: Any) -> None:
        self.dsn = context.services.postgres_dsn
        self.account = int(context.settings["account"])
        self.amount = int(context.settings.get("amount", 1))
        self.db: asyncpg.Connection | None = None

    async def setup(self) -> None:
        self.db = await asyncpg.connect(self.dsn)

    async def teardown(self) -> None:
        if self.db is not None:
            await self.db.close()


class NaiveDeduction(_Deduction):
    """Reads the balance, then writes balance - amount: two agents that read the same balance lose an update."""

    async def run(self) -> dict[str, Any]:
        assert self.db is not None
        async with self.db.transaction():
            balance = await self.db.fetchval("SELECT balance FROM accounts WHERE id = $1", self.account)
            await self.db.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - self.amount, self.account)
        return {"read": {"account": self.account, "balance": balance}, "written": {"balance": balance - self.amount}}


class AtomicDeduction(_Deduction):
    """One UPDATE that subtracts in place: PostgreSQL serialises the writers, each sees the balance it changed."""

    async def run(self) -> dict[str, Any]:
        assert self.db is not None
        before = await self.db.fetchval(
            "UPDATE accounts SET balance = balance - $1 WHERE id = $2 RETURNING balance + $1", self.amount, self.account
        )
        return {"read": {"account": self.account, "balance": before}, "written": {"balance": before - self.amount}}


class TwoStepTransfer(_Deduction):
    """Moves ``amount`` from ``account`` to ``to`` in two transactions: a reader between them sees it nowhere."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.to = int(context.settings["to"])

    async def run(self) -> None:
        await self._move()

    async def _move(self) -> None:
        assert self.db is not None
        await self.db.execute("UPDATE accounts SET balance = balance - $1 WHERE id = $2", self.amount, self.account)
        await self.db.execute("SELECT pg_sleep(0.01)")  # the money is in flight
        await self.db.execute("UPDATE accounts SET balance = balance + $1 WHERE id = $2", self.amount, self.to)


class OneTransactionTransfer(TwoStepTransfer):
    """The same two steps in one transaction: a reader sees the money in one account or the other, never in neither."""

    async def run(self) -> None:
        assert self.db is not None
        async with self.db.transaction():
            await self._move()
