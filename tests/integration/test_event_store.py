"""Event-sourced writes on a real PostgreSQL: the safe projector skips nothing, the naive one skips late commits."""

from __future__ import annotations

import time

import asyncpg
import pytest
from asyncpg.transaction import Transaction

from stampede.checkers.projection import check_projection_converged, check_read_your_writes_lag
from stampede.errors import ConfigurationError
from stampede.history import History
from stampede.launcher import LaunchPlan, launch
from stampede.services.postgres_target import PostgresTarget
from stampede.workloads.event_store import EventAppendTool
from stampede.workloads.event_store_schema import create_event_store
from stampede.workloads.projection_worker import ProjectionWorker, Projector

from .support import with_target

AGENTS = 20
ITERATIONS = 10
CONVERGENCE_BOUND = 5.0


def last_commit_ns(history: History) -> int:
    return max(int(op.written["committed_ns"]) for op in history if op.ok)


@pytest.mark.parametrize("projector", list(Projector), ids=lambda projector: projector.value)
def test_only_the_naive_projector_skips_events_under_concurrent_appends(
    pg_dsn: str, run_id: str, projector: Projector
) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = EventAppendTool(target, projector=projector, read_timeout=0.5)
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        assert all(op.ok for op in result.history), [op for op in result.history if not op.ok][:3]
        snapshot = await tool.converge(last_commit_ns(result.history) + int(CONVERGENCE_BOUND * 1e9))
        assert tool.worker is not None and not tool.worker.running
        assert len(snapshot.events) == AGENTS * ITERATIONS
        converged = check_projection_converged(result.history, snapshot, within=CONVERGENCE_BOUND)
        lag = check_read_your_writes_lag(result.history, bound=1.0)
        if projector is Projector.SAFE:
            assert converged.passed, converged.message
            assert lag.passed, lag.message
        else:
            assert not converged.passed and converged.message.startswith("Projection diverged: "), converged.message
            # 20 agents each holding a transaction up to 50 ms: about a third of the events commit late (measured).
            assert (converged.value or 0) >= 10, converged.message
            assert not lag.passed, lag.message

    with_target(pg_dsn, run_id, body)


async def _append_uncommitted(connection: asyncpg.Connection, store: str) -> tuple[Transaction, int]:
    transaction = connection.transaction()
    await transaction.start()
    seq = await connection.fetchval(
        "INSERT INTO es_events (store, stream, type, amount) VALUES ($1, 'user-1', 'credit', 1) RETURNING seq", store
    )
    return transaction, seq


@pytest.mark.parametrize("projector", list(Projector), ids=lambda projector: projector.value)
def test_an_event_that_commits_after_a_higher_one(pg_dsn: str, run_id: str, projector: Projector) -> None:
    """Step by step: A takes seq n, B takes n + 1, B commits, the worker polls, then A commits."""

    async def body(target: PostgresTarget) -> None:
        await create_event_store(target)
        applied_at: dict[int, int] = {}
        worker = ProjectionWorker(
            target,
            f"{run_id}-{projector.value}",
            projector,
            poll_interval=0.005,
            batch_size=100,
            max_catch_up=5.0,
            applied_at_ns=applied_at,
        )
        first, second = await target.connect(), await target.connect()
        try:
            await worker.start()
            early, early_seq = await _append_uncommitted(first, worker.store)
            late, late_seq = await _append_uncommitted(second, worker.store)
            assert late_seq > early_seq
            await late.commit()
            seen_late_alone = await worker.wait_applied(late_seq, 0.3)
            await early.commit()
            seen_early = await worker.wait_applied(early_seq, 0.5)
            if projector is Projector.NAIVE:
                assert seen_late_alone is not None, "the naive projector applies what it sees at once"
                assert seen_early is None, "the naive projector never comes back for the lower seq"
            else:
                assert seen_late_alone is None, "the safe projector holds seq n + 1 back while n is uncommitted"
                assert seen_early is not None and await worker.wait_applied(late_seq, 0.5) is not None
            worker.appends_done()
            await worker.wait_stopped(5.0)
            assert worker.caught_up and not worker.running
        finally:
            await worker.stop()
            await first.close()
            await second.close()

    with_target(pg_dsn, run_id, body)


def test_a_new_worker_resumes_from_the_checkpoint_and_applies_nothing_twice(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = EventAppendTool(target, commit_delay=0.01)
        first = await launch(tool, LaunchPlan(agents=10, iterations=5))
        await tool.converge(last_commit_ns(first.history) + int(CONVERGENCE_BOUND * 1e9))
        second = await launch(tool, LaunchPlan(agents=10, iterations=5))
        snapshot = await tool.converge(last_commit_ns(second.history) + int(CONVERGENCE_BOUND * 1e9))
        both = History([*first.history, *second.history])
        verdict = check_projection_converged(both, snapshot, within=CONVERGENCE_BOUND)
        assert verdict.passed, verdict.message
        assert len(snapshot.applied) == len(snapshot.events) == 100

    with_target(pg_dsn, run_id, body)


def test_the_worker_stops_by_itself_after_the_launch(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = EventAppendTool(target, commit_delay=0.0, max_catch_up=5.0)
        await launch(tool, LaunchPlan(agents=5, iterations=3))
        assert tool.worker is not None
        await tool.worker.wait_stopped(5.0)
        assert not tool.worker.running and tool.worker.caught_up
        assert tool.worker.describe_state() == "caught up and stopped"

    with_target(pg_dsn, run_id, body)


def test_a_worker_whose_connection_is_killed_stops_and_says_why(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_event_store(target)
        worker = ProjectionWorker(
            target, run_id, Projector.SAFE, poll_interval=0.01, batch_size=10, max_catch_up=5.0, applied_at_ns={}
        )
        await worker.start()
        admin = await target.connect()
        try:
            assert worker._connection is not None
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", worker._connection.get_server_pid())
            await worker.wait_stopped(5.0)
        finally:
            await admin.close()
            await worker.stop()
        assert not worker.running
        assert worker.describe_state().startswith("failed: "), worker.describe_state()
        started = time.monotonic()
        assert await worker.wait_applied(1, 5.0) is None
        assert time.monotonic() - started < 0.1, "a stopped worker answers at once"

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"streams": 0}, "at least 1 stream, got 0"),
        ({"poll_interval": 0}, "poll interval must be longer than 0 s"),
        ({"read_timeout": -1}, "read timeout must be longer than 0 s"),
        ({"commit_delay": -0.1}, "commit delay cannot be negative"),
    ],
)
def test_bad_settings_are_refused_with_what_to_fix(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        EventAppendTool(None, **settings)  # type: ignore[arg-type]
