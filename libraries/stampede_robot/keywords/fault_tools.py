"""Keywords that define tools keeping a ledger, so runs with faults can be judged operation by operation."""

from __future__ import annotations

from robot.api.deco import keyword

from stampede.retry import RetryPolicy
from stampede.workloads.credits import Strategy
from stampede.workloads.isolation import IsolationLevel
from stampede.workloads.ledgered_credits import LedgeredCreditDeductionTool, LedgerWrite
from stampede.workloads.redis_counter import RedisCounterTool

from ..component import LibraryComponent


class FaultToolKeywords(LibraryComponent):
    """Tools for runs with faults (ConcurrentAgents)."""

    @keyword(tags=["faults", "workloads"])
    def define_ledgered_credit_deduction_tool(
        self,
        name: str,
        accounts: int | list[int],
        *,
        strategy: Strategy = Strategy.ATOMIC,
        isolation: IsolationLevel = IsolationLevel.READ_COMMITTED,
        amount: int = 1,
        max_retries: int = 20,
        ledger: LedgerWrite = LedgerWrite.IN_TRANSACTION,
    ) -> None:
        """Defines a credit deduction tool that books every deduction in a ledger, for runs with faults.

        Like `Define Credit Deduction Tool`, and each deduction also writes a row
        keyed by its operation to ``credit_ledger`` in the same transaction, so
        `Ledger Should Account For Every Operation` can tell which deductions with
        an unknown outcome (cut during COMMIT, timed out) had committed.
        ``ledger=after commit`` books in a second transaction once the commit
        was seen: a seeded bug that faults expose.

        | Define Ledgered Credit Deduction Tool | deduct | ${accounts} | strategy=for update |
        """
        self.runtime.tools[name] = LedgeredCreditDeductionTool(
            self.runtime.postgres,
            name=name,
            strategy=strategy,
            isolation=isolation,
            accounts=accounts if isinstance(accounts, list) else [accounts],
            amount=amount,
            retry=RetryPolicy(max_retries=max_retries),
            ledger=ledger,
        )

    @keyword(tags=["faults", "workloads"])
    def define_redis_counter_tool(self, name: str, counter: str = "counter", max_retries: int = 3) -> None:
        """Defines a tool that increments a Redis counter once per operation, tagged with the operation's id.

        One Lua script records the id and increments only if the id is new, so
        an agent whose connection was killed retries the same operation (up to
        ``max_retries`` times) without risk of counting it twice. The ids are the
        ledger `Ledger Should Account For Every Operation` checks.

        | Define Redis Counter Tool | count |
        """
        self.runtime.tools[name] = RedisCounterTool(
            self.runtime.redis, name=name, counter=counter, max_retries=max_retries
        )
