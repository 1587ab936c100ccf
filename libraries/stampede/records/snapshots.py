"""What a workload's data looked like after a launch, as the checkers that judge it need it.

A workload takes the snapshot (it knows its tables and keys); a checker reads it
with the history. Neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

OperationKey = tuple[int, int]  # (agent, iteration): unique within one launch


@dataclass(frozen=True)
class LedgerSnapshot:
    """What the data says after a launch: the balance before and now, and the ledger's rows by operation."""

    initial: int
    final: int
    entries: Mapping[OperationKey, int]
    sign: int = -1  # -1: each ledger amount was taken from the balance; +1: added to it
    unit: str = "credits"


@dataclass(frozen=True)
class AtomicityState:
    """What the participants and the coordinator hold for one launch, as a reader sees it now."""

    applied: dict[str, frozenset[str]]  # participant -> ids of operations committed there
    decided: frozenset[str] | None  # ids with a logged commit decision; None when the protocol logs none
    in_doubt: tuple[str, ...]  # gids still in pg_prepared_xacts


@dataclass(frozen=True)
class SagaState:
    """What the sagas of one launch left in PostgreSQL and Redis."""

    reserved: frozenset[str]  # saga ids whose credits are still reserved
    released: frozenset[str]  # saga ids whose reservation was compensated
    booked: frozenset[str]  # saga ids in the Redis bookings hash
    ticketed: frozenset[str]  # saga ids with a ticket
    initial_credits: int
    final_credits: int


@dataclass(frozen=True)
class StoredEvent:
    """One committed event: its global sequence number, its stream and its signed change to the stream's total."""

    seq: int
    stream: str
    change: int


@dataclass(frozen=True)
class ProjectionSnapshot:
    """What the event store and its projection held when the check looked."""

    events: Sequence[StoredEvent]
    applied: Sequence[int]
    """The sequence number of every application of an event to the projection, repeats kept."""
    totals: Mapping[str, int]
    """The projected total per stream."""
    applied_at_ns: Mapping[int, int] = field(default_factory=dict)
    """When (monotonic ns) the application of each event committed."""
    caught_up: bool = True
    """Whether the projector had stopped, believing it had applied everything."""
    worker: str = "caught up and stopped"
    """The projection worker's state in words, for the message."""


@dataclass(frozen=True, order=True)
class LeakedConnection:
    """The operation (agent and iteration) that took a connection and did not give it back."""

    agent: int
    iteration: int


@dataclass(frozen=True)
class ConnectionCensus:
    """What a tool's connections looked like after a run, as the leak checks need it."""

    pool_size: int
    checked_out: int
    """The pool's own count of connections not returned once every agent had finished."""
    baseline_backends: int
    """The run's backends in pg_stat_activity before the pool opened."""
    backends_after: int
    """The run's backends in pg_stat_activity after the tool closed its pool."""
    unreleased: tuple[LeakedConnection, ...] = ()
    """Who holds the connections counted in ``checked_out``, as far as the tool tracked it."""
    unclosed: tuple[LeakedConnection, ...] = ()
    """Connections the tool opened beside the pool and did not close."""


@dataclass(frozen=True)
class ResourceState:
    """What a fenced resource holds now."""

    value: int
    writes: int
    highest_fence: int | None
