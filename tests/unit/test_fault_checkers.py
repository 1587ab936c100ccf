"""The fault checkers on hand-made histories: each passes on a clean one and fails on a broken one."""

from __future__ import annotations

from stampede.checkers.fault_effects import check_added_latency, check_stall, longest_gap_without_success
from stampede.checkers.ledger import check_ledger, outcome_unknown, unknown_summary
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.snapshots import LedgerSnapshot

MS = 1_000_000


def op(
    agent: int,
    iteration: int,
    outcome: Outcome = Outcome.OK,
    *,
    error: str | None = None,
    start_ms: int = 0,
    end_ms: int = 1,
) -> Operation:
    return Operation(agent, f"user-{agent}", "deduct", iteration, start_ms * MS, end_ms * MS, outcome, error=error)


def ledger(*keys: tuple[int, int]) -> dict[tuple[int, int], int]:
    return dict.fromkeys(keys, 1)


# --------------------------------------------------------------------------- unknown outcomes


def test_only_lost_connections_and_timeouts_leave_the_outcome_unknown() -> None:
    assert outcome_unknown(op(1, 0, Outcome.TIMEOUT, error="operation_timeout"))
    assert outcome_unknown(op(1, 0, Outcome.ERROR, error="08003"))
    assert outcome_unknown(op(1, 0, Outcome.ERROR, error="57P01"))
    assert outcome_unknown(op(1, 0, Outcome.ERROR, error="ConnectionResetError"))
    assert not outcome_unknown(op(1, 0))
    assert not outcome_unknown(op(1, 0, Outcome.ERROR, error="23505"))
    assert not outcome_unknown(op(1, 0, Outcome.SERIALIZATION_FAILURE, error="40001"))
    assert not outcome_unknown(op(1, 0, Outcome.CONFLICT, error="version_mismatch"))


def test_the_unknown_outcomes_are_summed_up_as_committed_or_not() -> None:
    assert unknown_summary(0, 0) == "no operation had an unknown outcome"
    assert unknown_summary(2, 1) == "3 operations with unknown outcome: 2 had committed, 1 had not"
    assert unknown_summary(0, 1) == "1 operation with unknown outcome: 0 had committed, 1 had not"


# --------------------------------------------------------------------------- the ledger check


def faulted_history() -> History:
    """Three successes, two deductions cut with unknown outcome, one refused by the server."""
    return History(
        [
            op(1, 0),
            op(1, 1),
            op(2, 0),
            op(2, 1, Outcome.ERROR, error="08003"),
            op(3, 0, Outcome.TIMEOUT, error="operation_timeout"),
            op(3, 1, Outcome.SERIALIZATION_FAILURE, error="40001"),
        ]
    )


def test_a_ledger_that_matches_resolves_the_unknown_outcomes() -> None:
    entries = ledger((1, 0), (1, 1), (2, 0), (2, 1))  # the cut deduction of agent 2 had committed
    verdict = check_ledger(faulted_history(), LedgerSnapshot(100, 96, entries))
    assert verdict.passed, verdict.message
    assert verdict.message == (
        "Credits match the ledger: 100 at the start minus 4 in 4 ledger rows is 96, found 96; "
        "3 successful operations, all in it; 2 operations with unknown outcome: 1 had committed, 1 had not."
    )
    assert verdict.value == 1
    findings = {row["operation"]: row["finding"] for row in verdict.details[1:]}
    assert findings == {
        "agent 2, iteration 1": "unknown outcome: had committed",
        "agent 3, iteration 0": "unknown outcome: had not committed",
    }


def test_credits_gone_without_a_ledger_row_are_caught() -> None:
    """The seeded bug of a ledger booked after the commit: a cut deduction applied, not booked."""
    entries = ledger((1, 0), (1, 1), (2, 0))
    verdict = check_ledger(faulted_history(), LedgerSnapshot(100, 96, entries))
    assert not verdict.passed
    assert verdict.message.startswith(
        "Credits do not match the ledger: 100 at the start minus 3 in 3 ledger rows is 97, found 96: "
        "1 credits disappeared that no ledger row accounts for"
    ), verdict.message
    assert verdict.message.endswith("2 operations with unknown outcome: 0 had committed, 2 had not.")


