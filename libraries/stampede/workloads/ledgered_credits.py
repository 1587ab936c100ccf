"""Credit deductions that book each one in a ledger, so faults cannot hide what really happened.

Each deduction writes a ledger row keyed by its operation (this launch's key,
the agent, the iteration) in the same transaction as the balance change: the row
exists exactly when the deduction was applied. After a run with terminated
backends or a partition, the ledger tells which deductions with an unknown
outcome (cut during COMMIT, timed out) had committed; see
:mod:`stampede.checkers.ledger`. The primary key also makes a deduction
impossible to apply twice.

``ledger=after commit`` is a seeded bug for the check to catch: the client
books a deduction only after it saw the commit, in a second transaction, so a
connection lost in between leaves a deduction the ledger does not know.
"""

from __future__ import annotations

import secrets
from enum import Enum
from typing import TYPE_CHECKING, Any

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import StampedeError
from ..outcomes import Outcome
from ..records.snapshots import LedgerSnapshot
from .credits import CreditDeductionTool, total_balance

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

LEDGER_TABLE = """
CREATE TABLE IF NOT EXISTS credit_ledger (
    launch_key text   NOT NULL,
    agent      int    NOT NULL,
    iteration  bigint NOT NULL,
    account    bigint NOT NULL,
    amount     bigint NOT NULL,
    PRIMARY KEY (launch_key, agent, iteration)
)"""
_BOOK = "INSERT INTO credit_ledger (launch_key, agent, iteration, account, amount) VALUES ($1, $2, $3, $4, $5)"


class LedgerWrite(Enum):
    """When a deduction is booked."""

    IN_TRANSACTION = "in transaction"
    AFTER_COMMIT = "after commit"


class LedgeredCreditDeductionTool(CreditDeductionTool):
    """A :class:`CreditDeductionTool` that books every deduction in ``credit_ledger``."""

    def __init__(self, target: PostgresTarget, *, ledger: LedgerWrite = LedgerWrite.IN_TRANSACTION, **options: Any):
        super().__init__(target, **options)
        self.ledger = ledger
        self.launch_key: str | None = None

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "ledger": f"credit_ledger, booked {self.ledger.value}",
            "ledger key": self.launch_key or "",
        }

    async def setup(self, agents: int) -> None:
        self.launch_key = secrets.token_hex(6)
        connection = await self.target.connect()
        try:
            await connection.execute(LEDGER_TABLE)
        finally:
            await connection.close()
        await super().setup(agents)

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        result = await super().attempt(connection, agent)
        if self.ledger is LedgerWrite.IN_TRANSACTION and result.outcome is Outcome.OK:
            await self._book(connection, agent, result)
        return result

    async def run(self, agent: AgentContext) -> OpResult:
        result = await super().run(agent)
        if self.ledger is LedgerWrite.AFTER_COMMIT and result.outcome is Outcome.OK:
            await self._book(agent.state["connection"], agent, result)
        return result

    async def _book(self, connection: asyncpg.Connection, agent: AgentContext, result: OpResult) -> None:
        account = result.written["account"]
        await connection.execute(_BOOK, self.launch_key, agent.agent, agent.iteration, account, self.amount)

    async def ledger_snapshot(self, launch_key: str, target: PostgresTarget | None = None) -> LedgerSnapshot:
        """The balance before the launch with ``launch_key`` and now, and that launch's ledger rows.

        Read through ``target`` when given (the direct one, say, when the tool's goes through a fault proxy).
        """
        if self.initial_balance is None:
            raise StampedeError(f"Tool {self.name!r} has not run yet, so it has no ledger to read.")
        target = target or self.target
        connection = await target.connect()
        try:
            rows = await connection.fetch(
                "SELECT agent, iteration, amount FROM credit_ledger WHERE launch_key = $1 AND account = ANY($2)",
                launch_key,
                list(self.accounts),
            )
        finally:
            await connection.close()
        entries = {(row["agent"], row["iteration"]): int(row["amount"]) for row in rows}
        return LedgerSnapshot(self.initial_balance, await total_balance(target, self.accounts), entries)
