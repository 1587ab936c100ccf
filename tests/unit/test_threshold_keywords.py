"""The threshold keywords over a launch: a figure of no samples is never a number that passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.agents import BaseTool
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.launcher import LaunchPlan, LaunchResult
from stampede.metrics import summarize_history
from stampede.outcomes import Outcome
from stampede_robot.keywords.thresholds import ThresholdKeywords
from stampede_robot.runtime import LaunchRecord, Runtime

MS = 1_000_000


@pytest.fixture(autouse=True)
def _no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keywords record verdicts for the run's report; outside a run there is none."""
    monkeypatch.setattr("stampede_robot.keywords.thresholds.findings.judged", lambda *_: None)


def _keywords(*operations: Operation) -> ThresholdKeywords:
    runtime = Runtime()
    history = History(list(operations))
    result = LaunchResult("deduct", {}, LaunchPlan(agents=1), history, 0, 1, [], "asyncio")
    runtime.launches.append(LaunchRecord(1, BaseTool(), result, summarize_history(history, 1.0), Path("h.jsonl")))
    return ThresholdKeywords(runtime)


def _failed(agent: int) -> Operation:
    return Operation(agent, f"user-{agent}", "deduct", 0, 0, MS, Outcome.ERROR)


def test_a_threshold_over_no_successful_operation_fails_as_nothing_to_measure() -> None:
    """Before: a service failing every operation at once passed 'p99 < 10ms'."""
    keywords = _keywords(*(_failed(agent) for agent in range(1, 6)))
    with pytest.raises(AssertionError) as failed:
        keywords.thresholds_should_hold("all_p99 < 10ms", "p99 < 10ms")
    assert str(failed.value) == (
        "1 of 2 thresholds had nothing to measure: "
        "p99 < 10.0 ms: nothing to measure, there were 0 successful operations (of 5)"
    )


def test_no_threshold_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="Give at least one threshold"):
        _keywords(_failed(1)).thresholds_should_hold()


def test_get_metric_of_no_samples_fails_rather_than_returning_zero() -> None:
    keywords = _keywords(_failed(1))
    with pytest.raises(AssertionError, match=r"^p99 of launch 1: nothing to measure, there were 0 successful"):
        keywords.get_metric("p99")
    assert keywords.get_metric("all_p99") == pytest.approx(0.001)
    assert keywords.get_metric("Errors") == 1
