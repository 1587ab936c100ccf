"""A saga across PostgreSQL and Redis: book a trip in three local steps, undo them if a later one fails.

=================  ===================================================  ==================================
step               does                                                 compensation
=================  ===================================================  ==================================
reserve credits    PostgreSQL: take ``amount`` from the wallet and      give the credits back and mark the
                   record the reservation, in one transaction           reservation released
record booking     Redis: ``HSET`` the saga into the bookings hash      ``HDEL`` it
issue ticket       PostgreSQL: insert the ticket                        (the last step: nothing after it)
=================  ===================================================  ==================================

For a share of the sagas the ``failing step`` fails (injected); the
compensations of the steps already done then run in reverse order. Every saga
must end complete (all three steps) or fully compensated (none left), and the
wallet must have lost exactly ``amount`` per completed saga. Seeded bugs:
``compensation=none`` undoes nothing, ``skip booking`` forgets the Redis step.
"""

from __future__ import annotations

import secrets
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome, classify_exception
from ..records.snapshots import SagaState
from .agent_connections import AgentConnections
from .injected_faults import FaultSchedule, InjectedFault

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget
    from ..services.redis_target import RedisTarget

SAGA_TABLES = """
CREATE TABLE IF NOT EXISTS saga_wallets (
    id      bigserial PRIMARY KEY,
    batch   text NOT NULL UNIQUE,
    balance bigint NOT NULL CHECK (balance >= 0)
);
CREATE TABLE IF NOT EXISTS saga_reservations (
    saga_id  text PRIMARY KEY,
    batch    text NOT NULL,
    wallet   bigint NOT NULL REFERENCES saga_wallets (id),
    amount   bigint NOT NULL,
    released boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS saga_tickets (
    saga_id text PRIMARY KEY,
    batch   text NOT NULL
)"""


class SagaStep(Enum):
    """The saga's steps, in the order they run."""

    RESERVE_CREDITS = "reserve credits"
    RECORD_BOOKING = "record booking"
    ISSUE_TICKET = "issue ticket"


class Compensation(Enum):
    """``full`` undoes every completed step; ``none`` and ``skip booking`` are seeded bugs."""

    FULL = "full"
    NONE = "none"
    SKIP_BOOKING = "skip booking"


