"""Checkers on hand-made histories: each must pass on a clean one and fail on a broken one."""

from __future__ import annotations

from typing import Any

from stampede.checkers import (
    MAX_ROWS,
    check_all_succeeded,
    check_conservation,
    check_fields_kept,
    check_lost_updates,
    check_retries_not_exhausted,
    classify_outcomes,
)
from stampede.history import History, Operation
from stampede.outcomes import Outcome


def make_op(
    agent: int = 1,
    outcome: Outcome = Outcome.OK,
    *,
    end_ns: int = 1_000,
    read: Any = None,
    written: Any = None,
    error: str | None = None,
    retries: int = 0,
    retry_causes: tuple[Outcome, ...] = (),
    exhausted: bool = False,
    iteration: int = 0,
) -> Operation:
    return Operation(
        agent,
        f"user-{agent}",
        "deduct",
        iteration,
        end_ns - 500,
        end_ns,
        outcome,
        error=error,
        retries=retries,
        retry_causes=retry_causes,
        exhausted=exhausted,
        read=read,
        written=written,
    )


def deduction(agent: int, balance: int, outcome: Outcome = Outcome.OK, amount: int = 1) -> Operation:
    return make_op(
        agent,
        outcome,
        read={"account": 1, "balance": balance},
        written={"account": 1, "balance": balance - amount},
    )


def amount(op: Operation) -> int:
    return op.read["balance"] - op.written["balance"]


# --- conservation ---------------------------------------------------------------------------


def serial_deductions(count: int, failed: int = 0) -> History:
    ops = [deduction(i % 10 + 1, 10_000 - i) for i in range(count)]
    ops += [deduction(1, 10_000, Outcome.CONFLICT, amount=50) for _ in range(failed)]
    return History(ops)


def test_conservation_passes_when_balance_adds_up() -> None:
    verdict = check_conservation(10_000, 9_800, serial_deductions(200, failed=5), amount)
    assert verdict.passed and verdict.status == "PASS"
    assert verdict.expected == "9800 credits" and verdict.measured == "9800 credits"
    assert "expected 9800" in verdict.message and "found 9800" in verdict.message
    assert "200 successful deductions" in verdict.message


def test_conservation_fails_when_credits_appear() -> None:
    verdict = check_conservation(10_000, 9_950, serial_deductions(200, failed=5), amount)
    assert not verdict.passed and verdict.status == "FAIL"
    assert verdict.miss == "150 credits too many"
    message = verdict.message
    assert "expected 9800" in message and "found 9950" in message
    assert "10000 at the start minus 200 taken by 200 successful deductions" in message
    assert "150 credits appeared that no deduction accounts for" in message
    assert verdict.details == [
        {
            "initial": 10_000,
            "successful deductions": 200,
            "deducted in total": 200,
            "expected final": 9_800,
            "actual final": 9_950,
            "difference": 150,
        }
    ]


def test_conservation_fails_when_credits_disappear() -> None:
    verdict = check_conservation(500, 390, History([deduction(1, 500, amount=100)]), amount, unit="cents")
    assert not verdict.passed
    assert verdict.miss == "10 cents too few"
    assert "expected 400" in verdict.message and "found 390" in verdict.message
    assert "1 successful deduction" in verdict.message
    assert "10 cents disappeared" in verdict.message


def test_conservation_ignores_failed_operations() -> None:
    history = History([deduction(1, 100, Outcome.SERIALIZATION_FAILURE, amount=40), deduction(2, 100)])
    assert check_conservation(100, 99, history, amount).passed
    assert not check_conservation(100, 59, history, amount).passed


def test_conservation_of_empty_history_is_initial_balance() -> None:
    assert check_conservation(10, 10, History(), amount).passed
    assert not check_conservation(10, 9, History(), amount).passed


# --- lost updates ---------------------------------------------------------------------------


def test_lost_updates_pass_on_serial_reads() -> None:
    history = History([deduction(agent, 1_000 - agent) for agent in range(1, 51)])
    verdict = check_lost_updates(history)
    assert verdict.passed and not verdict.inconclusive
    assert verdict.measured == "0 lost updates"
    assert "expected 0, found 0 among 50 successful operations" in verdict.message
    assert verdict.details == []


def test_lost_updates_fail_when_writers_read_the_same_version() -> None:
    history = History(
        [
            deduction(1, 1_000),
            deduction(2, 1_000),
            deduction(3, 1_000),
            deduction(4, 999),
            deduction(5, 999),
            deduction(6, 998),
            deduction(7, 1_000, Outcome.CONFLICT),  # failed writers lose nothing
            make_op(8, read={"account": 2, "balance": 1_000}),  # another account
        ]
    )
    verdict = check_lost_updates(history)
    assert not verdict.passed
    assert verdict.measured == "3 lost updates" and verdict.miss == "3 lost updates"
    assert "expected 0, found 3" in verdict.message
    assert "2 times" in verdict.message
    assert "3 of 7 successful updates were lost" in verdict.message
    assert verdict.details == [
        {"account": 1, "balance read": 1_000, "writers": 3, "lost updates": 2, "agents": "1, 2, 3"},
        {"account": 1, "balance read": 999, "writers": 2, "lost updates": 1, "agents": "4, 5"},
    ]