def test_a_success_missing_from_the_ledger_is_caught() -> None:
    verdict = check_ledger(faulted_history(), LedgerSnapshot(100, 98, ledger((1, 0), (2, 0))))
    assert not verdict.passed
    assert "1 operation reported success but is not in the ledger (agents 1)" in verdict.message


def test_a_refused_operation_in_the_ledger_is_caught() -> None:
    entries = ledger((1, 0), (1, 1), (2, 0), (3, 1))
    verdict = check_ledger(faulted_history(), LedgerSnapshot(100, 96, entries))
    assert not verdict.passed
    assert "1 operation that the server refused is in the ledger (agents 3)" in verdict.message


def test_a_ledger_row_of_no_operation_is_caught() -> None:
    entries = ledger((1, 0), (1, 1), (2, 0), (9, 9))
    verdict = check_ledger(faulted_history(), LedgerSnapshot(100, 96, entries))
    assert not verdict.passed
    assert "1 ledger row belong to no operation of the launch" in verdict.message


def test_a_counter_adds_what_its_ledger_holds() -> None:
    history = History([op(1, 0), op(1, 1), op(2, 0)])
    assert check_ledger(history, LedgerSnapshot(5, 8, ledger((1, 0), (1, 1), (2, 0)), sign=1, unit="increments")).passed
    doubled = check_ledger(history, LedgerSnapshot(5, 9, ledger((1, 0), (1, 1), (2, 0)), sign=1, unit="increments"))
    assert not doubled.passed
    assert "1 increments appeared that no ledger row accounts for" in doubled.message


def test_an_empty_history_is_nothing_to_check() -> None:
    verdict = check_ledger(History(), LedgerSnapshot(100, 100, {}))
    assert verdict.inconclusive and not verdict.passed


# --------------------------------------------------------------------------- stalls and latency


def steady_successes(every_ms: int, until_ms: int, *, gap: tuple[int, int] | None = None) -> History:
    ends = [t for t in range(every_ms, until_ms + 1, every_ms) if gap is None or not gap[0] < t < gap[1]]
    return History([op(1, i, start_ms=end - 1, end_ms=end) for i, end in enumerate(ends)])


def test_the_longest_gap_is_between_successes() -> None:
    history = steady_successes(10, 3000, gap=(1000, 2050))
    length, start, end = longest_gap_without_success(history)
    assert (length, start, end) == (1050 * MS, 1000 * MS, 2050 * MS)
    assert longest_gap_without_success(History()) == (0, 0, 0)


def test_a_stall_as_long_as_the_fault_passes() -> None:
    verdict = check_stall(steady_successes(10, 3000, gap=(1000, 2050)), "partition", 1005 * MS, 2005 * MS, 0.3)
    assert verdict.passed, verdict.message
    assert verdict.message == (
        "Progress stalled for 1.05 s during the 1.00 s partition; operations succeeded again 45.0 ms after it ended."
    )


def test_a_stall_far_longer_than_the_fault_is_caught() -> None:
    verdict = check_stall(steady_successes(10, 4000, gap=(1000, 3000)), "partition", 1005 * MS, 2005 * MS, 0.3)
    assert not verdict.passed
    assert "it lasted 2.00 s, 1.00 s off the partition's length" in verdict.message


def test_a_fault_that_stalled_nothing_is_caught() -> None:
    verdict = check_stall(steady_successes(10, 3000, gap=(100, 150)), "Redis pause", 1000 * MS, 2000 * MS, 0.3)
    assert not verdict.passed
    assert "the longest stall (50.0 ms) was not during the Redis pause" in verdict.message


def test_no_progress_after_the_fault_is_caught() -> None:
    verdict = check_stall(steady_successes(10, 1000), "partition", 1000 * MS, 2000 * MS, 5.0)
    assert not verdict.passed
    assert "no operation succeeded after the partition ended" in verdict.message


def test_added_latency_within_tolerance_passes_and_outside_fails() -> None:
    shown = check_added_latency(0.001, 0.052, 0.05, 0.025)
    assert shown.passed
    assert shown.message == (
        "Added latency shows in the median: expected it up by 50.0 ms (± 25.0 ms), measured from 1.0 ms to "
        "52.0 ms: up by 51.0 ms."
    )
    missing = check_added_latency(0.001, 0.0012, 0.05, 0.025)
    assert not missing.passed
    assert missing.message.endswith("up by 200 µs, off by 49.8 ms.")
