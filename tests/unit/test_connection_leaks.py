"""Leak and pool-exhaustion checks on hand-made censuses and histories: each passes clean and fails broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.agents import BaseTool
from stampede.checkers import MAX_ROWS
from stampede.checkers.connection_leaks import (
    check_backends_at_baseline,
    check_connections_not_leaked,
    check_pool_returned,
)
from stampede.checkers.pool_exhaustion import check_graceful_degradation, describe_acquires
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.fields import ACQUIRE_TIMEOUT_ERROR
from stampede.records.snapshots import ConnectionCensus, LeakedConnection
from stampede.workloads.connection_pool import ConnectionLeak, ConnectionPoolTool
from stampede_robot.keywords.pools import PoolCheckKeywords
from stampede_robot.runtime import LaunchRecord, Runtime

MS = 1_000_000


def census(
    checked_out: int = 0, baseline: int = 10, after: int = 10, **named: tuple[LeakedConnection, ...]
) -> ConnectionCensus:
    return ConnectionCensus(
        pool_size=10, checked_out=checked_out, baseline_backends=baseline, backends_after=after, **named
    )


def holders(*agents: int) -> tuple[LeakedConnection, ...]:
    return tuple(LeakedConnection(agent, 0) for agent in agents)


def op(
    agent: int, outcome: Outcome = Outcome.OK, error: str | None = None, acquire_ms: float | None = 1.0
) -> Operation:
    timings = None if acquire_ms is None else {"acquire": int(acquire_ms * MS)}
    return Operation(agent, f"user-{agent}", "pool", 0, 0, 200 * MS, outcome, error=error, timings=timings)


def refused(agent: int, waited_ms: float = 300.0) -> Operation:
    return op(agent, Outcome.TIMEOUT, ACQUIRE_TIMEOUT_ERROR, waited_ms)


# --------------------------------------------------------------------------- the pool's view


def test_a_pool_with_nothing_checked_out_passes() -> None:
    verdict = check_pool_returned(census())
    assert verdict.passed and not verdict.inconclusive
    assert verdict.value == 0
    assert verdict.message == "No connection leaked from the pool: 0 of its 10 connections checked out after the run."


def test_connections_still_checked_out_fail_with_the_count_and_who_took_them() -> None:
    verdict = check_pool_returned(census(checked_out=3, unreleased=holders(4, 9, 17)))
    assert not verdict.passed
    assert verdict.value == 3
    assert verdict.miss == "3 connections leaked"
    assert verdict.message == (
        "Connections leaked: 3 still checked out of the pool after the run (expected 0), taken by agents 4, 9, 17 "
        "and never released; the other agents had 7 of 10 connections left."
    )
    assert verdict.details == [{"agent": agent, "iteration": 0} for agent in (4, 9, 17)]


def test_the_pools_count_fails_even_when_the_tool_cannot_name_the_holders() -> None:
    verdict = check_pool_returned(census(checked_out=1))
    assert not verdict.passed
    assert verdict.message.startswith("Connections leaked: 1 still checked out of the pool after the run (expected 0);")
    assert not verdict.details


def test_many_leaked_connections_are_capped_in_the_table_and_the_message_says_so() -> None:
    many = holders(*range(1, 31))
    verdict = check_pool_returned(census(checked_out=30, unreleased=many))
    assert len(verdict.details) == MAX_ROWS
    assert f"(the table shows the first {MAX_ROWS} of 30)" in verdict.message
    assert "and 20 more" in verdict.message


# --------------------------------------------------------------------------- the server's view


@pytest.mark.parametrize("after", [10, 8])
def test_backends_at_or_below_the_baseline_pass(after: int) -> None:
    verdict = check_backends_at_baseline(census(after=after))
    assert verdict.passed
    assert f"{after} backends of this run after the tool closed its pool, 10 before the launch" in verdict.message


def test_backends_above_the_baseline_fail_naming_the_connections_left_open() -> None:
    verdict = check_backends_at_baseline(census(after=13, unclosed=holders(2, 5, 8)))
    assert not verdict.passed
    assert verdict.miss == "3 backends over the baseline"
    assert verdict.message == (
        "Connections leaked: pg_stat_activity shows 13 backends of this run after the tool closed its pool, "
        "baseline 10: 3 connections left open (3 opened beside the pool by agents 2, 5, 8 and never closed)."
    )


def test_backends_above_the_baseline_fail_even_when_no_connection_is_named() -> None:
    verdict = check_backends_at_baseline(census(after=11))
    assert not verdict.passed
    assert verdict.message.endswith("baseline 10: 1 connection left open.")


def test_both_views_are_judged_separately() -> None:
    pool, server = check_connections_not_leaked(census(checked_out=2, after=10, unreleased=holders(1, 2)))
    assert not pool.passed and server.passed


# --------------------------------------------------------------------------- graceful degradation


def test_served_and_refused_operations_degrade_gracefully() -> None:
    verdict = check_graceful_degradation(History([op(1), op(2), refused(3)]))
    assert verdict.passed
    assert verdict.message == (
        "Pool exhaustion degraded gracefully: of 3 operations, 2 were served and 1 refused with an acquire "
        "timeout (33.3%); none failed in any other way."
    )


def test_operations_cut_off_or_failing_otherwise_are_not_graceful() -> None:
    history = History(
        [
            op(1),
            refused(2),
            op(3, Outcome.TIMEOUT, "operation_timeout", acquire_ms=None),
            op(4, Outcome.TIMEOUT, "operation_timeout", acquire_ms=None),
            op(5, Outcome.ERROR, "53300"),
        ]
    )
    verdict = check_graceful_degradation(history)
    assert not verdict.passed
    assert verdict.measured == "1 served, 1 refused, 3 otherwise failed of 5"
    assert verdict.message == (
        "Pool exhaustion did not degrade gracefully: 3 of 5 operations (60.0%) were neither served nor refused "
        "with an acquire timeout: 2 timeout (operation_timeout); 1 error (53300)."
    )
    assert verdict.details[0] == {
        "outcome": "timeout",
        "error code": "operation_timeout",
        "operations": 2,
        "agents": "3, 4",
    }


def test_nothing_to_judge_is_inconclusive() -> None:
    verdict = check_graceful_degradation(History())
    assert verdict.inconclusive


# --------------------------------------------------------------------------- acquire times


def test_acquire_times_include_the_waits_of_refused_acquires() -> None:
    history = History([op(agent, acquire_ms=agent * 10.0) for agent in range(1, 9)] + [refused(9), refused(10)])
    verdict = describe_acquires(history)
    assert verdict.passed and verdict.value == 2
    (row,) = verdict.details
    assert row["acquires"] == 10 and row["served"] == 8 and row["acquire timeouts"] == 2
    assert row["p50"] == "50.0 ms" and row["max"] == "300.0 ms"
    assert "2 of 10 operations (20.0%) refused with an acquire timeout" in verdict.message


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pool_size": 0}, r"pool_size must be at least 1 connection, got 0"),
        ({"hold": -1.0}, r"hold cannot be negative, got -1 s"),
        ({"acquire_timeout": 0.0}, r"acquire_timeout must be longer than 0 s, got 0 s"),
        ({"leak": ConnectionLeak.NEVER_RELEASED, "leak_every": 0}, r"leak_every must be at least 1"),
    ],
)
def test_a_pool_tool_that_cannot_work_is_refused_saying_what_to_fix(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ConnectionPoolTool(None, **settings)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- keywords asked the wrong thing


def _runtime_with(*tools: BaseTool) -> Runtime:
    runtime = Runtime()
    for number, tool in enumerate(tools, 1):
        runtime.launches.append(LaunchRecord(number, tool, None, None, Path()))  # type: ignore[arg-type]
    return runtime


def test_leak_check_of_a_launch_that_ran_another_tool_says_which_tool_counts() -> None:
    other = BaseTool()
    other.name = "deduct"
    keywords = PoolCheckKeywords(_runtime_with(other))
    with pytest.raises(ConfigurationError, match=r"Launch 1 ran 'deduct', not a connection pool tool"):
        keywords.connections_should_not_leak()


def test_leak_check_of_an_earlier_launch_of_the_same_tool_is_refused() -> None:
    tool = ConnectionPoolTool(None, name="hold")  # type: ignore[arg-type]
    tool.census = census()
    keywords = PoolCheckKeywords(_runtime_with(tool, tool))
    with pytest.raises(ConfigurationError, match=r"Launch 1's connection count was replaced by launch 2 of the same"):
        keywords.connections_should_not_leak(1)
