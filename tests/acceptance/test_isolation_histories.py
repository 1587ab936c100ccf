"""The isolation-histories suite end to end: each PostgreSQL level judged from its random history, the twins fail."""

from __future__ import annotations

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_failed_with, assert_nothing_left_behind, messages_in, run_robot

SUITE = "suites/isolation_histories"
TWINS = ROBOT_DIR / "failing_twins" / "isolation_histories.robot"
TESTS = 8
FOUND = r"\(1000 transactions: \d+ committed, \d+ failed\)"
TWIN_FAILURES = {
    "Claiming Repeatable Read Is Serializable": [
        rf"^The history is not serializable: it shows [1-9]\d* G2-item, which serializable forbids {FOUND}\. "
        r"For example, G2-item: (T\d+ → )+T\d+: T\d+ read key \d+ as \[[^]]*\][^;]*; T\d+ appended \d+",
    ],
    "Claiming Read Committed Is Snapshot Isolation": [
        r"^The history is not snapshot isolation: it shows .*[1-9]\d* G-single.*, which snapshot isolation forbids",
    ],
    "Claiming Serializable Shows Write Skew": [
        rf"^Expected the history to show G2-item, found none {FOUND}; it shows no anomaly at all\.$",
    ],
    "Claiming Commands Sent One By One Are Read Committed": [
        r"^The history is not read committed: it shows .*[1-9]\d* G1b.*, which read committed forbids "
        r"\(400 transactions: 400 committed, 0 failed\)\.",
    ],
    "Judging A Launch In Which Nothing Committed": [
        r"^Not judged against serializable: none of its 10 transactions committed \(each failed or ended unknown\) "
        r"\(10 transactions: 0 committed, 0 failed, 10 of unknown outcome left out",
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("isolation_histories"), SUITE, TWINS)


def test_every_level_is_judged_as_the_model_postgresql_promises(run: RobotRun) -> None:
    suite = run.child_suite("Isolation Histories")
    statuses = {test.name: f"{test.status}: {test.message}" for test in suite.all_tests}
    assert len(statuses) == TESTS, sorted(statuses)
    assert all(status == "PASS: " for status in statuses.values()), statuses


def test_each_anomaly_found_is_logged_with_its_cycle_drawn_and_explained(run: RobotRun) -> None:
    test = run.test("Write Skew Shows At Repeatable Read")
    html = [m.message for m in messages_in(test) if m.html]
    assert any("<svg" in message and "G2-item" in message and ">rw<" in message for message in html), html
    assert any("models ruled out" in message and "serializable" in message for message in html)


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_saying_what_the_history_showed(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
