"""The postgres_isolation suite end to end: our own specs match their expected outputs, on the server at hand.

The embedded pass runs it on the bundled PostgreSQL; the external pass (with
``STAMPEDE_PG_DSN`` set) on the user's server, PostgreSQL 15 here.
"""

from __future__ import annotations

import re

import pytest

from .conftest import RobotRun, assert_nothing_left_behind, logged, run_robot

SUITE = "suites/postgres_isolation"
TESTS = 10
WALL_TIME_BOUND = 60.0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("postgres_isolation"), SUITE)


def test_every_spec_matches_its_expected_output_within_the_wall_time_bound(run: RobotRun) -> None:
    statuses = {test.name: f"{test.status}: {test.message}" for test in run.suite.all_tests}
    assert len(statuses) == TESTS, sorted(statuses)
    assert all(status == "PASS: " for status in statuses.values()), statuses
    assert run.seconds < WALL_TIME_BOUND


def test_a_match_names_the_expected_file_it_matched(run: RobotRun) -> None:
    found = logged(run, "A Lost Update Is Refused At Repeatable Read", r"The output of (\S+) matches (\S+)\.$")
    assert [(m.group(1), re.sub(r".*/", "", m.group(2))) for m in found] == [("lost_update.spec", "lost_update.out")]


def test_the_suite_leaves_nothing_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
