"""Suites that must fail do fail, with messages that say what broke in numbers: the checkers can fail."""

from __future__ import annotations

import re

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_nothing_left_behind, keywords_in, run_robot

# test name -> patterns its failure message must match
EXPECTED_FAILURES: dict[str, list[str]] = {
    "Naive Deductions At Read Committed Break Conservation": [
        r"^Credits do not add up: expected \d+ \(10000 at the start minus \d+ taken by \d+ successful deductions\), "
        r"found \d+: [1-9]\d* credits appeared",
    ],
    "Naive Deductions At Read Committed Lose Updates": [
        r"^Lost updates: expected 0, found [1-9]\d*\.",
        r"[1-9]\d* of \d+ successful updates were lost",
    ],
    "Last Writer Wins Loses Configuration Fields": [r"^Lost updates: expected 0, found [1-9]\d*\."],
    "An Impossible Latency Threshold Is Missed": [
        r"^1 of 1 thresholds missed: p99 < [^:]+: measured [\d.]+ (ns|µs|ms|s) over 90 successful operations, "
        r"missed by [\d.]+ (ns|µs|ms|s)",
    ],
    "Naive Deductions At Repeatable Read Are Refused": [
        r"^Not every operation succeeded: expected 90 of 90, \d+ succeeded and [1-9]\d* did not",
        r"[1-9]\d* serialization failures? \(40001\)",
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("must_fail"), ROBOT_DIR / "must_fail.robot")


def test_exactly_the_expected_tests_ran(run: RobotRun) -> None:
    assert set(run.tests) == set(EXPECTED_FAILURES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_fails_with_a_message_that_says_what_broke(run: RobotRun, name: str) -> None:
    test = run.test(name)
    assert test.status == "FAIL", f"{name} should fail but {test.status}: {test.message}"
    for pattern in EXPECTED_FAILURES[name]:
        assert re.search(pattern, test.message), f"{pattern!r} not in: {test.message}"


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_it_is_the_checker_that_fails_not_the_launch(run: RobotRun, name: str) -> None:
    """Every launch ran as asked; only the last keyword of the test, the check, failed."""
    keywords = keywords_in(run.test(name))
    launches = [kw for kw in keywords if kw.name == "Launch Agents"]
    assert launches and all(kw.status == "PASS" for kw in launches)
    top_level = run.test(name).body.filter(messages=False)
    assert [kw.status for kw in top_level][-1] == "FAIL"
    assert all(kw.status == "PASS" for kw in top_level[:-1])


def test_a_missed_threshold_states_the_threshold_as_written(run: RobotRun) -> None:
    """The message must say what was expected: 1 ns, not a rounded "0 µs"."""
    message = run.test("An Impossible Latency Threshold Is Missed").message
    assert re.search(r"p99 < 1(\.0+)? ?ns\b", message), message


def test_robot_exit_code_counts_the_failures(run: RobotRun) -> None:
    assert run.returncode == len(EXPECTED_FAILURES), run.console
    assert run.suite.status == "FAIL"


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
