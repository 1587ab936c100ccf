"""Deadlock checkers on hand-made histories: each passes on a clean one and fails, in numbers, on a broken one."""

from __future__ import annotations

import pytest

from stampede.checkers.deadlocks import (
    check_deadlock_resolution,
    check_deadlocks_detected,
    check_forward_progress,
    check_no_deadlocks,
    check_transfers_conserved,
    count_deadlocks,
    resolution_waits_ns,
)
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.fields import DEADLOCK_WAITS

MS = 1_000_000


def transfer(
    agent: int = 1,
    outcome: Outcome = Outcome.OK,
    *,
    deadlocks: int = 0,
    waits_ms: tuple[float, ...] | None = None,
    source: int = 1,
    destination: int = 2,
    amount: int = 1,
    error: str | None = None,
    exhausted: bool = False,
    iteration: int = 0,
) -> Operation:
    """A transfer that met ``deadlocks`` retried deadlocks (plus a final one when ``outcome`` is a deadlock)."""
    causes = (Outcome.DEADLOCK,) * deadlocks
    met = deadlocks + (outcome is Outcome.DEADLOCK)
    waits = [int(ms * MS) for ms in (waits_ms if waits_ms is not None else (101.0,) * met)]
    return Operation(
        agent,
        f"user-{agent}",
        "transfer",
        iteration,
        0,
        500 * MS,
        outcome,
        error=error if error is not None else ("40P01" if outcome is Outcome.DEADLOCK else None),
        retries=len(causes),
        retry_causes=causes,
        exhausted=exhausted,
        read={DEADLOCK_WAITS: waits} if waits else None,
        written={"from": source, "to": destination, "amount": amount} if outcome is Outcome.OK else None,
    )


def clean_history() -> History:
    """Four partners' transfers: three deadlocks, all retried, everything committed."""
    return History(
        [
            transfer(1, deadlocks=1, waits_ms=(102.0,)),
            transfer(2, source=2, destination=1),
            transfer(3, deadlocks=2, waits_ms=(101.0, 140.0), source=3, destination=4),
            transfer(4, source=4, destination=3),
        ]
    )


# --------------------------------------------------------------------------- counting


def test_deadlocks_are_counted_from_retried_and_final_attempts() -> None:
    history = History([transfer(1, deadlocks=2), transfer(2, Outcome.DEADLOCK, deadlocks=1), transfer(3)])
    assert count_deadlocks(history) == 4
    assert resolution_waits_ns(history) == [101 * MS] * 4


# --------------------------------------------------------------------------- detection


def test_detection_passes_when_every_failed_attempt_was_a_deadlock() -> None:
    verdict = check_deadlocks_detected(clean_history())
    assert verdict.passed and not verdict.inconclusive, verdict.message
    assert verdict.value == 3
    assert verdict.message.startswith("Deadlocks: 3 detected (SQLSTATE 40P01) in 4 transfers")


def test_detection_fails_on_deadlocks_that_ended_as_timeouts_or_lock_timeouts() -> None:
    lock_timeouts = transfer(5, iteration=1)
    lock_timeouts.retry_causes = (Outcome.CONFLICT, Outcome.CONFLICT)
    lock_timeouts.retries = 2
    history = History(
        [*clean_history(), transfer(6, Outcome.TIMEOUT, error="operation_timeout", waits_ms=()), lock_timeouts]
    )
    verdict = check_deadlocks_detected(history)
    assert not verdict.passed
    assert "3 detected (SQLSTATE 40P01) in 6 transfers, but 3 attempts neither committed" in verdict.message
    assert "2 ended in lock not available (55P03), retried" in verdict.message
    assert "1 ended in timeout (operation_timeout)" in verdict.message
    assert verdict.miss == "3 attempts ended otherwise"
    assert [row["agent"] for row in verdict.details] == [6, 5, 5]


def test_detection_without_any_deadlock_is_inconclusive() -> None:
    verdict = check_deadlocks_detected(History([transfer(1), transfer(2)]))
    assert verdict.inconclusive
    assert "No deadlock occurred in 2 transfers" in verdict.message


def test_detection_fails_not_inconclusive_when_deadlocks_all_became_errors() -> None:
    verdict = check_deadlocks_detected(History([transfer(1, Outcome.ERROR, error="XX000", waits_ms=())]))
    assert not verdict.passed and not verdict.inconclusive
    assert "0 detected" in verdict.message and "1 ended in error (XX000)" in verdict.message


def test_no_deadlocks_passes_on_ordered_locking_and_fails_with_counts() -> None:
    assert check_no_deadlocks(History([transfer(1), transfer(2)])).passed
    verdict = check_no_deadlocks(clean_history())
    assert not verdict.passed
    assert "expected 0, found 3 (SQLSTATE 40P01) in 4 transfers, met by 2 transfers" in verdict.message
    assert check_no_deadlocks(History()).inconclusive


# --------------------------------------------------------------------------- forward progress


def test_forward_progress_passes_when_every_victim_retried_and_completed() -> None:
    verdict = check_forward_progress(clean_history())
    assert verdict.passed, verdict.message
    assert verdict.message == (
        "Forward progress: all 4 transfers completed; 2 deadlock victims met 3 deadlocks, "
        "retried (3 retries) and completed."
    )


