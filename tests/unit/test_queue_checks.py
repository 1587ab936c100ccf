"""Work-queue checkers on hand-made histories: each passes on a correct queue and fails on a seeded bug."""

from __future__ import annotations

import pytest

from stampede.checkers.queue_delivery import (
    check_no_item_lost,
    check_no_item_processed_twice,
    check_overflow,
    duplicated_items,
)
from stampede.checkers.queue_priorities import check_priority_inversions, check_waits_by_priority
from stampede.checkers.queue_records import summarize_queue
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.fields import QUEUE_FULL

MS = 1_000_000


def offer(
    agent: int,
    item: int | None,
    priority: int,
    start: float,
    end: float,
    outcome: Outcome = Outcome.OK,
    error: str | None = None,
) -> Operation:
    """A producer's operation; times in ms."""
    return Operation(
        agent,
        f"user-{agent}",
        "queue",
        0,
        int(start * MS),
        int(end * MS),
        outcome,
        error=error,
        written={"role": "producer", "item": item, "priority": priority},
    )


def refusal(agent: int, priority: int, start: float, end: float) -> Operation:
    return offer(agent, None, priority, start, end, Outcome.ERROR, QUEUE_FULL)


def processing(agent: int, item: int, priority: int, claim_start: float, claimed: float, end: float) -> Operation:
    """A consumer's operation; times in ms."""
    written = {
        "role": "consumer",
        "item": item,
        "priority": priority,
        "claim_started_ns": int(claim_start * MS),
        "claimed_ns": int(claimed * MS),
    }
    return Operation(
        agent, f"user-{agent}", "queue", 0, int(claim_start * MS), int(end * MS), Outcome.OK, written=written
    )


def drained(agent: int, at: float) -> Operation:
    return Operation(
        agent,
        f"user-{agent}",
        "queue",
        0,
        int(at * MS),
        int((at + 0.1) * MS),
        Outcome.OK,
        written={"role": "consumer", "item": None},
    )


def correct_run() -> History:
    """Three items of priorities 10, 5, 1 all queued first, then claimed highest first by two consumers."""
    return History(
        [
            offer(1, 1, 1, 0, 1),
            offer(1, 2, 5, 1, 2),
            offer(1, 3, 10, 2, 3),
            processing(2, 3, 10, 4, 5, 6),
            processing(3, 2, 5, 4.5, 5.5, 7),
            processing(2, 1, 1, 6, 7, 8),
            drained(2, 9),
            drained(3, 9),
        ]
    )


# --------------------------------------------------------------------------- exactly once


def test_a_correct_run_loses_nothing_and_processes_nothing_twice() -> None:
    lost = check_no_item_lost(correct_run(), remaining={}, planned=3)
    twice = check_no_item_processed_twice(correct_run())
    assert lost.passed and not lost.inconclusive, lost.message
    assert lost.message == (
        "No item lost: all 3 accepted items were processed, by 2 consumers; 0 offers refused as full."
    )
    assert twice.passed and not twice.inconclusive, twice.message
    assert duplicated_items(correct_run()) == {}


def test_an_item_processed_by_two_consumers_is_named_with_both_agents() -> None:
    history = History([*correct_run(), processing(3, 1, 1, 6.2, 7.1, 8.3)])
    verdict = check_no_item_processed_twice(history)
    assert not verdict.passed
    assert verdict.message.startswith(
        "Items processed twice: expected each item processed once, but 1 of 3 items were processed more than once "
        "(1 extra run): item 1 by agents 2, 3."
    ), verdict.message
    assert verdict.details == [{"item": 1, "priority": 1, "times processed": 2, "agents": "2, 3"}]
    assert duplicated_items(history) == {1: [2, 3]}


def test_an_accepted_item_never_processed_is_lost_and_says_where_it_is() -> None:
    history = History([*correct_run(), offer(1, 4, 5, 3, 3.5), offer(1, 5, 5, 3.5, 4)])
    verdict = check_no_item_lost(history, remaining={4: "waiting"})
    assert not verdict.passed
    assert verdict.message.startswith(
        "Items lost: expected all 5 accepted items processed, but 2 accepted items never processed "
        "(1 gone from the queue, 1 waiting): ids 4, 5."
    ), verdict.message
    assert verdict.value == 2


def test_an_item_processed_but_never_accepted_is_reported() -> None:
    history = History([*correct_run(), processing(3, 99, 1, 8, 8.5, 9)])
    verdict = check_no_item_lost(history, remaining={})
    assert not verdict.passed
    assert "1 item processed that no enqueue accepted: ids 99" in verdict.message


