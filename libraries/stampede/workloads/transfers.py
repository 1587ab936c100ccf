"""Transfers: agents move credits between accounts, taking two row locks in one transaction.

A transfer debits its source and credits its destination, one ``UPDATE`` each,
with an optional think time between the two that widens the window in which
the second lock is contended. The order in which the two rows are locked is
the tool's ``lock order``:

==========  ===============================================================
opposite    source first. Odd agents move credits one way and even agents
            the other, so half lock A then B and half B then A: deadlocks.
ordered     the lower account id first, whichever way the credits go: the
            textbook fix, under which no deadlock can form.
==========  ===============================================================

PostgreSQL looks for a deadlock only after a lock wait has lasted
``deadlock_timeout``; it then aborts one transaction of the cycle (the victim)
with SQLSTATE 40P01, which the tool retries by its retry policy. For every 40P01
a transfer meets, the tool records how long the victim's blocking statement had
waited when the 40P01 came back: the time the deadlock took to be resolved, seen
from the victim. It is an upper bound of the time the cycle itself existed, since
the cycle cannot form before the victim's request; it is at least
``deadlock_timeout``, and now and then (about 1 deadlock in 150, measured) up to
twice that, when the statement first waited for its partner's previous
transaction and only then for the one it deadlocked with. An operation records every
such wait (``read["deadlock_waits_ns"]``, one per 40P01, so checkers see each
deadlock) and its worst as the timing ``deadlock_resolution`` (metrics
``deadlock_resolution_p95`` and so on). A successful transfer records what it
moved (``written = {"from", "to", "amount"}``) so conservation can be checked
account by account.

Transfers run at read committed: at the stricter levels PostgreSQL refuses an
update of a row changed since the snapshot (40001) before any deadlock can form.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, OpResult
from ..errors import ConfigurationError
from ..records.fields import DEADLOCK_WAITS
from ..retry import DEFAULT_RETRY, RetryPolicy
from .credits import account_balances
from .isolation import IsolationLevel
from .postgres_tool import PostgresTool

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

RESOLUTION_TIMING = "deadlock_resolution"
_MOVE = "UPDATE accounts SET balance = balance + $1 WHERE id = $2 RETURNING id"


class LockOrder(Enum):
    """Which of its two accounts a transfer locks first; see the module documentation."""

    OPPOSITE = "opposite"
    ORDERED = "ordered"


class TransferTool(PostgresTool):
    """Moves ``amount`` credits between two of ``accounts`` per operation, locking both rows in one transaction.

    Agents work in pairs on pairs of accounts: agents 1 and 2 on the first two
    accounts, 3 and 4 on the next two, wrapping around when agents outnumber
    accounts. Odd agents move credits from the first account of their pair to
    the second, even agents back, so partners contend for the same two rows and
    nobody else does: each deadlock is a clean two-transaction cycle, and its
    resolution time is not inflated by queues of other waiters.
    ``session_settings`` are PostgreSQL settings for the agents' sessions
    (e.g. ``{"deadlock_timeout": "1s"}``).
    """

    timed_phases = (RESOLUTION_TIMING,)

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "transfer",
        accounts: Sequence[int],
        lock_order: LockOrder = LockOrder.OPPOSITE,
        amount: int = 1,
        think_time: float = 0.0,
        retry: RetryPolicy = DEFAULT_RETRY,
        session_settings: Mapping[str, str] | None = None,
    ) -> None:
        if len(set(accounts)) != len(accounts) or len(accounts) < 2 or len(accounts) % 2:
            raise ConfigurationError(
                f"transfer tool {name!r} pairs its accounts, so it needs an even number of different accounts "
                f"(2 or more), got {list(accounts)}; create them with Create Credit Accounts"
            )
        if amount < 1:
            raise ConfigurationError(f"amount to transfer must be at least 1 credit, got {amount}")
        if think_time < 0:
            raise ConfigurationError(f"think time cannot be negative, got {think_time} s")
        super().__init__(target, name=name, isolation=IsolationLevel.READ_COMMITTED, retry=retry)
        self.accounts = tuple(accounts)
        self.lock_order = lock_order
        self.amount = amount
        self.think_time = think_time
        self.session_settings = {name: str(value) for name, value in (session_settings or {}).items()}
        self.initial_balances: dict[int, int] | None = None
        self.deadlock_timeout: str | None = None
        """``deadlock_timeout`` as the agents' sessions had it (``100ms``), known once the tool is validated."""

    def describe(self) -> dict[str, str]:
        settings = {
            **super().describe(),
            "accounts": ", ".join(str(account) for account in self.accounts),
            "lock order": self.lock_order.value,
            "amount": str(self.amount),
            "think time": f"{self.think_time * 1000:g} ms",
        }
        if self.session_settings:
            settings["session settings"] = ", ".join(f"{k}={v}" for k, v in self.session_settings.items())
        if self.deadlock_timeout is not None:
            settings["deadlock_timeout"] = self.deadlock_timeout
        return settings

    async def validate(self) -> str:
        """Apply the session settings on a connection of the run, and return the sessions' ``deadlock_timeout``.

        A setting PostgreSQL refuses (unknown, malformed, or one only a superuser
        may change) fails here with the server's reason.
        """
        connection = await self.target.connect()
        try:
            for name, value in self.session_settings.items():
                try:
                    await connection.execute("SELECT set_config($1, $2, false)", name, value)
                except asyncpg.PostgresError as error:
                    raise ConfigurationError(
                        f"PostgreSQL refused the session setting {name}={value!r} of tool {self.name!r}: {error}. "
                        "Check the name and value; deadlock_timeout may only be changed by a superuser "
                        "(or, from PostgreSQL 15, a role granted SET ON PARAMETER deadlock_timeout)."
                    ) from None
            self.deadlock_timeout = str(await connection.fetchval("SHOW deadlock_timeout"))
        finally:
            await connection.close()
        return self.deadlock_timeout

    async def setup(self, agents: int) -> None:
        await self.validate()
        self.initial_balances = await account_balances(self.target, self.accounts)
        session = {**self.target.connection_kwargs()["server_settings"], **self.session_settings}
        await self.connections.open(self.target, agents, server_settings=session)

    async def final_balances(self) -> dict[int, int]:
        """The balance of each of the tool's accounts now."""
        return await account_balances(self.target, self.accounts)

    async def run(self, agent: AgentContext) -> OpResult:
        waits: list[int] = []
        agent.state[DEADLOCK_WAITS] = waits
        result = await super().run(agent)
        if waits:
            result.read = {DEADLOCK_WAITS: waits}
            result.timings = {RESOLUTION_TIMING: max(waits)}
        return result

    async def attempt(self, connection: asyncpg.Connection, agent: AgentContext) -> OpResult:
        source, destination = self._route(agent)
        first, second = (source, destination)
        if self.lock_order is LockOrder.ORDERED and first > second:
            first, second = second, first
        waits: list[int] = agent.state[DEADLOCK_WAITS]
        await self._move(connection, first, -self.amount if first == source else self.amount, waits)
        if self.think_time:
            await asyncio.sleep(self.think_time)
        await self._move(connection, second, -self.amount if second == source else self.amount, waits)
        return OpResult(written={"from": source, "to": destination, "amount": self.amount})

    def _route(self, agent: AgentContext) -> tuple[int, int]:
        pair = (agent.agent - 1) // 2 % (len(self.accounts) // 2)
        one, other = self.accounts[2 * pair], self.accounts[2 * pair + 1]
        return (one, other) if agent.agent % 2 else (other, one)

    @staticmethod
    async def _move(connection: asyncpg.Connection, account: int, change: int, waits: list[int]) -> None:
        issued = time.monotonic_ns()
        try:
            moved = await connection.fetchval(_MOVE, change, account)
        except asyncpg.DeadlockDetectedError:
            waits.append(time.monotonic_ns() - issued)
            raise
        if moved is None:
            raise ConfigurationError(f"account {account} no longer exists")
