"""Two-phase commit across two services: an order in one schema, its charge in another.

Each operation is one distributed transaction, coordinated by the agent over
three connections of its own (orders, billing, coordinator):

1. orders:      ``BEGIN``, insert the order,  ``PREPARE TRANSACTION '<gid>-orders'``
2. billing:     ``BEGIN``, insert the charge, ``PREPARE TRANSACTION '<gid>-billing'``
3. coordinator: log the decision to commit (a committed row: the commit point)
4. ``COMMIT PREPARED`` on orders, then on billing

A participant that fails before the decision aborts the whole operation
(``ROLLBACK``, ``ROLLBACK PREPARED``). Once the decision is logged nothing is
rolled back: a failure from then on leaves the rest to recovery.

Fault injection, for a share of the operations: ``billing refuses`` (the billing
participant votes no: a clean abort), or a coordinator crash at one point, where
it abandons the operation by dropping its connections and leaves prepared
transactions behind. :meth:`TwoPhaseCommitTool.recover` resolves them from
``pg_prepared_xacts``: commit those whose decision was logged, roll back the rest
(presumed abort). Run it only while no agent of the tool is running: an
operation in flight has prepared but not yet decided, and would be rolled back.

The ``naive`` protocol commits orders, then billing, without preparing: a failure
between the two leaves an order without its charge, the partial state Stampede
must catch.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome, classify_exception
from ..records.snapshots import AtomicityState
from .injected_faults import FaultSchedule, InjectedFault

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

DECISIONS_TABLE = """
CREATE TABLE IF NOT EXISTS coord_decisions (
    op_id      text PRIMARY KEY,
    batch      text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
_IN_DOUBT = """
    SELECT gid FROM pg_prepared_xacts
    WHERE database = current_database() AND left(gid, length($1)) = $1
    ORDER BY prepared
"""
_CONNECTIONS = ("coordinator", "orders", "billing")


class CommitProtocol(Enum):
    """``two-phase``: prepare both, log the decision, commit both. ``naive``: commit one after the other."""

    TWO_PHASE = "two-phase"
    NAIVE = "naive"


class CoordinatorFault(Enum):
    """What goes wrong in a faulted operation; see the module documentation."""

    NONE = "none"
    BILLING_REFUSES = "billing refuses"
    CRASH_AFTER_FIRST_PREPARE = "crash after first prepare"
    CRASH_BEFORE_DECISION = "crash before decision"
    CRASH_AFTER_DECISION = "crash after decision"
    CRASH_AFTER_FIRST_COMMIT = "crash after first commit"


_NAIVE_FAULTS = (CoordinatorFault.NONE, CoordinatorFault.BILLING_REFUSES, CoordinatorFault.CRASH_AFTER_FIRST_COMMIT)


class _Crash(Exception):
    """The coordinator dies here (injected): it drops its connections and does nothing more."""


@dataclass(frozen=True)
class Participant:
    """One service taking part: its own schema and table."""

    name: str
    schema: str
    table: str

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    def create_sql(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.qualified_table} ("
            "op_id text PRIMARY KEY, batch text NOT NULL, agent int NOT NULL, amount int NOT NULL)"
        )

    def insert_sql(self) -> str:
        return f"INSERT INTO {self.qualified_table} (op_id, batch, agent, amount) VALUES ($1, $2, $3, $4)"


@dataclass
class Recovery:
    """What one recovery did: the in-doubt transactions it committed and rolled back."""

    committed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)

    @property
    def resolved(self) -> int:
        return len(self.committed) + len(self.rolled_back)


def _quoted(gid: str) -> str:
    return "'" + gid.replace("'", "''") + "'"