class SagaTool(BaseTool):
    """Runs one saga per operation, failing ``failing_step`` for ``failure_rate`` of them."""

    def __init__(
        self,
        postgres: PostgresTarget,
        redis: RedisTarget,
        *,
        name: str = "book trip",
        failing_step: SagaStep = SagaStep.ISSUE_TICKET,
        failure_rate: Fraction = Fraction(0),
        compensation: Compensation = Compensation.FULL,
        amount: int = 10,
        balance: int = 1_000_000,
    ) -> None:
        if amount < 1:
            raise ConfigurationError(f"amount must be at least 1 credit, got {amount}")
        if balance < 0:
            raise ConfigurationError(f"a starting balance cannot be negative, got {balance}")
        self.postgres = postgres
        self.redis = redis
        self.name = name
        self.failing_step = failing_step
        self.schedule = FaultSchedule(failure_rate)
        self.compensation = compensation
        self.amount = amount
        self.balance = balance
        self._token = secrets.token_hex(3)
        self._launches = 0
        self.batch = ""
        self._wallet = 0
        self.connections = AgentConnections()

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "steps": ", ".join(step.value for step in SagaStep),
            "failing step": self.failing_step.value,
            "failure rate": self.schedule.percent,
            "compensation": self.compensation.value,
            "amount": str(self.amount),
        }

    def bookings_key(self, batch: str) -> str:
        return self.redis.key(f"saga:{batch}:bookings")

    async def setup(self, agents: int) -> None:
        self._launches += 1
        self.batch = f"{self._token}.{self._launches}"
        connection = await self.postgres.connect()
        try:
            await connection.execute(SAGA_TABLES)
            self._wallet = await connection.fetchval(
                "INSERT INTO saga_wallets (batch, balance) VALUES ($1, $2) RETURNING id", self.batch, self.balance
            )
        finally:
            await connection.close()
        await self.connections.open(self.postgres, agents)

    async def open_agent(self, agent: AgentContext) -> None:
        await self.connections.take(agent)

    async def close_agent(self, agent: AgentContext) -> None:
        await self.connections.give_back(agent)

    async def teardown(self) -> None:
        await self.connections.close()

    async def run(self, agent: AgentContext) -> OpResult:
        connection: asyncpg.Connection = agent.state["connection"]
        saga_id = f"{self.batch}-{agent.agent}-{agent.iteration}"
        failing = self.failing_step if self.schedule.next_faults() else None
        done: list[SagaStep] = []
        written: dict[str, object] = {"batch": self.batch, "saga": saga_id, "injected": failing and failing.value}
        try:
            for step in SagaStep:
                if step is failing:
                    raise InjectedFault(f"{step.value} failed")
                await self._do(step, connection, saga_id)
                done.append(step)
        except Exception as error:  # noqa: BLE001 - any failed step is compensated and recorded
            written["failed_step"] = list(SagaStep)[len(done)].value
            try:
                written["compensated"] = await self._compensate(done, connection, saga_id)
            except Exception as failure:  # noqa: BLE001 - a failed compensation is what the checker must see
                _, code = classify_exception(failure)
                return OpResult(Outcome.ERROR, error=f"compensation failed: {code}", written=written)
            if isinstance(error, InjectedFault):
                return OpResult(Outcome.ERROR, error=f"injected: {error}", written=written)
            outcome, code = classify_exception(error)
            return OpResult(outcome, error=code, written=written)
        return OpResult(written=written)

    async def _do(self, step: SagaStep, connection: asyncpg.Connection, saga_id: str) -> None:
        if step is SagaStep.RESERVE_CREDITS:
            async with connection.transaction():
                await connection.execute(
                    "UPDATE saga_wallets SET balance = balance - $2 WHERE id = $1", self._wallet, self.amount
                )
                await connection.execute(
                    "INSERT INTO saga_reservations (saga_id, batch, wallet, amount) VALUES ($1, $2, $3, $4)",
                    saga_id,
                    self.batch,
                    self._wallet,
                    self.amount,
                )
        elif step is SagaStep.RECORD_BOOKING:
            await self.redis.client.hset(self.bookings_key(self.batch), saga_id, self.amount)
        else:
            await connection.execute("INSERT INTO saga_tickets (saga_id, batch) VALUES ($1, $2)", saga_id, self.batch)

    async def _compensate(self, done: list[SagaStep], connection: asyncpg.Connection, saga_id: str) -> list[str]:
        """Undo ``done`` in reverse order (as far as the compensation mode allows); return what was undone."""
        undone: list[str] = []
        if self.compensation is Compensation.NONE:
            return undone
        for step in reversed(done):
            if step is SagaStep.RECORD_BOOKING and self.compensation is Compensation.SKIP_BOOKING:
                continue
            if step is SagaStep.RECORD_BOOKING:
                await self.redis.client.hdel(self.bookings_key(self.batch), saga_id)
            elif step is SagaStep.RESERVE_CREDITS:
                await self._release(connection, saga_id)
            undone.append(step.value)
        return undone

    @staticmethod
    async def _release(connection: asyncpg.Connection, saga_id: str) -> None:
        """Give the reserved credits back, once: releasing twice changes nothing."""
        async with connection.transaction():
            await connection.execute(
                """WITH released AS (
                       UPDATE saga_reservations SET released = true
                       WHERE saga_id = $1 AND NOT released RETURNING wallet, amount)
                   UPDATE saga_wallets w SET balance = w.balance + r.amount FROM released r WHERE w.id = r.wallet""",
                saga_id,
            )

    async def observe(self, batch: str) -> SagaState:
        """What the sagas of ``batch`` left: reservations, bookings, tickets, and the wallet's balance."""
        connection = await self.postgres.connect()
        try:
            reservations = await connection.fetch(
                "SELECT saga_id, released FROM saga_reservations WHERE batch = $1", batch
            )
            tickets = await connection.fetch("SELECT saga_id FROM saga_tickets WHERE batch = $1", batch)
            final = await connection.fetchval("SELECT balance FROM saga_wallets WHERE batch = $1", batch)
        finally:
            await connection.close()
        bookings = await self.redis.client.hkeys(self.bookings_key(batch))
        if final is None:
            raise ConfigurationError(f"No saga wallet for batch {batch!r}: was the saga tool launched?")
        return SagaState(
            reserved=frozenset(row["saga_id"] for row in reservations if not row["released"]),
            released=frozenset(row["saga_id"] for row in reservations if row["released"]),
            booked=frozenset(key.decode() if isinstance(key, bytes) else key for key in bookings),
            ticketed=frozenset(row["saga_id"] for row in tickets),
            initial_credits=self.balance,
            final_credits=int(final),
        )
