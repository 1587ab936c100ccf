"""The connection-pool tool against a real PostgreSQL: it exhausts, refuses, leaks as seeded, and cleans up."""

from __future__ import annotations

from stampede.checkers.connection_leaks import check_backends_at_baseline, check_pool_returned
from stampede.checkers.pool_exhaustion import check_graceful_degradation
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.metrics import summarize
from stampede.outcomes import Outcome
from stampede.records.fields import ACQUIRE_TIMEOUT_ERROR
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.connection_pool import ConnectionLeak, ConnectionPoolTool

from .support import with_target

AGENTS = 20
POOL_SIZE = 5
HOLD = 0.05
LEAK_EVERY = 4


async def run_pool(
    target: PostgresTarget, iterations: int = 1, **settings: object
) -> tuple[ConnectionPoolTool, LaunchResult]:
    tool = ConnectionPoolTool(target, pool_size=POOL_SIZE, hold=HOLD, **settings)  # type: ignore[arg-type]
    return tool, await launch(tool, LaunchPlan(agents=AGENTS, iterations=iterations))


def test_more_agents_than_slots_queue_and_are_all_served_by_at_most_pool_size_backends(
    pg_dsn: str, run_id: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        tool, result = await run_pool(target, iterations=2, acquire_timeout=10.0)
        assert all(op.ok for op in result.history), [op.error for op in result.history]
        assert len({op.read["backend"] for op in result.history}) <= POOL_SIZE
        metrics = summarize(result).metrics
        assert metrics["acquire_count"] == 2 * AGENTS
        # 20 agents queue for 5 connections held 50 ms: the last of each round waits about 150 ms.
        assert metrics["acquire_max"] >= 3 * HOLD * 0.9
        assert tool.census is not None
        assert check_pool_returned(tool.census).passed
        assert check_backends_at_baseline(tool.census).passed
        assert tool.census.baseline_backends == tool.census.backends_after == 0

    with_target(pg_dsn, run_id, body)


def test_an_acquire_timeout_shorter_than_the_queue_refuses_gracefully(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        _, result = await run_pool(target, acquire_timeout=HOLD * 1.5)
        refused = [op for op in result.history if op.outcome is Outcome.TIMEOUT]
        assert refused and all(op.error == ACQUIRE_TIMEOUT_ERROR for op in refused)
        assert all(op.timings["acquire"] >= HOLD * 1.5 * 1e9 for op in refused)
        assert any(op.ok for op in result.history)
        assert check_graceful_degradation(result.history).passed

    with_target(pg_dsn, run_id, body)


def test_connections_never_released_are_counted_by_the_pool_then_reclaimed(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool, result = await run_pool(
            target, acquire_timeout=10.0, leak=ConnectionLeak.NEVER_RELEASED, leak_every=LEAK_EVERY
        )
        assert all(op.ok for op in result.history)
        leaked = AGENTS // LEAK_EVERY
        census = tool.census
        assert census is not None
        assert census.checked_out == len(census.unreleased) == leaked
        verdict = check_pool_returned(census)
        assert not verdict.passed and verdict.value == leaked
        assert check_backends_at_baseline(census).passed, "the pool closed, so its connections are gone"

    with_target(pg_dsn, run_id, body)


def test_connections_never_closed_are_seen_in_pg_stat_activity_then_closed(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool, _ = await run_pool(target, acquire_timeout=10.0, leak=ConnectionLeak.NEVER_CLOSED, leak_every=LEAK_EVERY)
        census = tool.census
        assert census is not None
        assert check_pool_returned(census).passed
        verdict = check_backends_at_baseline(census)
        assert not verdict.passed
        assert census.backends_after - census.baseline_backends == len(census.unclosed) == AGENTS // LEAK_EVERY

    with_target(pg_dsn, run_id, body)


def test_the_baseline_counts_the_runs_other_connections(pg_dsn: str, run_id: str) -> None:
    """A connection of the run open before and after the launch is baseline, not a leak."""

    async def body(target: PostgresTarget) -> None:
        other = await target.connect()
        try:
            tool, _ = await run_pool(target, acquire_timeout=10.0)
        finally:
            await other.close()
        assert tool.census is not None
        assert tool.census.baseline_backends == tool.census.backends_after == 1
        assert check_backends_at_baseline(tool.census).passed

    with_target(pg_dsn, run_id, body)
