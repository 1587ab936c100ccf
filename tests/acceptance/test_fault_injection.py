"""Fault injection end to end: the suite passes and says what it measured, twins fail in their checks, bad input too."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    closed_port,
    messages_in,
    run_robot,
)

SUITE = "suites/tool_conflicts/08__fault_injection.robot"
TWINS = ROBOT_DIR / "failing_twins" / "faults.robot"
BAD_INPUT = ROBOT_DIR / "bad_fault_input.robot"
DURATION = r"[\d.]+ (ns|µs|ms|s)"
UNKNOWN = r"(no operation had an unknown outcome|\d+ operations? with unknown outcome: \d+ had committed, \d+ had not)"

SUITE_TESTS = {
    "Deductions Survive Backends Terminated Mid-Transaction": [
        r"^[1-9]\d* connections hit; [1-9]\d* of \d+ deductions cut, \d+ succeeded\.$",
        r"^Credits match the ledger: 1000000 at the start minus (\d+) in \1 ledger rows is \d+, found \d+; "
        r"\d+ successful operations, all in it; [1-9]\d* operations? with unknown outcome: \d+ had committed, "
        r"\d+ had not( \(the table shows the first 20 of \d+\))?\.$",
    ],
    "Deductions Through A Partition Time Out, Then Resume After The Heal": [
        rf"^Fault proxy 'pg' healed after a {DURATION} partition\.$",
        rf"^Progress stalled for {DURATION} during the {DURATION} partition; operations succeeded again "
        rf"{DURATION} after it ended\.$",
        rf"^Credits match the ledger: .*; {UNKNOWN}( \(the table shows the first 20 of \d+\))?\.$",
    ],
    "Dropped Connections Cut Deductions In Flight And The Agents Reconnect": [
        r"^[1-9]\d* connections hit; [1-9]\d* of \d+ deductions cut, \d+ succeeded\.$",
        rf"^Credits match the ledger: .*; {UNKNOWN}( \(the table shows the first 20 of \d+\))?\.$",
        r"^Stopped fault proxy 'pg' \(.*\): \d+ connections, [1-9]\d* dropped, ",
    ],
    "Added Latency Raises The Median By About The Delay": [
        rf"^Added latency shows in the median: expected it up by 50\.0 ms \(± 25\.0 ms\), measured from {DURATION} "
        rf"to {DURATION}: up by {DURATION}\.$",
        r"^Increments match the ledger: \d+ at the start plus (\d+) in \1 ledger rows is \d+, found \d+; .*; "
        r"no operation had an unknown outcome\.$",
    ],
    "A Redis Pause Stalls Increments For About Its Length": [
        rf"^Progress stalled for {DURATION} during the 1\.00 s Redis pause; operations succeeded again",
    ],
    "Killed Redis Clients Reconnect Without Losing Or Doubling An Increment": [
        r"^[1-9]\d* Redis connections killed; [1-9]\d* increments retried on a new connection\.$",
        r"^Increments match the ledger: .*; no operation had an unknown outcome\.$",
    ],
}
TWIN_FAILURES = {
    "A Ledger Booked After The Commit Cannot Account For Every Credit": [
        r"^Credits do not match the ledger: 1000000 at the start minus \d+ in \d+ ledger rows is \d+, found \d+: "
        r"[1-9]\d* credits disappeared that no ledger row accounts for",
    ],
    "Latency At A Proxy The Agents Bypass Does Not Show": [
        rf"^Added latency does not show in the median: expected it up by 50\.0 ms \(± 20\.0 ms\), measured from "
        rf"{DURATION} to {DURATION}: up by -?{DURATION}, off by {DURATION}\.$",
    ],
    "A Partition The Agents Bypass Stalls Nothing": [
        rf"^Progress did not stall just for the {DURATION} partition: (the longest stall \({DURATION}\) was not during "
        rf"the partition|it lasted {DURATION}, {DURATION} off the partition's length)",
    ],
}
BAD_FAULT_INPUT = {
    "An Unknown Fault Is Refused": ["Unknown fault 'meltdown'", "latency, drop connections, partition and heal"],
    "A Fault At An Unknown Proxy Is Refused": ["No fault proxy named 'nowhere'", "running: 'pg'", "Start Fault Proxy"],
    "An Unknown Upstream Is Refused": ["postgresql or redis", "host:port", "'mysql'"],
    "A Proxy To A Port With Nothing Listening Is Refused": ["Fault proxy 'nowhere' cannot start", "connection refused"],
    "A Redis Pause Of 0 s Is Refused": ["pause must be longer than 0 s", "got 0 s"],
    "An Added Latency Of 0 s Is Refused": ["added latency must be longer than 0 s", "got 0 s"],
    "A Termination Bound Of 0 s Is Refused": ["within", "must be longer than 0 s", "got 0 s"],
    "A Fraction Over 100% Is Refused": ["fraction must be more than 0% and at most 100%", "'150%'"],
    "A Termination That Finds No Backend In A Transaction Fails Within Its Bound": [
        "No backend of this run",
        "in a transaction within 200.0 ms",
        "Launch Agents In Background",
    ],
}
QUICK = timedelta(seconds=5)


@pytest.fixture(scope="module")
def unreachable_port() -> int:
    return closed_port()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, unreachable_port: int) -> RobotRun:
    return run_robot(
        tmp_path_factory.mktemp("fault_injection"),
        SUITE,
        TWINS,
        BAD_INPUT,
        variables={"CLOSED_PORT": str(unreachable_port)},
    )


def _messages(run: RobotRun, test: str) -> list[str]:
    return [message.message for message in messages_in(run.test(test)) if not message.html]


def test_exactly_the_expected_tests_ran(run: RobotRun) -> None:
    assert set(run.tests) == set(SUITE_TESTS) | set(TWIN_FAILURES) | set(BAD_FAULT_INPUT)
    assert run.returncode == len(TWIN_FAILURES) + len(BAD_FAULT_INPUT), run.console


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, *SUITE_TESTS)


@pytest.mark.parametrize("name", sorted(SUITE_TESTS))
def test_the_suite_reports_what_it_measured(run: RobotRun, name: str) -> None:
    messages = _messages(run, name)
    for pattern in SUITE_TESTS[name]:
        assert any(re.search(pattern, message) for message in messages), f"{pattern!r} not among: {messages}"


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_a_seeded_bug_fails_in_its_check(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


@pytest.mark.parametrize("name", sorted(BAD_FAULT_INPUT))
def test_bad_input_fails_at_once_saying_what_to_fix(run: RobotRun, name: str) -> None:
    test = run.test(name)
    assert test.status == "FAIL", f"{name} should fail but {test.status}"
    missing = [part for part in BAD_FAULT_INPUT[name] if part not in test.message]
    assert not missing, f"{missing} not in: {test.message}"
    assert test.elapsed_time < QUICK, f"{name} took {test.elapsed_time}"


def test_the_address_nothing_listens_at_is_named(run: RobotRun, unreachable_port: int) -> None:
    message = run.test("A Proxy To A Port With Nothing Listening Is Refused").message
    assert f"127.0.0.1:{unreachable_port}" in message, message


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
