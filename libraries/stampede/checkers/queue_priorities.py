"""Work-queue priorities: no claim passes over a waiting item of higher priority; higher priorities wait less.

See :mod:`stampede.checkers.queue_records` for how the history is read and
what its times prove.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..history import History
from ..units import format_duration
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .queue_records import Processing, QueueRecords, priority_waits, wait_text


@dataclass(frozen=True)
class _Waiting:
    """The items of one priority by when they were certainly queued, with the latest first claim so far."""

    queued_ns: list[int]
    latest_claim: list[tuple[float, int]]  # running max of (first claim start, item) over queued_ns order

    @classmethod
    def of(cls, items: list[tuple[int, float, int]]) -> _Waiting:
        items.sort()
        latest: list[tuple[float, int]] = []
        for _, claim, item in items:
            latest.append(max(latest[-1], (claim, item)) if latest else (claim, item))
        return cls([queued for queued, _, _ in items], latest)

    def passed_over(self, claim: Processing) -> int | None:
        """An item queued before ``claim`` started and not claimed until after it ended, if there is one."""
        queued_before = bisect.bisect_left(self.queued_ns, claim.claim_started_ns)
        if not queued_before:
            return None
        first_claim, item = self.latest_claim[queued_before - 1]
        return item if first_claim > claim.claimed_ns else None


def check_priority_inversions(history: History, max_inversions: int = 0) -> Verdict:
    """Count claims that took an item while one of higher priority was certainly waiting.

    An inversion: a consumer claimed item L while an item H of higher priority
    had been in the queue since before that claim started (H's enqueue had
    ended) and no claim of H started until that claim was over. A queue that
    claims by priority never does that, however many consumers race.
    """
    records = QueueRecords.of(history)
    by_priority: dict[int, list[tuple[int, float, int]]] = {}
    for item, offer in records.accepted.items():
        by_priority.setdefault(offer.priority, []).append((offer.end_ns, records.first_claim_started(item), item))
    waiting = {priority: _Waiting.of(items) for priority, items in by_priority.items()}
    priorities = sorted(waiting)
    expected = f"at most {plural(max_inversions, 'inversion')}"
    if len(priorities) < 2 or not records.processings:
        return Verdict(
            "priority inversions",
            True,
            expected,
            "not measurable",
            message=(
                f"Nothing to check for priority inversions: {plural(len(records.processings), 'item')} "
                f"processed, {plural(len(priorities), 'priority', 'priorities')} among accepted items; it takes "
                "at least two priorities and processed items."
            ),
            inconclusive=True,
            value=0,
        )
    inversions: list[tuple[Processing, int]] = []
    for claim in records.processings:
        own = records.priority_of(claim.item, claim.priority)
        for priority in reversed(priorities):
            if priority <= own:
                break
            passed_over = waiting[priority].passed_over(claim)
            if passed_over is not None:
                inversions.append((claim, passed_over))
                break
    measured = f"{plural(len(inversions), 'inversion')} in {plural(len(records.processings), 'claim')}"
    if len(inversions) <= max_inversions:
        message = (
            f"Priorities respected: {plural(len(inversions), 'priority inversion')} in "
            f"{plural(len(records.processings), 'claim')} (bound {max_inversions}); no claim took an item "
            "while one of higher priority was waiting."
            if not inversions
            else f"Priorities respected within the bound: {measured} (bound {max_inversions})."
        )
        return Verdict("priority inversions", True, expected, measured, message=message, value=len(inversions))
    inversions.sort(key=lambda pair: pair[0].claim_started_ns)
    details = [_inversion_row(records, claim, other) for claim, other in inversions]
    examples = "; ".join(
        f"agent {row['agent']} claimed item {row['claimed item']} (priority {row['its priority']}) while item "
        f"{row['waiting item']} (priority {row['waiting priority']}) had waited {row['waiting for']}"
        for row in details[:3]
    )
    message = (
        f"Priorities not respected: {len(inversions)} of {len(records.processings)} claims took a lower-priority "
        f"item while a higher-priority one was waiting (bound {max_inversions}). First: {examples}"
        f"{rows_note(len(details))}."
    )
    miss = plural(len(inversions) - max_inversions, "inversion")
    return Verdict(
        "priority inversions", False, expected, measured, miss, message, capped(details), value=len(inversions)
    )


def _inversion_row(records: QueueRecords, claim: Processing, other: int) -> dict[str, object]:
    waited = claim.claim_started_ns - records.accepted[other].end_ns
    return {
        "agent": claim.agent,
        "claimed item": claim.item,
        "its priority": records.priority_of(claim.item, claim.priority),
        "waiting item": other,
        "waiting priority": records.accepted[other].priority,
        "waiting for": format_duration(waited / 1e9),
    }


def check_waits_by_priority(history: History, tolerance: float = 0.05) -> Verdict:
    """Fail when a higher priority's p95 wait exceeds a lower priority's by more than ``tolerance`` seconds.

    A wait runs from the start of an item's enqueue until a consumer had it.
    Waits closer than ``tolerance`` are a tie: with no backlog every item waits
    only for the next poll, whatever its priority.
    """
    records = QueueRecords.of(history)
    waits = [w for w in priority_waits(records) if w.processed]
    expected = f"p95 wait no longer for a higher priority (tolerance {format_duration(tolerance)})"
    details = [
        {
            "priority": w.priority,
            "accepted": w.accepted,
            "processed": w.processed,
            "wait p50": format_duration(w.waits.percentiles[50.0]),
            "wait p95": format_duration(w.waits.percentiles[95.0]),
            "wait max": format_duration(w.waits.max),
        }
        for w in waits
    ]
    if len(waits) < 2:
        return Verdict(
            "wait by priority",
            True,
            expected,
            "not measurable",
            message=(
                f"Nothing to compare: processed items have "
                f"{plural(len(waits), 'priority', 'priorities')}; it takes at least two."
            ),
            details=details,
            inconclusive=True,
        )
    worse = [
        (high, low)
        for i, high in enumerate(waits)
        for low in waits[i + 1 :]
        if high.waits.percentiles[95.0] > low.waits.percentiles[95.0] + tolerance
    ]
    measured = f"p95 wait {wait_text(waits)}"
    if not worse:
        message = (
            f"Higher priorities waited no longer than lower ones: {measured} (tolerance {format_duration(tolerance)})."
        )
        return Verdict("wait by priority", True, expected, measured, message=message, details=details)
    high, low = max(worse, key=lambda pair: pair[0].waits.percentiles[95.0] - pair[1].waits.percentiles[95.0])
    gap = high.waits.percentiles[95.0] - low.waits.percentiles[95.0]
    message = (
        f"Higher priority waited longer: priority {high.priority} items waited "
        f"{format_duration(high.waits.percentiles[95.0])} at p95, priority {low.priority} items "
        f"{format_duration(low.waits.percentiles[95.0])}: {format_duration(gap)} longer, beyond the "
        f"{format_duration(tolerance)} tolerance ({measured})."
    )
    return Verdict("wait by priority", False, expected, measured, format_duration(gap - tolerance), message, details)
