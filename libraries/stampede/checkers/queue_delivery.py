"""Work-queue delivery: no item lost, none processed twice, overflow refused and reported.

See :mod:`stampede.checkers.queue_records` for how the history is read and
what its times prove.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping

from ..history import History
from ..records.fields import QUEUE_FULL
from ..units import format_duration
from ..verdicts import Verdict
from ._report import agent_list, capped, label, percent, plural, rows_note
from .queue_records import QueueRecords, item_ids, unattributed_note

_EXAMPLES = 5


def check_no_item_lost(history: History, remaining: Mapping[int, str], planned: int | None = None) -> Verdict:
    """Every item the queue accepted was processed, and nothing was processed that it never accepted.

    ``remaining`` is what the queue still holds now (item → ``waiting`` or
    ``in progress``), so a missing item can be told apart from one that vanished.
    ``planned`` is how many items the producers were to offer: fewer offers
    mean the launch ended early and the verdict cannot be complete.
    """
    records = QueueRecords.of(history)
    accepted, processed = records.accepted, set(records.runs)
    missing = sorted(set(accepted) - processed)
    phantoms = sorted(processed - set(accepted))
    expected = f"all {plural(len(accepted), 'accepted item')} processed"
    measured = f"{len(accepted) - len(missing)} of {len(accepted)} processed"
    short = planned is not None and len(records.offers) < planned
    shortfall = (
        f" The producers offered only {len(records.offers)} of the {planned} planned items: the launch ended "
        "before they finished (launch with a longer duration)."
        if short
        else ""
    )
    if missing or phantoms:
        states: dict[str, int] = {}
        for item in missing:
            state = remaining.get(item, "gone from the queue")
            states[state] = states.get(state, 0) + 1
        parts = []
        if missing:
            where = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
            parts.append(f"{plural(len(missing), 'accepted item')} never processed ({where}): ids {item_ids(missing)}")
        if phantoms:
            parts.append(
                f"{plural(len(phantoms), 'item')} processed that no enqueue accepted: ids {item_ids(phantoms)}"
            )
        details = [
            {
                "item": item,
                "priority": accepted[item].priority,
                "offered by agent": accepted[item].agent,
                "now": remaining.get(item, "gone from the queue"),
            }
            for item in missing
        ] + [
            {
                "item": item,
                "priority": records.runs[item][0].priority,
                "offered by agent": "none",
                "now": f"processed by agents {agent_list(p.agent for p in records.runs[item])}",
            }
            for item in phantoms
        ]
        message = (
            f"Items lost: expected {expected}, but "
            + "; and ".join(parts)
            + f"{rows_note(len(details))}.{unattributed_note(records)}{shortfall}"
        )
        miss = plural(len(missing) + len(phantoms), "item")
        return Verdict(
            "no item lost",
            False,
            expected,
            measured,
            miss,
            message,
            capped(details),
            value=len(missing) + len(phantoms),
        )
    if short or not accepted:
        reason = (
            shortfall.strip()
            or f"The queue accepted no item ({plural(len(records.offers), 'offer')}), so "
            "there is nothing whose delivery could be checked."
        )
        return Verdict(
            "no item lost",
            True,
            expected,
            measured,
            message=f"Nothing certain about lost items: {reason}",
            inconclusive=True,
            value=0,
        )
    consumers = {p.agent for p in records.processings}
    message = (
        f"No item lost: all {plural(len(accepted), 'accepted item')} were processed, by "
        f"{plural(len(consumers), 'consumer')}; {plural(len(records.refused), 'offer')} refused as full."
    )
    return Verdict("no item lost", True, expected, measured, message=message, value=0)


def check_no_item_processed_twice(history: History) -> Verdict:
    """No item was processed by more than one claim: each duplicate is listed with the agents that processed it."""
    records = QueueRecords.of(history)
    runs = records.runs
    expected = "every item processed once"
    if not runs:
        return Verdict(
            "no item processed twice",
            True,
            expected,
            "0 items processed",
            message="Nothing to check for double processing: no item was processed.",
            inconclusive=True,
            value=0,
        )
    twice = sorted(
        (item for item, item_runs in runs.items() if len(item_runs) > 1), key=lambda item: (-len(runs[item]), item)
    )
    extra = sum(len(runs[item]) - 1 for item in twice)
    measured = f"{plural(len(twice), 'item')} processed more than once"
    if not twice:
        message = (
            f"No item processed twice: {plural(len(runs), 'item')} processed, each exactly once, "
            f"by {plural(len({p.agent for p in records.processings}), 'consumer')}."
        )
        return Verdict("no item processed twice", True, expected, measured, message=message, value=0)
    details = [
        {
            "item": item,
            "priority": runs[item][0].priority,
            "times processed": len(runs[item]),
            "agents": agent_list(p.agent for p in runs[item]),
        }
        for item in twice
    ]
    examples = "; ".join(
        f"item {item} by agents {agent_list(p.agent for p in runs[item])}" for item in sorted(twice)[:_EXAMPLES]
    )
    message = (
        f"Items processed twice: expected each item processed once, but {len(twice)} of {len(runs)} items were "
        f"processed more than once ({plural(extra, 'extra run')}): {examples}"
        f"{' …' if len(twice) > _EXAMPLES else ''}{rows_note(len(details))}."
    )
    return Verdict(
        "no item processed twice",
        False,
        expected,
        measured,
        f"{extra} extra runs",
        message,
        capped(details),
        value=len(twice),
    )


def duplicated_items(history: History) -> dict[int, list[int]]:
    """Items processed more than once, each with the agents that processed it."""
    return {item: [p.agent for p in runs] for item, runs in QueueRecords.of(history).runs.items() if len(runs) > 1}


def _provable_peak(records: QueueRecords) -> tuple[int, int]:
    """The most items certainly waiting at once, and when (ns): queued (enqueue ended), first claim not started."""
    events: list[tuple[float, int]] = []
    for item, offer in records.accepted.items():
        claimed = records.first_claim_started(item)
        if offer.end_ns < claimed:
            events += [(offer.end_ns, 1), (claimed, -1)]
    events.sort()  # at the same instant, a claim (-1) counts before an arrival (+1)
    peak, at, depth = 0, 0, 0
    for when, change in events:
        depth += change
        if depth > peak:
            peak, at = depth, int(when)
    return peak, at


class _PossiblyWaiting:
    """How many items may have been waiting at an instant: enqueue started, no claim of them ended yet."""

    def __init__(self, records: QueueRecords) -> None:
        self.starts = sorted(offer.start_ns for offer in records.accepted.values())
        self.gone = sorted(
            min(p.claimed_ns for p in runs) for item, runs in records.runs.items() if item in records.accepted
        )

    def at(self, instant: int) -> int:
        return bisect.bisect_right(self.starts, instant) - bisect.bisect_right(self.gone, instant)

    def most_during(self, start_ns: int, end_ns: int) -> int:
        """The most at any instant of [start_ns, end_ns]: the count only rises when an enqueue starts."""
        rises = self.starts[bisect.bisect_right(self.starts, start_ns) : bisect.bisect_right(self.starts, end_ns)]
        return max(self.at(instant) for instant in [start_ns, *rises])


def check_overflow(history: History, capacity: int) -> Verdict:
    """Offers beyond ``capacity`` were refused as ``queue_full``, counted, and never accepted.

    Fails when more than ``capacity`` items were certainly waiting at once, when
    an offer failed some other way (its item may or may not be queued), or when
    an offer was refused while the queue certainly had room. Inconclusive when
    no offer was refused: the overflow path was never exercised.
    """
    records = QueueRecords.of(history)
    offers, refused, failed = records.offers, records.refused, records.failed_offers
    peak, peak_at = _provable_peak(records)
    expected = f"at most {capacity} waiting; the rest refused as {QUEUE_FULL}"
    measured = (
        f"{len(refused)} of {plural(len(offers), 'offer')} refused ({percent(len(refused), len(offers))}), "
        f"peak {peak} waiting"
    )
    problems: list[str] = []
    details: list[dict[str, object]] = []
    if peak > capacity:
        problems.append(
            f"accepted beyond capacity: {peak} items were waiting at once in a queue of capacity {capacity} "
            f"({peak - capacity} too many, {format_duration((peak_at - records.first_ns) / 1e9)} into the launch)"
        )
    if failed:
        kinds: dict[str, int] = {}
        for offer in failed:
            kind = f"{label(offer.outcome)} ({offer.error})" if offer.error else label(offer.outcome)
            kinds[kind] = kinds.get(kind, 0) + 1
        problems.append(
            f"{plural(len(failed), 'offer')} failed without a {QUEUE_FULL} answer "
            f"({', '.join(f'{kind}: {count}' for kind, count in sorted(kinds.items()))}): whether those items are "
            "queued is unknown"
        )
    possibly_waiting = _PossiblyWaiting(records)
    rooms: list[int] = []
    for offer in refused:
        room = possibly_waiting.most_during(offer.start_ns, offer.end_ns)
        if room < capacity:
            rooms.append(room)
            details.append(
                {
                    "agent": offer.agent,
                    "priority": offer.priority,
                    "at": format_duration((offer.start_ns - records.first_ns) / 1e9),
                    "at most waiting": room,
                    "capacity": capacity,
                }
            )
    if details:
        least = min(rooms)
        problems.append(
            f"{plural(len(details), 'offer')} refused as full while at most {plural(least, 'item')} "
            f"{'was' if least == 1 else 'were'} waiting (capacity {capacity})"
        )
    if problems:
        message = f"Overflow not handled: {'; '.join(problems)}{rows_note(len(details))}. ({measured}.)"
        return Verdict(
            "overflow reported",
            False,
            expected,
            measured,
            "; ".join(problems),
            message,
            capped(details),
            value=len(refused),
        )
    if not refused:
        message = (
            f"Overflow never happened: none of {plural(len(offers), 'offer')} was refused and at most "
            f"{peak} items were certainly waiting at once (capacity {capacity}). Make the producers outrun "
            "the consumers, or lower the capacity, to exercise it."
        )
        return Verdict("overflow reported", True, expected, measured, message=message, inconclusive=True, value=0)
    message = (
        f"Overflow refused and reported: {measured} of capacity {capacity}; every refusal answered "
        f"{QUEUE_FULL}, none while the queue had room."
    )
    return Verdict("overflow reported", True, expected, measured, message=message, value=len(refused))
