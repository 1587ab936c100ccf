"""Test case 4 end to end: the cross-service suite passes, its twins fail with numbers, and 2PC skips where it must.

One robot run holds the suite and its must-fail twins. With 10 agents × 10 orders
and a 30% fault rate, exactly 30 operations meet the fault in every launch.
"""

from __future__ import annotations

import asyncio
import os
import re

import asyncpg
import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    messages_in,
    run_robot,
)

SUITE = "suites/tool_conflicts/04__cross_service_transactions.robot"
TWINS = ROBOT_DIR / "failing_twins" / "coordination.robot"
FAULTED = 30  # 10 agents × 10 iterations × 30%

# test -> (committed, rolled back) by recovery
RECOVERIES = {
    "Orders Survive A Coordinator Crash After The First Prepare": (0, FAULTED),
    "Orders Survive A Coordinator Crash Before The Decision": (0, 2 * FAULTED),
    "Orders Survive A Coordinator Crash After The Decision": (2 * FAULTED, 0),
    "Orders Survive A Coordinator Crash After The First Commit": (FAULTED, 0),
    "Skipping Recovery Leaves Prepared Transactions In Doubt And Stampede Catches It": (0, 2 * FAULTED),
}
TWO_PHASE_TESTS = {*RECOVERIES, "A Participant That Refuses To Prepare Aborts The Whole Order"}
ALWAYS_RUN_TESTS = {
    "Committing One Service After The Other Leaves Partial State And Stampede Catches It",
    "Saga Compensation Undoes Every Completed Step When Issuing The Ticket Fails",
    "Saga Compensation Undoes The Reservation When Recording The Booking Fails",
    "A Saga Without Compensation Leaves Partial State And Stampede Catches It",
}
PARTIAL_ORDERS = (
    rf"^Not all or nothing: {FAULTED} of 100 operations broke atomicity \({FAULTED} partial: on orders only\)"
)
# twin -> patterns its failure message must match
TWO_PHASE_TWINS = {
    "Skipped Recovery Leaves Prepared Transactions In Doubt": [
        rf"^Prepared transactions left in doubt: {2 * FAULTED} prepared transactions of {FAULTED} operations "
        "still in pg_prepared_xacts",
        rf"Injected faults: {FAULTED} 'crash before decision'",
    ],
    "Skipped Recovery Leaves Logged Decisions Not Carried Out": [
        rf"^Not all or nothing: {FAULTED} of 100 operations broke atomicity \({FAULTED} commit decision logged, "
        r"applied nowhere\)",
    ],
}
TWINS_EXPECTED = {
    **TWO_PHASE_TWINS,
    "A Naive Coordinator Leaves Orders Without Their Charges": [
        PARTIAL_ORDERS,
        rf"Injected faults: {FAULTED} 'crash after first commit'",
    ],
    "A Billing Refusal After Orders Committed Leaves Orders Without Their Charges": [
        PARTIAL_ORDERS,
        rf"Injected faults: {FAULTED} 'billing refuses'",
    ],
    "A Saga Without Compensation Leaves Partial State": [
        rf"^Partial sagas: {FAULTED} of 100 sagas ended neither complete nor compensated \({FAULTED} with "
        r"reserve credits \+ record booking left applied\)",
        r"0 compensating steps ran",
    ],
    "A Saga Compensation That Skips Redis Leaves Bookings Behind": [
        rf"^Partial sagas: {FAULTED} of 100 sagas ended neither complete nor compensated \({FAULTED} with "
        r"record booking left applied\)",
        rf"{FAULTED} compensating steps ran \({FAULTED} reserve credits\)",
    ],
}


def _server_allows_prepared_transactions() -> bool:
    dsn = os.environ.get("STAMPEDE_PG_DSN")
    if not dsn:
        return True  # the embedded server allows 100

    async def setting() -> str:
        connection = await asyncpg.connect(dsn, timeout=10)
        try:
            return str(await connection.fetchval("SHOW max_prepared_transactions"))
        finally:
            await connection.close()

    return asyncio.run(setting()) != "0"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("cross_service_transactions"), SUITE, TWINS)