def test_an_offer_refused_as_full_is_not_lost() -> None:
    history = History([*correct_run(), refusal(1, 5, 3, 3.5)])
    assert check_no_item_lost(history, remaining={}).passed


def test_a_launch_that_ended_before_the_producers_finished_is_inconclusive() -> None:
    verdict = check_no_item_lost(correct_run(), remaining={}, planned=10)
    assert verdict.inconclusive
    assert "offered only 3 of the 10 planned items" in verdict.message


def test_nothing_accepted_or_processed_is_inconclusive() -> None:
    history = History([refusal(1, 1, 0, 1)])
    assert check_no_item_lost(history, remaining={}).inconclusive
    assert check_no_item_processed_twice(history).inconclusive


def test_operations_cut_off_without_a_record_are_mentioned_with_a_loss() -> None:
    cut = Operation(2, "user-2", "queue", 0, 4 * MS, 9 * MS, Outcome.TIMEOUT, error="operation_timeout")
    history = History([offer(1, 1, 1, 0, 1), cut])
    verdict = check_no_item_lost(history, remaining={1: "in progress"})
    assert "1 in progress" in verdict.message
    assert "1 operation was cut off before saying which item they handled (operation_timeout)" in verdict.message


# --------------------------------------------------------------------------- priorities


def test_claims_in_priority_order_have_no_inversion() -> None:
    verdict = check_priority_inversions(correct_run())
    assert verdict.passed and not verdict.inconclusive, verdict.message
    assert verdict.value == 0


def test_claiming_a_low_item_while_a_high_one_waits_is_an_inversion() -> None:
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            offer(1, 2, 10, 1, 2),
            processing(2, 1, 1, 3, 4, 5),  # item 2 (priority 10) has waited since 2 ms and is claimed only at 6 ms
            processing(2, 2, 10, 6, 7, 8),
        ]
    )
    verdict = check_priority_inversions(history)
    assert not verdict.passed
    assert verdict.message.startswith(
        "Priorities not respected: 1 of 2 claims took a lower-priority item while a higher-priority one was waiting "
        "(bound 0). First: agent 2 claimed item 1 (priority 1) while item 2 (priority 10) had waited 1.0 ms."
    ), verdict.message
    assert check_priority_inversions(history, max_inversions=1).passed


def test_a_high_item_claimed_concurrently_by_another_consumer_is_no_inversion() -> None:
    """With SKIP LOCKED, a consumer skips the row another is locking: the claims overlap, nothing was passed over."""
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            offer(1, 2, 10, 1, 2),
            processing(2, 2, 10, 3, 4.5, 6),
            processing(3, 1, 1, 3.2, 4, 5),
        ]
    )
    assert check_priority_inversions(history).passed


def test_an_item_queued_while_a_claim_ran_is_no_inversion() -> None:
    """The claim may have looked before the high item committed: only items queued before it started count."""
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            offer(1, 2, 10, 2, 3.5),
            processing(2, 1, 1, 3, 4, 5),
            processing(2, 2, 10, 6, 7, 8),
        ]
    )
    assert check_priority_inversions(history).passed


def test_a_high_item_never_claimed_is_passed_over_by_every_lower_claim() -> None:
    history = History([offer(1, 1, 10, 0, 1), offer(1, 2, 1, 1, 2), processing(2, 2, 1, 3, 4, 5)])
    verdict = check_priority_inversions(history)
    assert not verdict.passed and verdict.value == 1


def test_oldest_first_over_a_backlog_is_full_of_inversions() -> None:
    offers = [offer(1, item, 10 if item % 2 else 1, item, item + 0.5) for item in range(1, 21)]
    claims = [processing(2, item, 10 if item % 2 else 1, 30 + item, 30.5 + item, 30.9 + item) for item in range(1, 21)]
    verdict = check_priority_inversions(History([*offers, *claims]))
    assert not verdict.passed
    assert verdict.value == 9  # each low item but the last passed over the next, still waiting, high one


def test_one_priority_cannot_show_inversions() -> None:
    history = History([offer(1, 1, 5, 0, 1), processing(2, 1, 5, 2, 3, 4)])
    assert check_priority_inversions(history).inconclusive
    assert check_waits_by_priority(history).inconclusive


def test_higher_priority_waiting_less_passes_with_the_waits_per_priority() -> None:
    verdict = check_waits_by_priority(correct_run())
    assert verdict.passed, verdict.message
    # waits: priority 10 from 2 ms to 5 ms, 5 from 1 to 5.5, 1 from 0 to 7
    assert verdict.measured == "p95 wait priority 10: 3.0 ms, priority 5: 4.5 ms, priority 1: 7.0 ms"
    assert [row["priority"] for row in verdict.details] == [10, 5, 1]


