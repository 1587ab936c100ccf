"""Test case 2 end to end: the pool-exhaustion suite passes, its seeded-bug twins fail in their checks."""

from __future__ import annotations

import json
import re

import pytest
from robot.result import Keyword

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    keywords_in,
    messages_in,
    run_robot,
)

SUITE = "suites/tool_conflicts/02__connection_pool_exhaustion.robot"
TWINS = ROBOT_DIR / "failing_twins" / "pool.robot"
SERVED_TEST = "Fifty Agents Queue For Ten Connections And Are Served Within The Bounds"
REFUSING_TEST = "Acquires That Outwait A Short Timeout Are Refused, Counted, And The Pool Degrades Gracefully"
UNRELEASED_TEST = "A Tool That Never Releases Connections Is Caught Leaking From The Pool"
UNCLOSED_TEST = "A Tool That Never Closes Its Own Connections Is Caught Leaking On The Server"
DURATION = r"[\d.]+ (ns|µs|ms|s)"
# 50 agents, one operation each, every 10th leaks: 5 connections.
POOL_LEAK = (
    r"^Connections leaked: 5 still checked out of the pool after the run \(expected 0\), taken by agents "
    r"9, 19, 29, 39, 49 and never released; the other agents had 5 of 10 connections left\.$"
)
SERVER_LEAK = (
    r"^Connections leaked: pg_stat_activity shows (\d+) backends of this run after the tool closed its pool, "
    r"baseline (\d+): 5 connections left open \(5 opened beside the pool by agents 9, 19, 29, 39, 49 and never "
    r"closed\)\.$"
)
TWIN_FAILURES: dict[str, list[str]] = {
    "Connections Never Released Leak From The Pool": [POOL_LEAK],
    "Connections Never Closed Leak On The Server": [SERVER_LEAK],
    "A Pool Too Small For The Load Misses The Success Threshold": [
        r"^1 of 1 thresholds missed: success_rate >= 80\.00%: measured \d+\.\d+% over \d+ operations, "
        r"missed by [\d.]+ percentage points$"
    ],
    "Acquires Without A Bound Are Cut Off Instead Of Refused": [
        r"^Pool exhaustion did not degrade gracefully: [1-9]\d* of 50 operations \([\d.]+%\) were neither served nor "
        r"refused with an acquire timeout: [1-9]\d* timeout \(operation_timeout\)\.$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("pool_exhaustion"), SUITE, TWINS)


def _acquire_log(run: RobotRun, test: str) -> str:
    (message,) = [m.message for m in messages_in(run.test(test)) if m.message.startswith("Connection acquire times:")]
    return message


def _expected_failure(run: RobotRun, test: str) -> Keyword:
    (found,) = [
        kw
        for kw in keywords_in(run.test(test))
        if kw.name == "Connections Should Not Leak"
        and isinstance(kw.parent, Keyword)
        and kw.parent.name == "Run Keyword And Expect Error"
    ]
    return found


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, SERVED_TEST, REFUSING_TEST, UNRELEASED_TEST, UNCLOSED_TEST)
    assert run.child_suite("Connection Pool Exhaustion").status == "PASS"


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_with_numbers(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_only_the_twins_fail(run: RobotRun) -> None:
    assert run.returncode == len(TWIN_FAILURES), run.console
    assert {test.name for test in run.child_suite("Pool").tests} == set(TWIN_FAILURES)


def test_the_showcase_catches_both_leaks_with_numbers(run: RobotRun) -> None:
    pool = _expected_failure(run, UNRELEASED_TEST)
    assert pool.status == "FAIL" and re.search(POOL_LEAK, pool.message), pool.message
    server = _expected_failure(run, UNCLOSED_TEST)
    assert server.status == "FAIL", server.message
    match = re.search(SERVER_LEAK, server.message)
    assert match, server.message
    after, baseline = map(int, match.groups())
    assert after - baseline == 5


def test_acquire_times_are_logged_with_their_percentiles(run: RobotRun) -> None:
    for test in (SERVED_TEST, REFUSING_TEST):
        message = _acquire_log(run, test)
        assert re.search(rf"p50 {DURATION}, p90 {DURATION}, p95 {DURATION}, p99 {DURATION}, max {DURATION}", message)
        assert "over 100 acquires" in message, message


def test_acquire_timeouts_are_counted_when_the_timeout_is_shorter_than_the_queue(run: RobotRun) -> None:
    served = _acquire_log(run, SERVED_TEST)
    assert "; 0 of 100 operations (0.0%) refused with an acquire timeout." in served, served
    refused = re.search(r"; (\d+) of 100 operations \([\d.]+%\) refused", _acquire_log(run, REFUSING_TEST))
    assert refused and int(refused.group(1)) > 0


def test_thresholds_name_the_acquire_figures(run: RobotRun) -> None:
    tables = [m.message for m in messages_in(run.test(SERVED_TEST)) if m.html and ">Thresholds<" in m.message]
    assert tables and "acquire_p95 &lt; 1.50 s" in tables[0], tables


def test_histories_record_every_acquire_wait_and_each_refusal(run: RobotRun) -> None:
    (path,) = (run.output_dir / "histories").glob("Acquires_That_Outwait*.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 100
    assert all(record["timings"]["acquire"] > 0 for record in records)
    refused = [record for record in records if record["outcome"] == "timeout"]
    assert refused and all(record["error"] == "acquire_timeout" for record in refused)
    assert all(record["read"]["backend"] > 0 for record in records if record["outcome"] == "ok")


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