def test_lost_updates_on_config_versions() -> None:
    history = History(
        [
            make_op(1, read={"config": 1, "version": 5}),
            make_op(2, read={"config": 1, "version": 5}),
            make_op(3, read={"config": 1, "version": 6}),
        ]
    )
    verdict = check_lost_updates(history, subject="config", version="version")
    assert not verdict.passed
    assert verdict.measured == "1 lost update"
    assert verdict.details[0] == {"config": 1, "version read": 5, "writers": 2, "lost updates": 1, "agents": "1, 2"}


def test_lost_updates_skip_operations_without_reads() -> None:
    history = History([deduction(1, 10), make_op(2), make_op(3, read={"account": 1}), make_op(4, read="text")])
    verdict = check_lost_updates(history)
    assert verdict.passed and not verdict.inconclusive
    assert "found 0 among 1 successful operation that recorded" in verdict.message


def test_lost_updates_with_nothing_checkable_are_inconclusive() -> None:
    verdict = check_lost_updates(History([make_op(1), make_op(2, written={"account": 1})]))
    assert not verdict.passed and verdict.inconclusive
    assert verdict.status == "INCONCLUSIVE"
    assert verdict.measured == "0 of 0 checkable operations"
    assert "Nothing to check" in verdict.message and "(2 successful operations in all)" in verdict.message


def test_lost_updates_details_are_capped() -> None:
    history = History([deduction(agent, balance) for balance in range(30) for agent in (1, 2)])
    verdict = check_lost_updates(history)
    assert verdict.measured == "30 lost updates"
    assert len(verdict.details) == MAX_ROWS
    assert f"first {MAX_ROWS} of 30" in verdict.message


def test_lost_updates_list_many_agents_briefly() -> None:
    verdict = check_lost_updates(History([deduction(agent, 7) for agent in range(1, 16)]))
    assert verdict.details[0]["agents"] == "1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 5 more"
    assert verdict.measured == "14 lost updates"


# --- fields kept ----------------------------------------------------------------------------


def field_write(agent: int, version: int, value: Any, end_ns: int, outcome: Outcome = Outcome.OK) -> Operation:
    written = {"config": 1, "version": version, "field": f"agent_{agent}", "value": value}
    return make_op(agent, outcome, end_ns=end_ns, written=written)


def test_fields_kept_passes_when_last_writes_survive() -> None:
    history = History(
        [
            field_write(1, 1, "old", 100),
            field_write(2, 2, {"n": 1}, 200),
            field_write(1, 3, "new", 300),
            field_write(1, 4, "never committed", 400, Outcome.CONFLICT),
            make_op(3),  # wrote nothing checkable
        ]
    )
    verdict = check_fields_kept(history, {"agent_1": "new", "agent_2": {"n": 1}, "other": 0})
    assert verdict.passed and not verdict.inconclusive
    assert verdict.measured == "2 of 2 fields kept"
    assert "2 of 2 fields hold" in verdict.message


def test_fields_kept_orders_writes_by_end_time_not_history_order() -> None:
    history = History([field_write(1, 2, "late", 900), field_write(1, 1, "early", 100)])
    assert check_fields_kept(history, {"agent_1": "late"}).passed
    verdict = check_fields_kept(history, {"agent_1": "early"})
    assert not verdict.passed
    assert verdict.details == [
        {"field": "agent_1", "expected value": "late", "found value": "early", "writer agent": 1}
    ]


def test_fields_kept_fails_on_missing_and_changed_fields() -> None:
    history = History([field_write(1, 1, 10, 100), field_write(2, 2, [1, 2], 200), field_write(3, 3, None, 300)])
    verdict = check_fields_kept(history, {"agent_1": 10, "agent_2": [2, 1]})
    assert not verdict.passed
    assert verdict.expected == "3 of 3 fields kept"
    assert verdict.measured == "1 of 3 fields kept"
    assert verdict.miss == "2 field updates lost"
    assert "but 2 do not (1 missing, 1 with another value)" in verdict.message
    assert verdict.details == [
        {"field": "agent_2", "expected value": [1, 2], "found value": [2, 1], "writer agent": 2},
        {"field": "agent_3", "expected value": None, "found value": "(missing)", "writer agent": 3},
    ]


def test_fields_kept_with_nothing_written_is_inconclusive() -> None:
    verdict = check_fields_kept(History([make_op(1), field_write(2, 1, "x", 5, Outcome.DEADLOCK)]), {})
    assert not verdict.passed and verdict.inconclusive
    assert verdict.measured == "0 of 0 fields checkable"