def test_higher_priority_waiting_longer_beyond_the_tolerance_fails() -> None:
    history = History(
        [
            offer(1, 1, 10, 0, 1),
            offer(1, 2, 1, 1, 2),
            processing(2, 2, 1, 3, 4, 5),
            processing(2, 1, 10, 100, 101, 102),
        ]
    )
    verdict = check_waits_by_priority(history, tolerance=0.05)
    assert not verdict.passed
    assert verdict.message.startswith(
        "Higher priority waited longer: priority 10 items waited 101.0 ms at p95, priority 1 items 3.0 ms: "
        "98.0 ms longer, beyond the 50.0 ms tolerance"
    ), verdict.message
    assert check_waits_by_priority(history, tolerance=0.1).passed


# --------------------------------------------------------------------------- overflow


def test_refusals_at_capacity_pass() -> None:
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            offer(2, 2, 1, 0.5, 1.5),
            refusal(1, 1, 2, 3),
            refusal(2, 1, 2, 3),
            processing(3, 1, 1, 5, 6, 7),
            processing(3, 2, 1, 7, 8, 9),
        ]
    )
    verdict = check_overflow(history, capacity=2)
    assert verdict.passed and not verdict.inconclusive, verdict.message
    assert verdict.message == (
        "Overflow refused and reported: 2 of 4 offers refused (50.0%), peak 2 waiting of capacity 2; every refusal "
        "answered queue_full, none while the queue had room."
    )


def test_more_items_waiting_than_the_capacity_fails() -> None:
    history = History([offer(agent, agent, 1, 0, 1) for agent in (1, 2, 3)] + [refusal(1, 1, 2, 3)])
    verdict = check_overflow(history, capacity=2)
    assert not verdict.passed
    assert "accepted beyond capacity: 3 items were waiting at once in a queue of capacity 2 (1 too many" in (
        verdict.message
    )


def test_items_that_may_already_have_been_claimed_do_not_count_against_the_capacity() -> None:
    """Item 1's claim started before item 3 was certainly queued: never provably 3 waiting."""
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            offer(2, 2, 1, 0, 1),
            offer(3, 3, 1, 1, 2),
            refusal(1, 1, 2.5, 3),
            processing(4, 1, 1, 1.5, 2.5, 3),
            processing(4, 2, 1, 3, 3.5, 4),
            processing(4, 3, 1, 4, 4.5, 5),
        ]
    )
    assert check_overflow(history, capacity=2).passed


def test_a_refusal_while_the_queue_had_room_fails() -> None:
    history = History([offer(1, 1, 1, 0, 1), refusal(1, 1, 2, 3), processing(2, 1, 1, 5, 6, 7)])
    verdict = check_overflow(history, capacity=5)
    assert not verdict.passed
    assert "1 offer refused as full while at most 1 item was waiting (capacity 5)" in verdict.message
    assert verdict.details == [{"agent": 1, "priority": 1, "at": "2.0 ms", "at most waiting": 1, "capacity": 5}]


def test_an_offer_failing_otherwise_is_not_a_report_of_overflow() -> None:
    history = History(
        [
            offer(1, 1, 1, 0, 1),
            refusal(1, 1, 2, 3),
            offer(2, None, 1, 0, 4, Outcome.TIMEOUT, "57014"),
        ]
    )
    verdict = check_overflow(history, capacity=1)
    assert not verdict.passed
    assert "1 offer failed without a queue_full answer (timeout (57014): 1)" in verdict.message


def test_no_refusal_means_overflow_was_not_exercised() -> None:
    verdict = check_overflow(correct_run(), capacity=100)
    assert verdict.inconclusive
    assert verdict.message.startswith("Overflow never happened: none of 3 offers was refused")


# --------------------------------------------------------------------------- summary


def test_summary_counts_and_throughput() -> None:
    history = History([*correct_run(), refusal(1, 5, 3, 3.5), processing(3, 1, 1, 6.2, 7.1, 8.3)])
    summary = summarize_queue(history)
    assert (summary.offered, summary.accepted, summary.refused, summary.failed_offers) == (4, 3, 1, 0)
    assert (summary.processings, summary.items_processed, summary.items_processed_twice) == (4, 3, 1)
    assert summary.seconds == pytest.approx(9.1e-3)
    assert summary.throughput == pytest.approx(4 / 9.1e-3)
    assert [(w.priority, w.accepted, w.processed) for w in summary.waits] == [(10, 1, 1), (5, 1, 1), (1, 1, 1)]