@pytest.fixture(scope="module")
def two_phase_allowed() -> bool:
    return _server_allows_prepared_transactions()


def _info(run: RobotRun, test: str, prefix: str) -> list[str]:
    return [m.message for m in messages_in(run.test(test)) if not m.html and m.message.startswith(prefix)]


def test_exactly_the_expected_tests_ran(run: RobotRun) -> None:
    assert set(run.tests) == TWO_PHASE_TESTS | ALWAYS_RUN_TESTS | set(TWINS_EXPECTED)


def test_tests_that_need_no_prepared_transactions_pass(run: RobotRun) -> None:
    assert_passed(run, *ALWAYS_RUN_TESTS)


def test_two_phase_commit_passes_or_is_skipped_naming_the_setting(run: RobotRun, two_phase_allowed: bool) -> None:
    if two_phase_allowed:
        assert_passed(run, *TWO_PHASE_TESTS)
        return
    for name in TWO_PHASE_TESTS | set(TWO_PHASE_TWINS):
        test = run.test(name)
        assert test.status == "SKIP", f"{name} should be skipped, not {test.status}: {test.message}"
        assert re.search(r"has max_prepared_transactions = 0: it refuses PREPARE TRANSACTION", test.message), (
            test.message
        )


def test_recovery_resolves_by_the_decision_log_in_the_numbers_expected(run: RobotRun, two_phase_allowed: bool) -> None:
    if not two_phase_allowed:
        pytest.skip("the server has max_prepared_transactions = 0: the recovery tests were skipped")
    for name, (committed, rolled_back) in RECOVERIES.items():
        assert _info(run, name, "Recovery resolved") == [
            f"Recovery resolved {committed + rolled_back} in-doubt transactions of 'place order': "
            f"committed {committed} (decision logged), rolled back {rolled_back} (no decision: presumed abort)."
        ], name
        (atomic,) = _info(run, name, "All or nothing held")
        applied = 100 - FAULTED if rolled_back else 100
        assert atomic.startswith(
            f"All or nothing held for 100 operations across orders and billing: {applied} applied on orders and "
            f"billing, {100 - applied} on neither; no partial state."
        ), atomic
        assert _info(run, name, "No prepared transaction left in doubt"), name


def test_sagas_report_their_compensations(run: RobotRun) -> None:
    (issued,) = _info(run, "Saga Compensation Undoes Every Completed Step When Issuing The Ticket Fails", "No saga")
    assert issued == (
        f"No saga left partial state: of 100 sagas {100 - FAULTED} completed, {FAULTED} undone; {FAULTED} sagas "
        f"failed ({FAULTED} at issue ticket), {2 * FAULTED} compensating steps ran ({FAULTED} record booking, "
        f"{FAULTED} reserve credits)."
    )
    (booked,) = _info(run, "Saga Compensation Undoes The Reservation When Recording The Booking Fails", "No saga")
    assert f"{FAULTED} compensating steps ran ({FAULTED} reserve credits)" in booked
    (credits,) = _info(
        run, "Saga Compensation Undoes Every Completed Step When Issuing The Ticket Fails", "Credits add up"
    )
    assert f"minus {10 * (100 - FAULTED)} taken by {100 - FAULTED} successful deductions" in credits


@pytest.mark.parametrize("name", sorted(TWINS_EXPECTED))
def test_twin_fails_in_its_check_with_numbers(run: RobotRun, two_phase_allowed: bool, name: str) -> None:
    if name in TWO_PHASE_TWINS and not two_phase_allowed:
        pytest.skip("the server has max_prepared_transactions = 0: this twin was skipped (checked above)")
    assert_failed_with(run, name, *TWINS_EXPECTED[name])


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
