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
