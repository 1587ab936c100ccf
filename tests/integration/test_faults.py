"""Faults against real servers: terminated backends, killed and paused Redis clients, the TCP fault proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest
from redis import exceptions as rx

from stampede.checkers.fault_effects import check_stall
from stampede.checkers.ledger import check_ledger
from stampede.errors import ServiceUnavailable, StampedeError
from stampede.faults.backends import terminate_backends
from stampede.faults.proxy import Direction, FaultProxy
from stampede.faults.redis_clients import kill_clients, pause_clients
from stampede.faults.routing import RoutedPostgres, RoutedRedis, upstream_of
from stampede.launcher import LaunchPlan, start_launch
from stampede.metrics import percentile
from stampede.outcomes import Outcome
from stampede.services.postgres_target import PostgresTarget
from stampede.services.processes import free_port
from stampede.services.redis_target import RedisTarget, open_redis
from stampede.workloads.credits import create_accounts
from stampede.workloads.ledgered_credits import LedgeredCreditDeductionTool, LedgerWrite
from stampede.workloads.redis_counter import RedisCounterTool

from .support import wait_for_operations, with_target

T = TypeVar("T")
AGENTS = 10
LATENCY = 0.05


def with_redis(redis_url: str, run_id: str, body: Callable[[RedisTarget], Awaitable[T]]) -> T:
    async def run() -> T:
        target = await open_redis(redis_url, run_id=run_id)
        try:
            return await body(target)
        finally:
            await target.close()

    return asyncio.run(run())


async def ledgered_tool(
    target: PostgresTarget,
    *,
    ledger: LedgerWrite = LedgerWrite.IN_TRANSACTION,
    via: PostgresTarget | RoutedPostgres | None = None,
) -> LedgeredCreditDeductionTool:
    accounts = await create_accounts(target, 5, 100_000)
    return LedgeredCreditDeductionTool(via or target, accounts=accounts, ledger=ledger)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- terminated backends


def test_deductions_survive_terminated_backends_and_the_ledger_accounts_for_every_one(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = await ledgered_tool(target)
        running = start_launch(tool, LaunchPlan(agents=AGENTS, duration=2.0))
        await wait_for_operations(running, 50)
        terminated = []
        for _ in range(3):
            terminated += await terminate_backends(target, 0.5, in_transaction=True, within=2.0)
            await asyncio.sleep(0.2)
        result = await running.task
        cut = [op for op in result.history if op.outcome is Outcome.ERROR]
        assert terminated and all(backend.in_transaction for backend in terminated)
        assert 1 <= len(cut) <= len(terminated), (len(cut), len(terminated))
        assert {op.error for op in cut} <= {"08003", "57P01"}, {op.error for op in cut}
        for op in cut:  # the agent carried on with a fresh connection
            assert any(later.ok and later.agent == op.agent and later.start_ns > op.end_ns for later in result.history)
        verdict = check_ledger(result.history, await tool.ledger_snapshot(result.tool_settings["ledger key"]))
        assert verdict.passed, verdict.message
        assert "with unknown outcome" in verdict.message

    with_target(pg_dsn, run_id, body)


def test_a_ledger_booked_after_the_commit_is_caught_when_backends_are_terminated(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = await ledgered_tool(target, ledger=LedgerWrite.AFTER_COMMIT)
        running = start_launch(tool, LaunchPlan(agents=AGENTS, duration=2.0))
        await wait_for_operations(running, 50)
        for _ in range(4):
            await terminate_backends(target, 1.0, in_transaction=False, within=2.0)
            await asyncio.sleep(0.15)
        result = await running.task
        verdict = check_ledger(result.history, await tool.ledger_snapshot(result.tool_settings["ledger key"]))
        assert not verdict.passed
        assert "disappeared that no ledger row accounts for" in verdict.message, verdict.message

    with_target(pg_dsn, run_id, body)


def test_terminating_with_no_backend_in_a_transaction_fails_within_the_bound(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        started = time.monotonic()
        with pytest.raises(StampedeError, match=r"No backend of this run .* was in a transaction within 200\.0 ms"):
            await terminate_backends(target, 1.0, in_transaction=True, within=0.2)
        assert time.monotonic() - started < 2

    with_target(pg_dsn, run_id, body)


# --------------------------------------------------------------------------- Redis clients


def test_killed_redis_clients_reconnect_and_no_increment_is_lost_or_doubled(redis_url: str, run_id: str) -> None:
    async def body(target: RedisTarget) -> None:
        tool = RedisCounterTool(target)
        running = start_launch(tool, LaunchPlan(agents=AGENTS, duration=1.5))
        await wait_for_operations(running, 100)
        killed = []
        for _ in range(3):
            killed += await kill_clients(target, 1.0)
            await asyncio.sleep(0.2)
        result = await running.task
        assert killed and all(client.killed for client in killed)
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        assert sum(op.retries for op in result.history) >= 1, "a killed connection should have cost a retry"
        verdict = check_ledger(result.history, await tool.ledger_snapshot(result.tool_settings["ledger key"]))
        assert verdict.passed, verdict.message

    with_redis(redis_url, run_id, body)


def test_a_redis_pause_stalls_increments_for_about_its_length(redis_url: str, run_id: str) -> None:
    async def body(target: RedisTarget) -> None:
        tool = RedisCounterTool(target)
        running = start_launch(tool, LaunchPlan(agents=AGENTS, duration=2.0))
        await wait_for_operations(running, 100)
        pause = await pause_clients(target, 0.6)
        result = await running.task
        verdict = check_stall(result.history, "pause", pause.start_ns, pause.end_ns, tolerance=0.3)
        assert verdict.passed, verdict.message
        assert all(op.ok for op in result.history)

    with_redis(redis_url, run_id, body)


@pytest.mark.parametrize("seconds", [0.0, -1.0, 61.0])
def test_a_pause_of_no_length_or_too_long_is_refused(redis_url: str, run_id: str, seconds: float) -> None:
    async def body(target: RedisTarget) -> None:
        with pytest.raises(StampedeError, match="a Redis pause must be longer than 0 s and at most"):
            await pause_clients(target, seconds)

    with_redis(redis_url, run_id, body)


# --------------------------------------------------------------------------- the fault proxy


async def round_trips(connection: asyncpg.Connection, count: int = 15) -> float:
    """The median time of ``SELECT 1`` (one round trip), in seconds."""
    times = []
    for _ in range(count):
        started = time.monotonic()
        await connection.fetchval("SELECT 1")
        times.append(time.monotonic() - started)
    return percentile(sorted(times), 50)


def test_the_proxy_adds_latency_drops_connections_and_partitions_postgresql(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        proxy = FaultProxy("pg", *upstream_of(target.dsn, 5432, service="PostgreSQL"))
        await proxy.start()
        routed = RoutedPostgres(target, proxy)
        try:
            connection = await routed.connect()
            before = await round_trips(connection)
            proxy.add_latency(LATENCY, Direction.TO_CLIENT)
            rise = await round_trips(connection) - before
            assert LATENCY * 0.9 <= rise <= LATENCY * 1.6, f"p50 rose by {rise * 1000:.1f} ms"
            proxy.add_latency(LATENCY, Direction.BOTH)
            rise = await round_trips(connection, 5) - before
            assert 2 * LATENCY * 0.9 <= rise <= 2 * LATENCY * 1.6, f"p50 rose by {rise * 1000:.1f} ms"
            proxy.heal()

            proxy.partition()
            pending = asyncio.ensure_future(connection.fetchval("SELECT 2"))
            await asyncio.sleep(0.5)
            assert not pending.done(), "a partition must stall the query, not fail it"
            assert not connection.is_closed()
            proxy.heal()
            assert await asyncio.wait_for(pending, 5) == 2, "held data flows on after the heal"

            assert proxy.drop_connections() == 1
            with pytest.raises((asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError)):
                await connection.fetchval("SELECT 3")
            fresh = await routed.connect()
            assert await fresh.fetchval("SELECT 4") == 4
            await fresh.close()
            assert proxy.stats.accepted == 2 and proxy.stats.dropped == 1
        finally:
            await proxy.stop()
        assert proxy.open_connections == 0
        assert routed.dsn == target.dsn, "once the proxy stops, the routed target connects directly"

    with_target(pg_dsn, run_id, body)


def test_deductions_through_a_partition_time_out_then_progress_resumes_and_credits_match(
    pg_dsn: str, run_id: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        proxy = FaultProxy("pg", *upstream_of(target.dsn, 5432, service="PostgreSQL"))
        await proxy.start()
        try:
            tool = await ledgered_tool(target, via=RoutedPostgres(target, proxy))
            running = start_launch(tool, LaunchPlan(agents=AGENTS, duration=3.0, operation_timeout=0.4))
            await wait_for_operations(running, 50)
            proxy.partition()
            began = time.monotonic_ns()
            await asyncio.sleep(1.0)
            proxy.heal()
            healed = time.monotonic_ns()
            result = await running.task
        finally:
            await proxy.stop()
        timeouts = [op for op in result.history if op.outcome is Outcome.TIMEOUT]
        assert timeouts and all(began <= op.end_ns <= healed + 0.5e9 for op in timeouts)
        stall = check_stall(result.history, "partition", began, healed, tolerance=0.5)
        assert stall.passed, stall.message
        verdict = check_ledger(result.history, await tool.ledger_snapshot(result.tool_settings["ledger key"], target))
        assert verdict.passed, verdict.message

    with_target(pg_dsn, run_id, body)


def test_the_proxy_partitions_and_heals_redis(redis_url: str, run_id: str) -> None:
    async def body(target: RedisTarget) -> None:
        proxy = FaultProxy("redis", *upstream_of(target.url, 6379, service="Redis"))
        await proxy.start()
        routed = RoutedRedis(target, proxy)
        try:
            assert await routed.client.ping()
            proxy.partition()
            pending = asyncio.ensure_future(routed.client.incr(target.key("n")))
            await asyncio.sleep(0.4)
            assert not pending.done()
            proxy.heal()
            assert await asyncio.wait_for(pending, 5) == 1
            assert proxy.drop_connections() >= 1
            with pytest.raises(rx.ConnectionError):
                await routed.client.incr(target.key("n"))
            assert await routed.client.incr(target.key("n")) == 2, "redis-py reconnects on the next command"
        finally:
            await routed.close_route()
            await proxy.stop()

    with_redis(redis_url, run_id, body)


def test_a_proxy_to_a_port_with_nothing_listening_fails_at_start_naming_the_address() -> None:
    port = free_port()

    async def body() -> None:
        proxy = FaultProxy("nowhere", "127.0.0.1", port)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable, match=rf"'nowhere'.*127\.0\.0\.1:{port}.*connection refused"):
            await proxy.start()
        assert time.monotonic() - started < 3
        assert not proxy.running

    asyncio.run(body())
