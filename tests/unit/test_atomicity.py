"""Atomicity checkers on hand-made histories and states: each passes on a clean one and fails on a broken one."""

from __future__ import annotations

from fractions import Fraction

import pytest

from stampede.checkers.atomicity import check_all_or_nothing, check_none_in_doubt, check_sagas, launch_batch
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.snapshots import AtomicityState, SagaState
from stampede.workloads.injected_faults import FaultSchedule, parse_rate

IDS = [f"b.1-{agent}-0" for agent in range(1, 5)]


def op(op_id: str, outcome: Outcome = Outcome.OK, fault: str = "none") -> Operation:
    agent = int(op_id.split("-")[1])
    written = {"batch": "b.1", "op": op_id, "fault": fault}
    return Operation(agent, f"user-{agent}", "place order", 0, 0, 1, outcome, written=written)


def saga(saga_id: str, failed_step: str | None = None, compensated: tuple[str, ...] = ()) -> Operation:
    agent = int(saga_id.split("-")[1])
    written: dict[str, object] = {"batch": "b.1", "saga": saga_id}
    if failed_step:
        written |= {"failed_step": failed_step, "compensated": list(compensated)}
    outcome = Outcome.ERROR if failed_step else Outcome.OK
    return Operation(agent, f"user-{agent}", "book trip", 0, 0, 1, outcome, written=written)


def state(orders: list[str], billing: list[str], decided: list[str] | None = None, in_doubt: tuple[str, ...] = ()):
    return AtomicityState(
        {"orders": frozenset(orders), "billing": frozenset(billing)},
        None if decided is None else frozenset(decided),
        in_doubt,
    )


# --- all or nothing ------------------------------------------------------------------------------------------


def test_all_or_nothing_passes_when_every_operation_is_everywhere_or_nowhere() -> None:
    history = History([op(IDS[0]), op(IDS[1]), op(IDS[2], Outcome.ERROR, "crash before decision")])
    verdict = check_all_or_nothing(history, state(IDS[:2], IDS[:2], decided=IDS[:2]))
    assert verdict.passed and not verdict.inconclusive
    assert verdict.message == (
        "All or nothing held for 3 operations across orders and billing: 2 applied on orders and billing, "
        "1 on neither; no partial state. Injected faults: 1 'crash before decision'."
    )


def test_all_or_nothing_counts_partial_operations_by_where_they_landed() -> None:
    history = History([op(IDS[0]), op(IDS[1], Outcome.ERROR, "crash after first commit"), op(IDS[2])])
    verdict = check_all_or_nothing(history, state([IDS[0], IDS[1], IDS[2]], [IDS[0], IDS[2]]))
    assert not verdict.passed
    assert verdict.value == 1
    assert verdict.message.startswith(
        "Not all or nothing: 1 of 3 operations broke atomicity (1 partial: on orders only); "
        "2 applied on orders and billing, 0 on neither."
    )
    assert verdict.details[0]["operation"] == IDS[1]
    assert verdict.details[0]["applied on"] == "orders"
    assert verdict.details[0]["fault"] == "crash after first commit"


def test_a_success_applied_nowhere_breaks_atomicity() -> None:
    verdict = check_all_or_nothing(History([op(IDS[0])]), state([], []))
    assert not verdict.passed
    assert "1 reported success, applied nowhere" in verdict.message


def test_a_logged_decision_must_be_carried_out() -> None:
    history = History([op(IDS[0], Outcome.ERROR, "crash after decision")])
    verdict = check_all_or_nothing(history, state([], [], decided=[IDS[0]]))
    assert not verdict.passed
    assert "1 commit decision logged, applied nowhere" in verdict.message
    assert verdict.details[0]["decision logged"] == "yes"


def test_rows_no_operation_recorded_still_count() -> None:
    verdict = check_all_or_nothing(History([op(IDS[0])]), state([IDS[0], IDS[3]], [IDS[0]]))
    assert not verdict.passed
    assert verdict.details[0]["outcome"] == "(not in the history)"


def test_all_or_nothing_with_nothing_to_check_is_inconclusive() -> None:
    verdict = check_all_or_nothing(History(), state([], []))
    assert verdict.inconclusive
    assert "Nothing to check" in verdict.message


# --- in doubt ------------------------------------------------------------------------------------------------


def test_none_in_doubt_passes_with_no_prepared_transaction_left() -> None:
    verdict = check_none_in_doubt(History([op(IDS[0])]), state([IDS[0]], [IDS[0]]))
    assert verdict.passed
    assert "No prepared transaction left in doubt: none of the 1 operation" in verdict.message


