"""A work-queue launch's history read as offers and processings, and summarized in numbers.

Producers' operations are offers (item id, priority, accepted or refused
``queue_full``); consumers' are processings (item id, when the claim started and
when the consumer had the item); see :mod:`stampede.workloads.work_queue`.
Times are the harness's monotonic clock, so they compare across agents.

What a time proves: an item is certainly in the queue once its enqueue
operation has ended, and certainly still waiting until the first claim that
took it has started; it may be waiting from its enqueue's start until a claim
of it ended. Checkers only call something a violation when the times prove it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ..history import History, Operation
from ..metrics import LatencySummary
from ..outcomes import Outcome
from ..records.fields import QUEUE_FULL
from ..units import format_duration
from ._report import label, plural

NEVER = math.inf


@dataclass(frozen=True)
class Offer:
    """One producer operation: an item offered to the queue."""

    agent: int
    priority: int
    item: int | None  # the id the queue gave it; None when it was not accepted
    outcome: Outcome
    error: str | None
    start_ns: int
    end_ns: int

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.OK and self.item is not None

    @property
    def refused(self) -> bool:
        return self.error == QUEUE_FULL


@dataclass(frozen=True)
class Processing:
    """One consumer operation that claimed and processed an item."""

    agent: int
    item: int
    priority: int
    claim_started_ns: int
    claimed_ns: int
    end_ns: int


@dataclass
class QueueRecords:
    """A work-queue launch's history, split into offers and processings."""

    offers: list[Offer] = field(default_factory=list)
    processings: list[Processing] = field(default_factory=list)
    unattributed: list[Operation] = field(default_factory=list)  # failed without saying what they did
    first_ns: int = 0
    last_ns: int = 0

    @classmethod
    def of(cls, history: History) -> QueueRecords:
        records = cls()
        for op in history:
            written = op.written if isinstance(op.written, Mapping) else {}
            role = written.get("role")
            if role == "producer":
                records.offers.append(
                    Offer(
                        op.agent, written["priority"], written.get("item"), op.outcome, op.error, op.start_ns, op.end_ns
                    )
                )
            elif role == "consumer" and written.get("item") is not None and op.ok:
                records.processings.append(
                    Processing(
                        op.agent,
                        written["item"],
                        written["priority"],
                        written["claim_started_ns"],
                        written["claimed_ns"],
                        op.end_ns,
                    )
                )
            elif role is None and not op.ok:
                records.unattributed.append(op)
        if len(history):
            records.first_ns = min(op.start_ns for op in history)
            records.last_ns = max(op.end_ns for op in history)
        return records

    @cached_property
    def accepted(self) -> dict[int, Offer]:
        return {offer.item: offer for offer in self.offers if offer.accepted and offer.item is not None}

    @cached_property
    def refused(self) -> list[Offer]:
        return [offer for offer in self.offers if offer.refused]

    @cached_property
    def failed_offers(self) -> list[Offer]:
        """Offers neither accepted nor refused as full: whether their item is in the queue is unknown."""
        return [offer for offer in self.offers if not offer.accepted and not offer.refused]

    @cached_property
    def runs(self) -> dict[int, list[Processing]]:
        """Each processed item's processings, in the order their claims started."""
        runs: dict[int, list[Processing]] = {}
        for processing in sorted(self.processings, key=lambda p: p.claim_started_ns):
            runs.setdefault(processing.item, []).append(processing)
        return runs

    def first_claim_started(self, item: int) -> float:
        runs = self.runs.get(item)
        return runs[0].claim_started_ns if runs else NEVER

    def priority_of(self, item: int, unknown: int) -> int:
        offer = self.accepted.get(item)
        return offer.priority if offer is not None else unknown


@dataclass(frozen=True)
class PriorityWaits:
    """How long the items of one priority waited: from the start of their enqueue until a consumer had them."""

    priority: int
    accepted: int
    processed: int
    waits: LatencySummary


@dataclass(frozen=True)
class QueueSummary:
    """What a work-queue launch did, in numbers."""

    offered: int
    accepted: int
    refused: int
    failed_offers: int
    processings: int
    items_processed: int
    items_processed_twice: int
    seconds: float
    waits: list[PriorityWaits]

    @property
    def throughput(self) -> float:
        """Items processed per second, over the launch from its first operation to its last."""
        return self.processings / self.seconds if self.seconds else 0.0


def priority_waits(records: QueueRecords) -> list[PriorityWaits]:
    """Wait times per priority, highest priority first."""
    waits: dict[int, list[int]] = {}
    accepted: dict[int, int] = {}
    for item, offer in records.accepted.items():
        accepted[offer.priority] = accepted.get(offer.priority, 0) + 1
        runs = records.runs.get(item)
        if runs:
            waits.setdefault(offer.priority, []).append(runs[0].claimed_ns - offer.start_ns)
    return [
        PriorityWaits(priority, accepted[priority], len(found := waits.get(priority, [])), LatencySummary.of(found))
        for priority in sorted(accepted, reverse=True)
    ]


def summarize_queue(history: History) -> QueueSummary:
    records = QueueRecords.of(history)
    return QueueSummary(
        offered=len(records.offers),
        accepted=len(records.accepted),
        refused=len(records.refused),
        failed_offers=len(records.failed_offers),
        processings=len(records.processings),
        items_processed=len(records.runs),
        items_processed_twice=sum(1 for runs in records.runs.values() if len(runs) > 1),
        seconds=(records.last_ns - records.first_ns) / 1e9,
        waits=priority_waits(records),
    )


def wait_text(waits: list[PriorityWaits], pct: float = 95.0) -> str:
    """``priority 10: 12.0 ms, priority 1: 250.0 ms``: each priority's wait at ``pct``."""
    return ", ".join(
        f"priority {w.priority}: {format_duration(w.waits.percentiles[pct])}" for w in waits if w.processed
    )


def item_ids(items: list[int], limit: int = 10) -> str:
    """Sorted item ids, ``3, 7, 9``, shortened to ``limit`` ids and a count of the rest."""
    shown = ", ".join(str(item) for item in items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def unattributed_note(records: QueueRecords) -> str:
    """A sentence on operations cut off before recording which item they handled, or nothing."""
    if not records.unattributed:
        return ""
    kinds = ", ".join(sorted({op.error or label(op.outcome) for op in records.unattributed}))
    count = len(records.unattributed)
    return (
        f" {plural(count, 'operation')} {'was' if count == 1 else 'were'} cut off before saying which item "
        f"they handled ({kinds})."
    )
