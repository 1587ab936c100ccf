"""The projection checks on hand-made histories and snapshots: pass on a correct projection, fail with numbers."""

from __future__ import annotations

import math

import pytest

from stampede.checkers.projection import check_projection_converged, check_read_your_writes_lag
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.snapshots import ProjectionSnapshot, StoredEvent

MS = 1_000_000
LAST_COMMIT_NS = 10_000 * MS


def append(
    seq: int,
    stream: str = "user-1",
    *,
    committed_ns: int = LAST_COMMIT_NS,
    lag_ms: float | None = 10,
    outcome: Outcome = Outcome.OK,
    agent: int = 1,
) -> Operation:
    timings = {"append": 5 * MS} | ({"projection_lag": int(lag_ms * MS)} if lag_ms is not None else {})
    return Operation(
        agent,
        f"user-{agent}",
        "append events",
        0,
        committed_ns - 5 * MS,
        committed_ns + 20 * MS,
        outcome,
        read={"seen": lag_ms is not None},
        written={"stream": stream, "seq": seq, "type": "credit", "amount": 1, "committed_ns": committed_ns},
        timings=timings,
    )


EVENTS = [
    StoredEvent(1, "user-1", 10),
    StoredEvent(2, "user-1", -3),
    StoredEvent(3, "user-2", 5),
    StoredEvent(4, "user-2", 7),
    StoredEvent(5, "user-10", 1),
]
HISTORY = History(
    append(event.seq, event.stream, committed_ns=LAST_COMMIT_NS - (5 - event.seq) * MS) for event in EVENTS
)


def snapshot(
    applied: list[int],
    totals: dict[str, int],
    *,
    applied_ms_after: float = 30,
    caught_up: bool = True,
    worker: str = "caught up and stopped",
) -> ProjectionSnapshot:
    return ProjectionSnapshot(
        events=EVENTS,
        applied=applied,
        totals=totals,
        applied_at_ns={seq: LAST_COMMIT_NS + int(applied_ms_after * MS) for seq in applied},
        caught_up=caught_up,
        worker=worker,
    )


CORRECT_TOTALS = {"user-1": 7, "user-2": 12, "user-10": 1}


def test_a_projection_that_is_the_fold_of_every_event_converges() -> None:
    verdict = check_projection_converged(HISTORY, snapshot([1, 2, 3, 4, 5], CORRECT_TOTALS), within=5)
    assert verdict.passed and not verdict.inconclusive, verdict.message
    assert verdict.message == (
        "Projection converged 30.0 ms after the last append (bound 5.00 s): every one of 5 events over 3 streams "
        "applied exactly once, every stream's projected total equal to the sum of its events."
    )
    assert verdict.value == pytest.approx(0.030)


def test_skipped_events_fail_with_their_seqs_and_the_totals_of_the_worst_stream() -> None:
    verdict = check_projection_converged(
        HISTORY, snapshot([1, 3, 5], {"user-1": 10, "user-2": 5, "user-10": 1}), within=5
    )
    assert not verdict.passed
    assert verdict.message == (
        "Projection diverged: 2 of 5 events never applied (seqs 2, 4); 2 of 3 streams differ: stream user-2 "
        "projected 5, events sum to 12 (and 1 more stream); the projection worker caught up and stopped."
    )
    assert verdict.value == 2
    assert [row["stream"] for row in verdict.details] == ["user-1", "user-2"]
    assert verdict.details[1] == {
        "stream": "user-2",
        "events": 2,
        "events sum to": 12,
        "projected": 5,
        "difference": -7,
        "missing seqs": "4",
        "seqs applied twice": "",
    }


def test_a_worker_still_catching_up_at_the_bound_has_not_converged_yet() -> None:
    verdict = check_projection_converged(
        HISTORY,
        snapshot([1, 2, 3], {"user-1": 7, "user-2": 5}, caught_up=False, worker="was still catching up"),
        within=2,
    )
    assert not verdict.passed
    assert verdict.message.startswith(
        "Projection did not converge within 2.00 s of the last append: 2 of 5 events not applied yet (seqs 4, 5)"
    )
    assert verdict.message.endswith("the projection worker was still catching up.")


def test_an_event_applied_twice_is_named_even_when_it_is_the_only_fault() -> None:
    verdict = check_projection_converged(
        HISTORY, snapshot([1, 2, 3, 3, 4, 5], {"user-1": 7, "user-2": 17, "user-10": 1}), within=5
    )
    assert not verdict.passed
    assert "1 event applied more than once (seqs 3)" in verdict.message
    assert "1 of 3 streams differ: stream user-2 projected 17, events sum to 12" in verdict.message
    assert verdict.details[0]["seqs applied twice"] == "3"


def test_missing_events_whose_changes_cancel_out_still_fail() -> None:
    """A credit and a debit of the same size skipped together leave the total right; the applied log is not."""
    events = [StoredEvent(1, "user-1", 4), StoredEvent(2, "user-1", -4), StoredEvent(3, "user-1", 9)]
    state = ProjectionSnapshot(events, applied=[3], totals={"user-1": 9}, applied_at_ns={3: LAST_COMMIT_NS})
    verdict = check_projection_converged(History([append(1), append(2), append(3)]), state, within=5)
    assert not verdict.passed
    assert verdict.message.startswith("Projection diverged: 2 of 3 events never applied (seqs 1, 2); the projection")
    assert verdict.details[0]["missing seqs"] == "1, 2"


