"""A check judges its own test's launch; a launch that did not run fails once, and checks depending on it say so."""

from __future__ import annotations

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_nothing_left_behind, run_robot

NOT_RUN = "Not judged: launch 2 of 'deduct' did not run, see test 'A Launch On Bad Input Fails Its Test With Its Cause'"
CAUSE = "agents must be at least 1, got 0"
# test name -> (status, substrings its message must contain)
EXPECTED: dict[str, tuple[str, list[str]]] = {
    "A Test With A Launch Passes Its Checks": ("PASS", []),
    # Before: judged the previous test's launch 1, and passed.
    "A Check Without A Launch Of Its Own Fails": (
        "FAIL",
        ["No launch in test 'A Check Without A Launch Of Its Own Fails' to judge: call Launch Agents first"],
    ),
    # Before: the conservation check judged launch 1 of another test, the thresholds too.
    "A Launch On Bad Input Fails Its Test With Its Cause": (
        "FAIL",
        [CAUSE, f"{NOT_RUN}: {CAUSE}"],
    ),
    # Before: "There is no launch 2; launches so far: 1 to 1."
    "A Later Test Judging The Launch That Did Not Run Is Told So": ("FAIL", [f"{NOT_RUN}: {CAUSE}"]),
    # Before: "No launch in test ... to judge": Robot refused the call before Stampede saw it.
    "A Launch Robot Refuses Is A Launch That Did Not Run": (
        "FAIL",
        [
            "Not judged: launch 3 of 'deduct' did not run, see test 'A Launch Robot Refuses Is A Launch That Did "
            "Not Run': ValueError: Argument 'agents' got value 'many' that cannot be converted to integer"
        ],
    ),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("launch_scope"), ROBOT_DIR / "launch_scope.robot")


def test_exactly_the_expected_tests_ran(run: RobotRun) -> None:
    assert set(run.tests) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_test_judges_its_own_launch(run: RobotRun, name: str) -> None:
    status, parts = EXPECTED[name]
    test = run.test(name)
    assert test.status == status, f"{name}: {test.status}: {test.message}"
    for part in parts:
        assert part in test.message, f"{part!r} not in: {test.message}"


def test_the_launch_that_did_not_run_fails_once_with_its_cause(run: RobotRun) -> None:
    """Its test's message gives the cause once as the launch's failure; each check after it only points back."""
    message = run.test("A Launch On Bad Input Fails Its Test With Its Cause").message
    assert message.count(NOT_RUN) == 2, message
    assert message.count(CAUSE) == 3, message


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