def test_prepared_transactions_left_in_doubt_are_counted_per_operation() -> None:
    gids = (f"stampede-r-2pc-{IDS[0]}-orders", f"stampede-r-2pc-{IDS[0]}-billing", f"stampede-r-2pc-{IDS[1]}-orders")
    history = History([op(IDS[0], Outcome.ERROR, "crash before decision"), op(IDS[1])])
    verdict = check_none_in_doubt(history, state([], [], in_doubt=gids))
    assert not verdict.passed
    assert verdict.value == 3
    assert verdict.message.startswith(
        "Prepared transactions left in doubt: 3 prepared transactions of 2 operations still in pg_prepared_xacts,"
    )
    assert [row["gid"] for row in verdict.details] == list(gids)


def test_none_in_doubt_with_nothing_to_check_is_inconclusive() -> None:
    assert check_none_in_doubt(History(), state([], [])).inconclusive


# --- sagas ---------------------------------------------------------------------------------------------------

STEPS = ("record booking", "reserve credits")


def saga_state(reserved: list[str], booked: list[str], ticketed: list[str], released: list[str] = ()) -> SagaState:
    return SagaState(frozenset(reserved), frozenset(released), frozenset(booked), frozenset(ticketed), 100, 90)


def test_sagas_pass_when_each_completed_or_was_fully_compensated() -> None:
    history = History([saga(IDS[0]), saga(IDS[1], "issue ticket", STEPS)])
    verdict = check_sagas(history, saga_state([IDS[0]], [IDS[0]], [IDS[0]], released=[IDS[1]]))
    assert verdict.passed
    assert verdict.message == (
        "No saga left partial state: of 2 sagas 1 completed, 1 undone; 1 saga failed (1 at issue ticket), "
        "2 compensating steps ran (1 record booking, 1 reserve credits)."
    )


def test_an_uncompensated_saga_is_partial() -> None:
    history = History([saga(IDS[0]), saga(IDS[1], "issue ticket")])
    verdict = check_sagas(history, saga_state([IDS[0], IDS[1]], [IDS[0], IDS[1]], [IDS[0]]))
    assert not verdict.passed
    assert verdict.message.startswith(
        "Partial sagas: 1 of 2 sagas ended neither complete nor compensated "
        "(1 with reserve credits + record booking left applied)"
    )


def test_a_compensation_that_skips_redis_leaves_the_booking() -> None:
    history = History([saga(IDS[1], "issue ticket", ("reserve credits",))])
    verdict = check_sagas(history, saga_state([], [IDS[1]], [], released=[IDS[1]]))
    assert not verdict.passed
    assert "1 with record booking left applied" in verdict.message
    assert verdict.details[0]["compensated"] == "reserve credits"


def test_a_saga_reported_complete_without_its_steps_is_caught() -> None:
    verdict = check_sagas(History([saga(IDS[0])]), saga_state([], [], []))
    assert not verdict.passed
    assert "reported success, no step applied" in verdict.message


def test_sagas_with_nothing_to_check_are_inconclusive() -> None:
    assert check_sagas(History(), saga_state([], [], [])).inconclusive


def test_launch_batch_is_read_from_the_history() -> None:
    assert launch_batch(History([op(IDS[0])])) == "b.1"
    assert launch_batch(History()) is None


# --- injected faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("30%", Fraction(3, 10)),
        ("0.25", Fraction(1, 4)),
        ("0", Fraction(0)),
        ("100 %", Fraction(1)),
        ("1/3", Fraction(1, 3)),
    ],
)
def test_rates_are_read_exactly(text: str, rate: Fraction) -> None:
    assert parse_rate(text, what="fault rate") == rate


@pytest.mark.parametrize("text", ["abc", "150%", "-1%", "", "1/0"])
def test_bad_rates_say_what_to_write(text: str) -> None:
    with pytest.raises(ConfigurationError, match="fault rate must be"):
        parse_rate(text, what="fault rate")


@pytest.mark.parametrize(
    ("rate", "total"), [(Fraction(3, 10), 100), (Fraction(1, 3), 10), (Fraction(0), 7), (Fraction(1), 5)]
)
def test_fault_schedule_faults_exactly_the_share_asked_for(rate: Fraction, total: int) -> None:
    schedule = FaultSchedule(rate)
    assert sum(schedule.next_faults() for _ in range(total)) == int(total * rate)