class TwoPhaseCommitTool(BaseTool):
    """Places an order and charges for it in two services, atomically or (``naive``) not."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "place order",
        protocol: CommitProtocol = CommitProtocol.TWO_PHASE,
        fault: CoordinatorFault = CoordinatorFault.NONE,
        fault_rate: Fraction = Fraction(0),
        amount: int = 1,
    ) -> None:
        if protocol is CommitProtocol.NAIVE and fault not in _NAIVE_FAULTS:
            allowed = ", ".join(repr(f.value) for f in _NAIVE_FAULTS)
            raise ConfigurationError(
                f"The naive protocol neither prepares nor logs a decision, so fault {fault.value!r} has no place "
                f"in it; use one of {allowed}."
            )
        if amount < 1:
            raise ConfigurationError(f"amount must be at least 1, got {amount}")
        self.target = target
        self.name = name
        self.protocol = protocol
        self.fault = fault
        self.schedule = FaultSchedule(fault_rate if fault is not CoordinatorFault.NONE else Fraction(0))
        self.amount = amount
        self.gid_prefix = f"stampede-{target.run_id}-2pc-"
        self._token = secrets.token_hex(3)
        self._launches = 0
        self.batch = ""
        self.orders: Participant | None = None
        self.billing: Participant | None = None
        self.recoveries: list[Recovery] = []

    def describe(self) -> dict[str, str]:
        return {
            "tool": self.name,
            "protocol": self.protocol.value,
            "participants": ", ".join(p.qualified_table for p in self._participants()) or "orders, billing",
            "fault": self.fault.value,
            "fault rate": self.schedule.percent,
        }

    def _participants(self) -> tuple[Participant, ...]:
        return tuple(p for p in (self.orders, self.billing) if p is not None)

    def batch_prefix(self, batch: str) -> str:
        """The start of every gid of ``batch``'s operations."""
        return f"{self.gid_prefix}{batch}-"

    async def setup(self, agents: int) -> None:
        if self.protocol is CommitProtocol.TWO_PHASE:
            await self._require_prepared_transactions(agents)
        self.orders = Participant("orders", await self.target.create_schema("orders"), "coord_orders")
        self.billing = Participant("billing", await self.target.create_schema("billing"), "coord_billing")
        connection = await self.target.connect()
        try:
            for participant in self._participants():
                await connection.execute(participant.create_sql())
            await connection.execute(DECISIONS_TABLE)
        finally:
            await connection.close()
        self._launches += 1
        self.batch = f"{self._token}.{self._launches}"

    async def _require_prepared_transactions(self, agents: int) -> None:
        """Refuse to start unless the server has two free prepared-transaction slots per agent."""
        allowed = int(await self.target.fetch_setting("max_prepared_transactions"))
        if allowed == 0:
            raise ConfigurationError(
                f"PostgreSQL at {self.target.display_dsn} has max_prepared_transactions = 0, so PREPARE "
                f"TRANSACTION is disabled: two-phase commit with {agents} agents needs at least {2 * agents}. "
                "Raise it in postgresql.conf (needs a restart), or use the embedded PostgreSQL."
            )
        connection = await self.target.connect()
        try:
            taken = int(await connection.fetchval("SELECT count(*) FROM pg_prepared_xacts"))  # slots are server-wide
        finally:
            await connection.close()
        if allowed - taken < 2 * agents:
            raise ConfigurationError(
                f"PostgreSQL at {self.target.display_dsn} has max_prepared_transactions = {allowed}"
                + (f", {taken} of them taken by transactions already prepared and not yet resolved" if taken else "")
                + f": two-phase commit with {agents} agents needs at least {2 * agents} free (two per agent). "
                + (
                    "Resolve the prepared ones (Recover In-Doubt Transactions), use fewer agents, "
                    if taken
                    else "Use fewer agents, "
                )
                + "or raise max_prepared_transactions (needs a restart)."
            )

    async def open_agent(self, agent: AgentContext) -> None:
        await self._connections(agent)

    async def _connections(self, agent: AgentContext) -> dict[str, asyncpg.Connection]:
        """The agent's three connections, reopened after a crash dropped them."""
        connections: dict[str, asyncpg.Connection] = agent.state.setdefault("connections", {})
        for role in _CONNECTIONS:
            if role not in connections or connections[role].is_closed():
                connections[role] = await self.target.connect()
        return connections

    def _drop_connections(self, agent: AgentContext) -> None:
        for connection in agent.state.pop("connections", {}).values():
            connection.terminate()

    async def close_agent(self, agent: AgentContext) -> None:
        for connection in agent.state.pop("connections", {}).values():
            try:
                await connection.close(timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                connection.terminate()

    async def run(self, agent: AgentContext) -> OpResult:
        op_id = f"{self.batch}-{agent.agent}-{agent.iteration}"
        fault = self.fault if self.schedule.next_faults() else CoordinatorFault.NONE
        written = {"batch": self.batch, "op": op_id, "fault": fault.value}
        try:
            connections = await self._connections(agent)
            if self.protocol is CommitProtocol.TWO_PHASE:
                timings = await self._two_phase(connections, op_id, agent.agent, fault)
            else:
                timings = await self._naive(connections, op_id, agent.agent, fault)
        except _Crash:
            self._drop_connections(agent)
            return OpResult(Outcome.ERROR, error=f"injected {fault.value}", written=written)
        except InjectedFault as refusal:
            return OpResult(Outcome.ERROR, error=f"injected: {refusal}", written=written)
        except Exception as error:  # noqa: BLE001 - recorded; the connections' state is unknown
            self._drop_connections(agent)
            outcome, code = classify_exception(error)
            return OpResult(outcome, error=code, written=written)
        except BaseException:  # cancelled by a timeout mid-protocol
            self._drop_connections(agent)
            raise
        return OpResult(written=written, timings=timings)

    @staticmethod
    def _crash_if(fault: CoordinatorFault, point: CoordinatorFault) -> None:
        if fault is point:
            raise _Crash(point.value)

    async def _two_phase(
        self, connections: dict[str, asyncpg.Connection], op_id: str, agent: int, fault: CoordinatorFault
    ) -> dict[str, int]:
        assert self.orders is not None and self.billing is not None, "setup() names the participants"
        started = time.monotonic_ns()
        gids = {p.name: f"{self.gid_prefix}{op_id}-{p.name}" for p in self._participants()}
        prepared: list[Participant] = []
        try:
            for participant in self._participants():
                connection = connections[participant.name]
                await connection.execute("BEGIN")
                await connection.execute(participant.insert_sql(), op_id, self.batch, agent, self.amount)
                if participant is self.billing and fault is CoordinatorFault.BILLING_REFUSES:
                    raise InjectedFault("billing refused to prepare")
                await connection.execute(f"PREPARE TRANSACTION {_quoted(gids[participant.name])}")
                prepared.append(participant)
                if participant is self.orders:
                    self._crash_if(fault, CoordinatorFault.CRASH_AFTER_FIRST_PREPARE)
            self._crash_if(fault, CoordinatorFault.CRASH_BEFORE_DECISION)
        except (InjectedFault, asyncpg.PostgresError):
            await self._abort(connections, prepared, gids)
            raise
        voted = time.monotonic_ns()
        await connections["coordinator"].execute(
            "INSERT INTO coord_decisions (op_id, batch) VALUES ($1, $2)", op_id, self.batch
        )
        self._crash_if(fault, CoordinatorFault.CRASH_AFTER_DECISION)
        decided = time.monotonic_ns()
        await connections["orders"].execute(f"COMMIT PREPARED {_quoted(gids['orders'])}")
        self._crash_if(fault, CoordinatorFault.CRASH_AFTER_FIRST_COMMIT)
        await connections["billing"].execute(f"COMMIT PREPARED {_quoted(gids['billing'])}")
        return {"prepare": voted - started, "decide": decided - voted, "commit": time.monotonic_ns() - decided}

    @staticmethod
    async def _abort(
        connections: dict[str, asyncpg.Connection], prepared: list[Participant], gids: dict[str, str]
    ) -> None:
        """Undo a transaction no decision was logged for: roll back the open ones and the prepared ones."""
        for connection in connections.values():
            if connection.is_in_transaction():
                await connection.execute("ROLLBACK")
        for participant in prepared:
            await connections[participant.name].execute(f"ROLLBACK PREPARED {_quoted(gids[participant.name])}")

    async def _naive(
        self, connections: dict[str, asyncpg.Connection], op_id: str, agent: int, fault: CoordinatorFault
    ) -> dict[str, int]:
        started = time.monotonic_ns()
        for participant in self._participants():
            connection = connections[participant.name]
            async with connection.transaction():
                await connection.execute(participant.insert_sql(), op_id, self.batch, agent, self.amount)
                if participant is self.billing and fault is CoordinatorFault.BILLING_REFUSES:
                    raise InjectedFault("billing refused to commit")
            if participant is self.orders:
                self._crash_if(fault, CoordinatorFault.CRASH_AFTER_FIRST_COMMIT)
        return {"commit": time.monotonic_ns() - started}

    async def recover(self) -> Recovery:
        """Resolve the tool's in-doubt transactions: commit where the decision was logged, else roll back."""
        recovery = Recovery()
        connection = await self.target.connect()
        try:
            await connection.execute(DECISIONS_TABLE)
            gids = [row["gid"] for row in await connection.fetch(_IN_DOUBT, f"{self.gid_prefix}{self._token}.")]
            operations = {gid: gid.removeprefix(self.gid_prefix).rpartition("-")[0] for gid in gids}
            decided = {
                row["op_id"]
                for row in await connection.fetch(
                    "SELECT op_id FROM coord_decisions WHERE op_id = ANY($1::text[])", list(set(operations.values()))
                )
            }
            for gid, op_id in operations.items():
                if op_id in decided:
                    await connection.execute(f"COMMIT PREPARED {_quoted(gid)}")
                    recovery.committed.append(gid)
                else:
                    await connection.execute(f"ROLLBACK PREPARED {_quoted(gid)}")
                    recovery.rolled_back.append(gid)
        finally:
            await connection.close()
        self.recoveries.append(recovery)
        return recovery

    async def observe(self, batch: str) -> AtomicityState:
        """What each participant and the coordinator log hold for ``batch`` now, and what is still in doubt."""
        connection = await self.target.connect()
        try:
            applied: dict[str, frozenset[str]] = {}
            for participant in self._participants():
                query = f"SELECT op_id FROM {participant.qualified_table} WHERE batch = $1"
                rows = await connection.fetch(query, batch)
                applied[participant.name] = frozenset(row["op_id"] for row in rows)
            decided = None
            if self.protocol is CommitProtocol.TWO_PHASE:
                rows = await connection.fetch("SELECT op_id FROM coord_decisions WHERE batch = $1", batch)
                decided = frozenset(row["op_id"] for row in rows)
            in_doubt = tuple(row["gid"] for row in await connection.fetch(_IN_DOUBT, self.batch_prefix(batch)))
        finally:
            await connection.close()
        return AtomicityState(applied, decided, in_doubt)