def test_forward_progress_fails_on_victims_not_retried_and_victims_out_of_retries() -> None:
    history = History(
        [
            *clean_history(),
            transfer(5, Outcome.DEADLOCK),
            transfer(6, Outcome.DEADLOCK),
            transfer(7, Outcome.DEADLOCK, deadlocks=3, exhausted=True),
        ]
    )
    verdict = check_forward_progress(history)
    assert not verdict.passed
    assert verdict.message.startswith("Forward progress failed: 4 of 7 transfers completed, 3 did not (42.9%)")
    assert "2 ended in a deadlock (40P01) and were not retried" in verdict.message
    assert "1 gave up after 3 retries, still failing with deadlock (40P01)" in verdict.message
    assert verdict.miss == "3 transfers not completed"


def test_forward_progress_of_nothing_is_inconclusive() -> None:
    assert check_forward_progress(History()).inconclusive


# --------------------------------------------------------------------------- resolution


def test_resolution_within_the_bound_reports_percentiles_and_the_deadlock_timeout() -> None:
    verdict = check_deadlock_resolution(clean_history(), 0.5, deadlock_timeout="100ms")
    assert verdict.passed, verdict.message
    assert verdict.message == (
        "Deadlock resolution: p95 140.0 ms ≤ 500.0 ms (p50 102.0 ms, max 140.0 ms over 3 deadlocks; "
        "0 of 3 took longer than 500.0 ms; server deadlock_timeout 100ms)."
    )
    assert verdict.value == pytest.approx(0.140)


def test_resolution_over_the_bound_fails_and_blames_a_long_deadlock_timeout() -> None:
    history = History([transfer(agent, deadlocks=1, waits_ms=(1003.0 + agent,)) for agent in range(1, 21)])
    verdict = check_deadlock_resolution(history, 0.5, deadlock_timeout="1s", timeout_source="session")
    assert not verdict.passed
    assert verdict.message.startswith("Deadlocks resolved too slowly: p95 1.02 s > 500.0 ms, 522.0 ms over")
    assert "20 of 20 took longer than 500.0 ms; session deadlock_timeout 1s" in verdict.message
    assert "once a lock wait has lasted deadlock_timeout (1s)" in verdict.message
    assert verdict.miss == "522.0 ms over"  # nearest rank: the 19th of 20 waits, 1022 ms


def test_resolution_judges_the_percentile_asked_for() -> None:
    waits = (100.0,) * 19 + (900.0,)
    history = History([transfer(1, deadlocks=20, waits_ms=waits)])
    at_p95 = check_deadlock_resolution(history, 0.5, deadlock_timeout="100ms")
    assert at_p95.passed and "1 of 20 took longer than 500.0 ms" in at_p95.message
    slowest = check_deadlock_resolution(history, 0.5, deadlock_timeout="100ms", pct=100)
    assert not slowest.passed and "p100 900.0 ms > 500.0 ms" in slowest.message
    assert "once a lock wait" not in slowest.message, "100ms is below the bound: not the deadlock_timeout's fault"


def test_resolution_without_deadlocks_or_without_measurements_is_inconclusive() -> None:
    assert check_deadlock_resolution(History([transfer(1)]), 0.5).inconclusive
    unmeasured = check_deadlock_resolution(History([transfer(1, deadlocks=2, waits_ms=())]), 0.5)
    assert unmeasured.inconclusive
    assert "2 deadlocks occurred but none recorded how long" in unmeasured.message


# --------------------------------------------------------------------------- conservation


def test_conservation_passes_when_each_account_holds_what_the_transfers_left() -> None:
    history = History([transfer(1, amount=5), transfer(2, source=2, destination=1, amount=2)])
    verdict = check_transfers_conserved({1: 100, 2: 100}, {1: 97, 2: 103}, history)
    assert verdict.passed, verdict.message
    assert "2 accounts hold 200 credits in total" in verdict.message


def test_conservation_ignores_transfers_that_did_not_commit() -> None:
    history = History([transfer(1, amount=5), transfer(2, Outcome.DEADLOCK, source=2, destination=1)])
    assert check_transfers_conserved({1: 100, 2: 100}, {1: 95, 2: 105}, history).passed


def test_conservation_fails_when_credits_appear() -> None:
    verdict = check_transfers_conserved({1: 100, 2: 100}, {1: 99, 2: 106}, History([transfer(1)]))
    assert not verdict.passed
    assert "held 200 credits at the start and hold 205 now: 5 credits appeared" in verdict.message
    assert verdict.miss == "5 credits too many"


def test_conservation_fails_when_the_total_holds_but_an_account_is_wrong() -> None:
    # The transfer says it moved 5 from 1 to 2, but the balances show nothing moved.
    verdict = check_transfers_conserved({1: 100, 2: 100}, {1: 100, 2: 100}, History([transfer(1, amount=5)]))
    assert not verdict.passed
    assert verdict.message.startswith("Credits conserved in total (200), but 2 of 2 accounts do not hold")
    assert [(row["account"], row["expected"], row["found"]) for row in verdict.details] == [(1, 95, 100), (2, 105, 100)]
