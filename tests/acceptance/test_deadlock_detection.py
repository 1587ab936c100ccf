"""Test case 5 end to end: the deadlock suite passes with measured numbers; its seeded-bug twins fail in checks."""

from __future__ import annotations

import json
import re

import pytest

from stampede.units import parse_duration

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    messages_in,
    run_robot,
)

SUITE = "suites/tool_conflicts/05__deadlock_detection.robot"
TWINS = ROBOT_DIR / "failing_twins" / "deadlocks.robot"
OPPOSITE_TEST = "Opposite Lock Orders Deadlock, And Every Deadlock Is Detected, Resolved And Recovered From"
ORDERED_TEST = "Locking Accounts In One Order Prevents Deadlocks"
TRANSFERS = 60  # 20 agents × 3 transfers in the suite
SEED_BOUND = 0.5
MARGIN = 0.25
DURATION = r"([\d.]+) (ms|s)"
DETECTED = re.compile(
    rf"^Deadlocks: ([1-9]\d*) detected \(SQLSTATE 40P01\) in {TRANSFERS} transfers \([\d.]+% of attempts\); "
    r"every other attempt committed\.\n"
    rf"Deadlock resolution: p95 {DURATION} ≤ {DURATION} \(p50 {DURATION}, max {DURATION} over \1 deadlocks; "
    rf"\d+ of \1 took longer than {DURATION}; server deadlock_timeout (\w+)\)\.$"
)
TWIN_FAILURES: dict[str, list[str]] = {
    "Deadlock Victims That Are Not Retried Leave Transfers Undone": [
        r"^Forward progress failed: \d+ of 40 transfers completed, ([1-9]\d*) did not \([\d.]+%\): \1 ended in a "
        r"deadlock \(40P01\) and were not retried\. A deadlock victim's transaction is rolled back; only a retry "
        r"completes its work( \(the table shows the first 20 of \1\))?\.$"
    ],
    "A Long Deadlock Timeout Misses The Resolution Bound": [
        # A victim that first waited on its partner's previous transaction waits up to 2 × deadlock_timeout.
        r"^Deadlocks resolved too slowly: p95 [12]\.\d\d s > 500\.0 ms, [\d.]+ m?s over the bound \(p50 1\.\d\d s, "
        r"max [\d.]+ s over ([1-9]\d*) deadlocks; \1 of \1 took longer than 500\.0 ms; session deadlock_timeout 1s\)\. "
        r"PostgreSQL looks for a deadlock only once a lock wait has lasted deadlock_timeout \(1s\), so none can be "
        r"resolved within 500\.0 ms: set deadlock_timeout below the bound\.$"
    ],
    "A Lock Timeout Shorter Than The Deadlock Timeout Hides Deadlocks": [
        r"^Not every deadlock surfaced as 40P01: 0 detected \(SQLSTATE 40P01\) in 40 transfers, but ([1-9]\d*) "
        r"attempts neither committed nor ended in 40P01: \1 ended in lock not available \(55P03\), retried\. ",
        r"No deadlock resolution time to judge: no deadlock occurred in 40 operations\.$",
    ],
    "Credits Added Behind The Transfers' Back Break Conservation": [
        r"^Credits not conserved: 20 accounts held 200000 credits at the start and hold 200005 now: 5 credits "
        r"appeared that no transfer accounts for \(transfers only move credits; the 40 successful ones moved 40\)\.$"
    ],
    "Credits Moved Behind The Transfers' Back Leave Accounts Wrong": [
        r"^Credits conserved in total \(200000\), but 2 of 20 accounts do not hold what the 40 successful "
        r"transfers \(40 credits moved\) left them: a transfer reported as done was not applied, a failed one "
        r"took effect, or something else wrote to them\.$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("deadlock_detection"), SUITE, TWINS)


def _message(run: RobotRun, test: str, *starts: str) -> str:
    """The messages starting with each of ``starts`` (one each), one per line."""
    messages = [m.message for m in messages_in(run.test(test))]
    found = []
    for start in starts:
        (message,) = [message for message in messages if message.startswith(start)]
        found.append(message)
    return "\n".join(found)


def _seconds(number: str, unit: str) -> float:
    return parse_duration(f"{number} {unit}")


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, OPPOSITE_TEST, ORDERED_TEST)
    assert run.child_suite("Deadlock Detection").status == "PASS"


def test_deadlocks_were_provoked_detected_and_resolved_within_the_bound_for_the_servers_timeout(
    run: RobotRun,
) -> None:
    messages = _message(run, OPPOSITE_TEST, "Deadlocks: ", "Deadlock resolution: ")
    match = DETECTED.match(messages)
    assert match, messages
    deadlocks = int(match.group(1))
    p95, bound, p50, slowest, over = (_seconds(match.group(i), match.group(i + 1)) for i in range(2, 12, 2))
    deadlock_timeout = parse_duration(match.group(12))
    expected_bound = SEED_BOUND if deadlock_timeout + MARGIN <= SEED_BOUND else 2 * deadlock_timeout + MARGIN
    assert bound == pytest.approx(expected_bound) == pytest.approx(over)
    # No deadlock is resolved before PostgreSQL looks for it, after deadlock_timeout.
    assert deadlock_timeout <= p50 <= p95 <= bound, match.group(0)
    assert slowest >= p95
    warnings = [m.message for m in messages_in(run.test(OPPOSITE_TEST)) if m.level == "WARN"]
    if deadlock_timeout + MARGIN > SEED_BOUND:
        (warning,) = warnings
        assert f"The server's deadlock_timeout is {match.group(12)}" in warning
        assert "set deadlock_timeout below 500.0 ms on the server" in warning
    else:
        assert not warnings
    progress = _message(run, OPPOSITE_TEST, "Forward progress: ")
    assert re.fullmatch(
        rf"Forward progress: all {TRANSFERS} transfers completed; \d+ deadlock victims met {deadlocks} deadlocks, "
        rf"retried \({deadlocks} retries\) and completed\.",
        progress,
    ), progress


def test_every_credit_is_kept_account_by_account(run: RobotRun) -> None:
    for test in (OPPOSITE_TEST, ORDERED_TEST):
        message = _message(run, test, "Credits conserved: ")
        assert message == (
            f"Credits conserved: 20 accounts hold 200000 credits in total, as at the start, and each holds what the "
            f"{TRANSFERS} successful transfers ({TRANSFERS} credits moved) left it."
        )


def test_ordered_locking_shows_zero_deadlocks(run: RobotRun) -> None:
    assert _message(run, ORDERED_TEST, "No deadlock in ") == f"No deadlock in {TRANSFERS} transfers."


def test_the_history_holds_every_resolution_time(run: RobotRun) -> None:
    (path,) = (run.output_dir / "histories").glob("Opposite_Lock_Orders*.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == TRANSFERS
    victims = [record for record in records if record["retries"]]
    assert victims
    for record in victims:
        waits = record["read"]["deadlock_waits_ns"]
        assert len(waits) == record["retries"] == record["retry_causes"].count("deadlock")
        assert record["timings"] == {"deadlock_resolution": max(waits)}
        assert record["written"]["amount"] == 1


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_with_numbers(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
