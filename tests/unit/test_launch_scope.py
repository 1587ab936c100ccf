"""Which launch a check judges: its own test's, its suite setup's, never an earlier test's; released suites say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.agents import BaseTool
from stampede.errors import ConfigurationError, StampedeError
from stampede.history import History
from stampede.launcher import LaunchPlan, LaunchResult
from stampede_robot.runtime import LaunchRecord, Runtime, Scope

SUITE = "Suites.Locks"
SETUP = Scope(SUITE)
FIRST = Scope(SUITE, "First")
SECOND = Scope(SUITE, "Second")


def _launch(runtime: Runtime, scope: Scope | None) -> LaunchRecord:
    result = LaunchResult("deduct", {}, LaunchPlan(agents=1), History(), 0, 1, [], "asyncio")
    record = LaunchRecord(runtime.next_launch_number(), BaseTool(), result, None, Path("h.jsonl"), scope)  # type: ignore[arg-type]
    runtime.launches.append(record)
    return record


def test_a_check_judges_the_latest_launch_of_its_own_test() -> None:
    runtime = Runtime()
    own = _launch(runtime, FIRST)
    _launch(runtime, SECOND)
    assert runtime.current_launch(FIRST) is own


def test_a_test_without_a_launch_of_its_own_never_judges_an_earlier_tests() -> None:
    """Before, a check with launch=None judged the run's latest launch, whoever made it."""
    runtime = Runtime()
    _launch(runtime, FIRST)
    with pytest.raises(StampedeError, match=r"^No launch in test 'Second' to judge: call Launch Agents first"):
        runtime.current_launch(SECOND)


def test_a_test_without_a_launch_judges_its_suite_setups() -> None:
    runtime = Runtime()
    shared = _launch(runtime, SETUP)
    assert runtime.current_launch(FIRST) is shared
    assert runtime.current_launch(Scope(f"{SUITE}.Child", "Inner")) is shared  # a setup of a suite around it
    assert Scope("Suites.Other", "Inner").inherits(SETUP) is False


def test_a_suite_teardown_judges_the_latest_launch_of_its_suite() -> None:
    runtime = Runtime()
    _launch(runtime, FIRST)
    latest = _launch(runtime, SECOND)
    _launch(runtime, Scope("Suites.Other", "Elsewhere"))
    assert runtime.current_launch(SETUP) is latest


def test_outside_robot_a_check_judges_the_latest_launch() -> None:
    runtime = Runtime()
    _launch(runtime, FIRST)
    latest = _launch(runtime, None)
    assert runtime.current_launch(None) is latest


def test_a_launch_that_did_not_run_is_named_by_the_checks_depending_on_it() -> None:
    runtime = Runtime()
    _launch(runtime, FIRST)
    runtime.did_not_run("deduct", FIRST, "agents must be at least 1, got 0")
    expected = "^Not judged: launch 2 of 'deduct' did not run, see test 'First': agents must be at least 1, got 0$"
    with pytest.raises(StampedeError, match=expected):
        runtime.current_launch(FIRST)
    with pytest.raises(StampedeError, match=expected):
        runtime.launch(2)
    with pytest.raises(ConfigurationError, match=r"^There is no launch 3; launches that ran: 1\.$"):
        runtime.launch(3)


def test_a_finished_suites_histories_are_released_but_its_summary_stays() -> None:
    runtime = Runtime()
    record = _launch(runtime, FIRST)
    other = _launch(runtime, Scope("Suites.Other", "Elsewhere"))
    runtime.release_suite(SUITE)
    assert record.released and not other.released
    assert len(record.result.history) == 0 and record.tool.name == "tool"
    with pytest.raises(StampedeError, match=r"^Launch 1 was made in test 'First', whose suite has finished"):
        runtime.launch(1)
