"""The postgres_isolation suite end to end: our own specs match their expected outputs, on the server at hand.

The embedded pass runs it on the bundled PostgreSQL; the external pass (with
``STAMPEDE_PG_DSN`` set) on the user's server, PostgreSQL 15 here.
"""

from __future__ import annotations

import re

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    logged,
    messages_in,
    run_robot,
)

SUITE = "suites/postgres_isolation"
TWINS = ROBOT_DIR / "failing_twins" / "postgres_isolation.robot"
TESTS = 10
WALL_TIME_BOUND = 60.0
SERIALIZATION = "could not serialize access due to concurrent update"
TWIN_FAILURES = {
    "Claiming The Lost Update Leaves The Counter At 12": [
        r"^The output of lost_update\.spec matches none of lost_update_claims_12\.out: the diff against "
        r"lost_update_claims_12\.out is in the log\.$"
    ],
    "Claiming The First Write Released The Second Writer": [
        r"^Step s2w \(s2: UPDATE iso_counter SET hits = hits \+ 1 WHERE id = 1;\) was released by s1a, not by s1w: "
        r"it blocked waiting for s1 for [\d.]+ (µs|ms|s) \(released by s1a\), then succeeded with UPDATE 1\.$"
    ],
    "Claiming The Serialization Failure Says Something Else": [
        rf"^Step s2w \(s2: .*\) failed with 40001 but the message was '{SERIALIZATION}', expected 'could not "
        r"serialize access due to read/write dependencies'\.$"
    ],
    "Claiming The Deferrable Reader Waited For A Lock": [
        r"^The timeline of permutation 'wread wwrite rbegin rread wc rc' shows wread completed, wwrite completed, "
        r"rbegin completed, rread blocked, wc completed, rread resumed, rc completed; expected wread completed, "
        r"wwrite completed, rbegin completed, rread completed\.$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("postgres_isolation"), SUITE, TWINS)


def test_every_spec_matches_its_expected_output_within_the_wall_time_bound(run: RobotRun) -> None:
    suite = run.child_suite("Postgres Isolation")
    statuses = {test.name: f"{test.status}: {test.message}" for test in suite.all_tests}
    assert len(statuses) == TESTS, sorted(statuses)
    assert all(status == "PASS: " for status in statuses.values()), statuses
    assert run.seconds < WALL_TIME_BOUND


def test_a_match_names_the_expected_file_it_matched(run: RobotRun) -> None:
    found = logged(run, "A Lost Update Is Refused At Repeatable Read", r"The output of (\S+) matches (\S+)\.$")
    assert [(m.group(1), re.sub(r".*/", "", m.group(2))) for m in found] == [("lost_update.spec", "lost_update.out")]


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_assertion_saying_what_really_happened(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_a_mismatch_logs_the_diff_against_the_expected_file(run: RobotRun) -> None:
    html = [m.message for m in messages_in(run.test("Claiming The Lost Update Leaves The Counter At 12")) if m.html]
    (diff,) = [text for text in html if "lost_update_claims_12.out" in text]
    assert "- 1|  12\n+ 1|  11\n" in diff


def test_the_suite_leaves_nothing_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