def test_applications_of_unknown_events_and_appends_lost_from_the_store_fail() -> None:
    history = History([*HISTORY, append(9, "user-1")])
    verdict = check_projection_converged(history, snapshot([1, 2, 3, 4, 5, 8], CORRECT_TOTALS), within=5)
    assert not verdict.passed
    assert "1 application of events the store does not hold (seqs 8)" in verdict.message
    assert "1 append the agents saw commit missing from the event store (seqs 9)" in verdict.message


def test_a_projection_that_converged_after_the_bound_fails_by_how_much() -> None:
    verdict = check_projection_converged(
        HISTORY, snapshot([1, 2, 3, 4, 5], CORRECT_TOTALS, applied_ms_after=6000), within=5
    )
    assert not verdict.passed
    assert verdict.miss == "1.00 s too late"
    assert verdict.message.startswith(
        "Projection converged only 6.00 s after the last append, 1.00 s too late for the 5.00 s bound"
    )


def test_an_application_committed_before_the_agent_saw_its_commit_counts_as_no_delay() -> None:
    verdict = check_projection_converged(
        HISTORY, snapshot([1, 2, 3, 4, 5], CORRECT_TOTALS, applied_ms_after=-2), within=5
    )
    assert verdict.passed and verdict.value == 0


def test_failed_appends_are_not_expected_in_the_store() -> None:
    history = History([*HISTORY, append(7, outcome=Outcome.TIMEOUT)])
    verdict = check_projection_converged(history, snapshot([1, 2, 3, 4, 5], CORRECT_TOTALS), within=5)
    assert verdict.passed, verdict.message


def test_an_empty_store_is_inconclusive() -> None:
    verdict = check_projection_converged(History(), ProjectionSnapshot([], [], {}), within=5)
    assert not verdict.passed and verdict.inconclusive
    assert "the event store holds no event" in verdict.message


def test_a_whole_projection_without_application_times_is_inconclusive() -> None:
    state = ProjectionSnapshot(EVENTS, [1, 2, 3, 4, 5], CORRECT_TOTALS, applied_at_ns={1: LAST_COMMIT_NS})
    verdict = check_projection_converged(HISTORY, state, within=5)
    assert verdict.inconclusive
    assert "when it got there is unknown" in verdict.message


def lag_history(lags_ms: list[float | None]) -> History:
    return History(append(seq, agent=seq % 3 + 1, lag_ms=lag) for seq, lag in enumerate(lags_ms, start=1))


def test_read_your_writes_lag_within_bound_passes_with_the_spread() -> None:
    verdict = check_read_your_writes_lag(lag_history([float(ms) for ms in range(1, 101)]), bound=1)
    assert verdict.passed and not verdict.inconclusive
    assert verdict.measured == "p95 95.0 ms"
    assert verdict.message == (
        "Read-your-writes lag within bound: p95 95.0 ms ≤ 1.00 s; the 100 appends seen took p50 50.0 ms, "
        "max 100.0 ms; every agent saw its own append in the projection."
    )


def test_read_your_writes_lag_over_bound_fails_by_how_much() -> None:
    verdict = check_read_your_writes_lag(lag_history([10.0] * 90 + [1500.0] * 10), bound=1)
    assert not verdict.passed
    assert verdict.miss == "500.0 ms over"
    assert verdict.message.startswith("Read-your-writes lag too long: p95 1.50 s, bound 1.00 s, 500.0 ms over")
    assert len(verdict.details) == 10 and verdict.details[0]["lag"] == "1.50 s"


def test_appends_never_seen_count_as_longer_than_any_bound() -> None:
    verdict = check_read_your_writes_lag(lag_history([10.0] * 7 + [None] * 3), bound=1)
    assert not verdict.passed and math.isinf(verdict.value or 0)
    assert verdict.miss == "never seen"
    assert verdict.message == (
        "Read-your-writes lag too long: p95 never reached, bound 1.00 s: 3 of 10 appends (30.0%) never became "
        "visible to their agent within its wait (seqs 8, 9, 10); the 7 appends seen took p50 10.0 ms, max 10.0 ms."
    )
    assert [row["seq"] for row in verdict.details] == [8, 9, 10]


def test_a_few_unseen_appends_under_the_percentile_pass_but_are_named() -> None:
    verdict = check_read_your_writes_lag(lag_history([10.0] * 99 + [None]), bound=1)
    assert verdict.passed
    assert "1 of 100 appends (1.0%) never became visible to their agent within its wait (seqs 100)" in verdict.message


def test_the_percentile_is_chosen_by_the_caller() -> None:
    history = lag_history([10.0] * 98 + [900.0] * 2)
    assert check_read_your_writes_lag(history, bound=0.5).passed
    verdict = check_read_your_writes_lag(history, bound=0.5, percentile_rank=99)
    assert not verdict.passed and verdict.measured == "p99 900.0 ms"


def test_lag_without_successful_appends_is_inconclusive() -> None:
    verdict = check_read_your_writes_lag(History([append(1, outcome=Outcome.ERROR)]), bound=1)
    assert not verdict.passed and verdict.inconclusive


def test_a_percentile_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="percentile must be in"):
        check_read_your_writes_lag(HISTORY, bound=1, percentile_rank=0)
