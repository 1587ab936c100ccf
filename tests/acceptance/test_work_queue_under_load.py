"""Test case 7 end to end: the queue suite passes, logging its numbers; its seeded-bug twins fail in their checks."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from robot.result import Keyword

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    keywords_in,
    logged,
    run_robot,
)

SUITE = "suites/tool_conflicts/07__work_queue_under_load.robot"
TWINS = ROBOT_DIR / "failing_twins" / "queues.robot"
EXACTLY_ONCE_TESTS = [
    "PostgreSQL Queue Claimed With SKIP LOCKED Processes Every Item Exactly Once",
    "Redis Queue Popped Atomically Processes Every Item Exactly Once",
]
PRIORITY_TESTS = [
    "Higher Priorities Are Not Starved Behind Lower Ones On PostgreSQL",
    "Higher Priorities Are Not Starved Behind Lower Ones On Redis",
]
OVERFLOW_TESTS = [
    "PostgreSQL Queue Refuses And Reports Offers Beyond Its Capacity",
    "Redis Queue Refuses And Reports Offers Beyond Its Capacity",
]
NAIVE_TEST = "Naive Claim Processes Items Twice And Stampede Catches It"
SUITE_TESTS = [*EXACTLY_ONCE_TESTS, *PRIORITY_TESTS, *OVERFLOW_TESTS, NAIVE_TEST]
DURATION = r"[\d.]+ (?:ns|µs|ms|s)"
TWICE = (
    r"^Items processed twice: expected each item processed once, but [1-9]\d* of 60 items were processed more "
    r"than once \([1-9]\d* extra runs?\): item \d+ by agents \d+, \d+"
)
OVERFILLED = (
    r"^Overflow not handled: accepted beyond capacity: (1[1-9]|[2-9]\d) items were waiting at once in a "
    r"queue of capacity 10 \([1-9]\d* too many, "
)
TWIN_FAILURES: dict[str, list[str]] = {
    "Naive Claim On PostgreSQL Processes Items Twice": [TWICE],
    "Naive Claim On Redis Processes Items Twice": [TWICE],
    "Oldest-First Claim Starves Higher Priorities": [
        r"^Priorities not respected: [1-9]\d* of 60 claims took a lower-priority item while a higher-priority one "
        rf"was waiting \(bound 0\)\. First: agent \d+ claimed item \d+ \(priority 1\) while item \d+ \(priority 10\) "
        rf"had waited {DURATION}",
    ],
    "Count Then Insert Overfills The PostgreSQL Queue": [OVERFILLED],
    "Count Then Insert Overfills The Redis Queue": [OVERFILLED],
    "A Queue That Never Fills Cannot Show Overflow Handling": [
        r"^Overflow never happened: none of 60 offers was refused and at most \d+ items were certainly waiting at once "
        r"\(capacity 1000\)\. Make the producers outrun the consumers, or lower the capacity, to exercise it\.$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("work_queue"), SUITE, TWINS)


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, *SUITE_TESTS)
    assert run.child_suite("Work Queue Under Load").status == "PASS"


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_with_numbers(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_only_the_twins_fail(run: RobotRun) -> None:
    assert run.returncode == len(TWIN_FAILURES), run.console
    assert {test.name for test in run.child_suite("Queues").tests} == set(TWIN_FAILURES)


@pytest.mark.parametrize("name", SUITE_TESTS)
def test_every_test_logs_the_queue_throughput_in_items_per_second(run: RobotRun, name: str) -> None:
    (match,) = logged(run, name, rf"^Queue throughput: ([\d.]+) items/s \((\d+) items processed in {DURATION}\)\.$")
    assert float(match.group(1)) > 0 and int(match.group(2)) > 0


@pytest.mark.parametrize("name", EXACTLY_ONCE_TESTS + PRIORITY_TESTS)
def test_every_item_is_processed_once_by_many_consumers(run: RobotRun, name: str) -> None:
    (lost,) = logged(
        run,
        name,
        r"^No item lost: all 500 accepted items were processed, by (\d+) consumers; "
        r"0 offers refused as full\.$",
    )
    assert int(lost.group(1)) > 1
    assert logged(run, name, r"^No item processed twice: 500 items processed, each exactly once, by \d+ consumers\.$")


@pytest.mark.parametrize("name", PRIORITY_TESTS)
def test_higher_priorities_wait_less_and_are_never_passed_over(run: RobotRun, name: str) -> None:
    assert logged(run, name, r"^Priorities respected: 0 priority inversions in 500 claims \(bound 0\)")
    (waits,) = logged(
        run,
        name,
        rf"^Higher priorities waited no longer than lower ones: p95 wait priority 10: "
        rf"({DURATION}), priority 5: ({DURATION}), priority 1: ({DURATION})",
    )
    high, _, low = (_seconds(text) for text in waits.groups())
    assert high < low, waits.group(0)


@pytest.mark.parametrize("name", OVERFLOW_TESTS)
def test_overflow_is_refused_counted_and_never_accepted(run: RobotRun, name: str) -> None:
    (overflow,) = logged(
        run,
        name,
        r"^Overflow refused and reported: (\d+) of 500 offers refused \([\d.]+%\), "
        r"peak (\d+) waiting of capacity 20; every refusal answered queue_full",
    )
    refused, peak = map(int, overflow.groups())
    assert refused > 0 and peak <= 20
    (lost,) = logged(
        run,
        name,
        r"^No item lost: all (\d+) accepted items were processed, by \d+ consumers; "
        r"(\d+) offers refused as full\.$",
    )
    assert int(lost.group(1)) + int(lost.group(2)) == 500 and int(lost.group(2)) == refused


def test_the_naive_claim_is_caught_with_the_duplicated_ids(run: RobotRun) -> None:
    checks = keywords_in(run.test(NAIVE_TEST))
    (check,) = [kw for kw in checks if kw.name == "Every Item Should Be Processed Exactly Once"]
    assert isinstance(check.parent, Keyword) and check.parent.name == "Run Keyword And Expect Error"
    assert check.status == "FAIL" and check.parent.status == "PASS"
    match = re.search(
        r"^Items processed twice: expected each item processed once, but ([1-9]\d*) of 100 items were "
        r"processed more than once \(([1-9]\d*) extra runs?\): item \d+ by agents \d+, \d+",
        check.message,
    )
    assert match, check.message
    (caught,) = logged(run, NAIVE_TEST, r"^Stampede caught (\d+) items processed more than once\.$")
    assert caught.group(1) == match.group(1)


def test_histories_record_each_offer_and_each_processing(run: RobotRun) -> None:
    (path,) = (run.output_dir / "histories").glob("PostgreSQL_Queue_Claimed_With_SKIP_LOCKED*.jsonl")
    written = [json.loads(line).get("written") for line in path.read_text(encoding="utf-8").splitlines()]
    offers = [w for w in written if w["role"] == "producer"]
    processed = [w["item"] for w in written if w["role"] == "consumer" and w["item"] is not None]
    assert len(offers) == 500 and Counter(w["priority"] for w in offers) == {1: 167, 5: 167, 10: 166}
    assert sorted(processed) == sorted(w["item"] for w in offers)
    assert len(written) == 500 + 500 + 20, "one last operation per consumer that found the queue drained"


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)


def _seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