# --- outcomes -------------------------------------------------------------------------------


def mixed_history() -> History:
    return History(
        [
            make_op(1, retries=3, retry_causes=(Outcome.CONFLICT,) * 3),
            make_op(2),
            make_op(3, Outcome.SERIALIZATION_FAILURE, error="40001"),
            make_op(4, Outcome.ERROR, error="ConnectionResetError"),
        ]
    )


def test_classify_outcomes_counts_attempts_and_codes() -> None:
    verdict = classify_outcomes(mixed_history())
    assert verdict.passed and not verdict.inconclusive
    assert verdict.measured == "4 operations in 7 attempts"
    assert "(3 retries)" in verdict.message
    assert "ok 2 (28.6%)" in verdict.message and "conflict 3 (42.9%)" in verdict.message
    by_key = {(row["outcome"], row["error code"]): row for row in verdict.details}
    assert by_key["ok", ""] == {
        "outcome": "ok",
        "error code": "",
        "final": 2,
        "retried": 0,
        "attempts": 2,
        "share of attempts": "28.6%",
    }
    assert by_key["conflict", ""]["retried"] == 3 and by_key["conflict", ""]["final"] == 0
    assert by_key["serialization failure", "40001"]["share of attempts"] == "14.3%"
    assert by_key["error", "ConnectionResetError"]["attempts"] == 1
    assert len(verdict.details) == 6


def test_classify_outcomes_of_nothing() -> None:
    verdict = classify_outcomes(History())
    assert verdict.passed and verdict.details == []
    assert verdict.measured == "0 operations in 0 attempts"


def test_retries_not_exhausted_passes_when_retries_sufficed() -> None:
    verdict = check_retries_not_exhausted(mixed_history())
    assert verdict.passed and verdict.measured == "0 of 4 operations out of retries"


def test_retries_not_exhausted_fails_listing_operations() -> None:
    exhausted = make_op(7, Outcome.CONFLICT, retries=20, retry_causes=(Outcome.CONFLICT,) * 20, exhausted=True)
    history = History([make_op(1), make_op(2), exhausted])
    verdict = check_retries_not_exhausted(history)
    assert not verdict.passed
    assert verdict.measured == "1 of 3 operations out of retries"
    assert verdict.miss == "1 operation out of retries"
    assert "1 of 3 operations (33.3%) gave up after 20 retries, still failing (1 conflict)" in verdict.message
    assert verdict.details == [
        {
            "agent": 7,
            "user": "user-7",
            "operation": "deduct",
            "iteration": 0,
            "retries": 20,
            "last outcome": "conflict",
            "error code": "",
        }
    ]


def test_retries_not_exhausted_names_the_range_of_retries() -> None:
    history = History(
        [
            make_op(1, Outcome.CONFLICT, retries=5, exhausted=True),
            make_op(2, Outcome.DEADLOCK, error="40P01", retries=9, exhausted=True),
        ]
    )
    verdict = check_retries_not_exhausted(history)
    assert "after 5 to 9 retries" in verdict.message
    assert "1 conflict" in verdict.message and "1 deadlock" in verdict.message


def test_retries_not_exhausted_of_nothing_is_inconclusive() -> None:
    assert check_retries_not_exhausted(History()).status == "INCONCLUSIVE"


def test_all_succeeded_passes() -> None:
    verdict = check_all_succeeded(History([make_op(agent) for agent in range(1, 11)]))
    assert verdict.passed and verdict.measured == "10 of 10 operations succeeded"


def test_all_succeeded_fails_grouping_failures() -> None:
    ops = [make_op(agent) for agent in range(1, 8)]
    ops += [make_op(agent, Outcome.TIMEOUT, error="operation_timeout") for agent in (8, 9)]
    ops.append(make_op(10, Outcome.ERROR, error="ConnectionResetError"))
    verdict = check_all_succeeded(History(ops))
    assert not verdict.passed
    assert verdict.expected == "10 of 10 operations succeeded"
    assert verdict.measured == "7 of 10 operations succeeded"
    assert verdict.miss == "3 operations failed"
    assert "7 succeeded and 3 did not (30.0%)" in verdict.message
    assert "2 timeout (operation_timeout); 1 error (ConnectionResetError)" in verdict.message
    assert verdict.details == [
        {
            "outcome": "timeout",
            "error code": "operation_timeout",
            "operations": 2,
            "share of operations": "20.0%",
            "agents": "8, 9",
        },
        {
            "outcome": "error",
            "error code": "ConnectionResetError",
            "operations": 1,
            "share of operations": "10.0%",
            "agents": "10",
        },
    ]


def test_all_succeeded_of_nothing_is_inconclusive() -> None:
    verdict = check_all_succeeded(History())
    assert verdict.inconclusive and "no operation was recorded" in verdict.message
