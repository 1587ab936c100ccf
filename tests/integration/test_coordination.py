"""Two-phase commit and sagas against real servers: faults leave no partial state, and the checkers see the bugs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import TypeVar

import asyncpg
import pytest

from stampede.checkers.atomicity import check_all_or_nothing, check_none_in_doubt, check_sagas, launch_batch
from stampede.checkers.conservation import check_conservation
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, launch
from stampede.services.postgres_target import PostgresTarget, open_postgres
from stampede.services.redis_target import open_redis
from stampede.workloads.saga import Compensation, SagaStep, SagaTool
from stampede.workloads.two_phase_commit import CommitProtocol, CoordinatorFault, TwoPhaseCommitTool

T = TypeVar("T")
AGENTS = 8
ITERATIONS = 5
RATE = Fraction(2, 5)
FAULTED = int(AGENTS * ITERATIONS * RATE)  # the schedule is exact: 16 of 40
# fault -> (gids recovery commits, gids it rolls back) per faulted operation
RECOVERED = {
    CoordinatorFault.BILLING_REFUSES: (0, 0),
    CoordinatorFault.CRASH_AFTER_FIRST_PREPARE: (0, 1),
    CoordinatorFault.CRASH_BEFORE_DECISION: (0, 2),
    CoordinatorFault.CRASH_AFTER_DECISION: (2, 0),
    CoordinatorFault.CRASH_AFTER_FIRST_COMMIT: (1, 0),
}


def with_target(pg_dsn: str, run_id: str, body: Callable[[PostgresTarget], Awaitable[T]]) -> T:
    """Run ``body`` on a fresh target, then prove the run left no schema, backend or prepared transaction."""

    async def run() -> T:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:
            return await body(target)
        finally:
            await target.close()
            observer = await asyncpg.connect(pg_dsn)
            try:
                schemas = await observer.fetchval(
                    "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1", f"stampede\\_{run_id}%"
                )
                prepared = await observer.fetchval(
                    "SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE $1", f"stampede-{run_id}-%"
                )
            finally:
                await observer.close()
            assert (schemas, prepared) == (0, 0), "the run left schemas or prepared transactions behind"

    return asyncio.run(run())


async def require_prepared_transactions(target: PostgresTarget) -> None:
    setting = await target.fetch_setting("max_prepared_transactions")
    if setting == "0":
        pytest.skip(f"this server has max_prepared_transactions = {setting}: two-phase commit is disabled there")


def test_extra_schemas_are_dropped_with_their_prepared_transactions(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        name = await target.create_schema("orders")
        assert name == f"{target.schema}_orders"
        assert await target.create_schema("orders") == name  # idempotent
        with pytest.raises(ConfigurationError, match="suffix must be a-z"):
            await target.create_schema("Orders; DROP")
        with pytest.raises(ConfigurationError, match="at most 63 characters"):
            await target.create_schema("x" * 60)
        connection = await target.connect()
        try:
            await connection.execute(f"CREATE TABLE {name}.t (x int)")
            if await target.fetch_setting("max_prepared_transactions") != "0":
                await connection.execute(
                    f"BEGIN; INSERT INTO {name}.t VALUES (1); PREPARE TRANSACTION 'stampede-{target.run_id}-x'"
                )
        finally:
            await connection.close()

    with_target(pg_dsn, run_id, body)  # asserts the schema and the prepared transaction are gone


@pytest.mark.parametrize("fault", list(RECOVERED), ids=lambda fault: fault.value.replace(" ", "_"))
def test_two_phase_commit_is_all_or_nothing_after_recovery(pg_dsn: str, run_id: str, fault: CoordinatorFault) -> None:
    async def body(target: PostgresTarget) -> None:
        await require_prepared_transactions(target)
        tool = TwoPhaseCommitTool(target, fault=fault, fault_rate=RATE)
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        history = result.history
        assert sum(op.written["fault"] == fault.value for op in history) == FAULTED
        assert sum(op.ok for op in history) == AGENTS * ITERATIONS - FAULTED
        batch = launch_batch(history)
        assert batch == tool.batch

        before = await tool.observe(batch)
        commits, rollbacks = RECOVERED[fault]
        assert len(before.in_doubt) == FAULTED * (commits + rollbacks)
        assert check_none_in_doubt(history, before).passed == (commits + rollbacks == 0)
        # Until recovery carries a logged decision out, the operation is committed nowhere or on orders alone.
        assert check_all_or_nothing(history, before).passed == (commits == 0)

        recovery = await tool.recover()
        assert (len(recovery.committed), len(recovery.rolled_back)) == (FAULTED * commits, FAULTED * rollbacks)
        after = await tool.observe(batch)
        verdict = check_all_or_nothing(history, after)
        assert verdict.passed, verdict.message
        assert check_none_in_doubt(history, after).passed
        applied = len(after.applied["orders"])
        assert applied == AGENTS * ITERATIONS - (FAULTED if commits == 0 else 0), verdict.message
        assert after.decided == after.applied["orders"] == after.applied["billing"]
        assert await target.backends() == 0, "crashed coordinators' connections must be gone"

    with_target(pg_dsn, run_id, body)


def test_naive_coordinator_leaves_partial_state_that_is_caught(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool = TwoPhaseCommitTool(
            target, protocol=CommitProtocol.NAIVE, fault=CoordinatorFault.CRASH_AFTER_FIRST_COMMIT, fault_rate=RATE
        )
        result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
        state = await tool.observe(tool.batch)
        verdict = check_all_or_nothing(result.history, state)
        assert not verdict.passed
        assert verdict.value == FAULTED
        assert f"{FAULTED} partial: on orders only" in verdict.message, verdict.message

    with_target(pg_dsn, run_id, body)


def test_two_phase_commit_refuses_a_server_that_cannot_prepare_enough(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        allowed = int(await target.fetch_setting("max_prepared_transactions"))
        tool = TwoPhaseCommitTool(target)
        with pytest.raises(ConfigurationError, match=rf"max_prepared_transactions = {allowed}\b.*at least"):
            await launch(tool, LaunchPlan(agents=allowed // 2 + 1))

    with_target(pg_dsn, run_id, body)


def test_two_phase_commit_counts_slots_taken_by_unresolved_transactions(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        await require_prepared_transactions(target)
        allowed = int(await target.fetch_setting("max_prepared_transactions"))
        connection = await target.connect()
        try:
            await connection.execute("CREATE TABLE held (x int)")
            for number in range(4):
                await connection.execute(
                    f"BEGIN; INSERT INTO held VALUES ({number}); PREPARE TRANSACTION 'stampede-{run_id}-held-{number}'"
                )
        finally:
            await connection.close()
        with pytest.raises(ConfigurationError, match=r"of them taken by transactions already prepared"):
            await launch(TwoPhaseCommitTool(target), LaunchPlan(agents=(allowed - 2) // 2))

    with_target(pg_dsn, run_id, body)  # close() rolls the held ones back


def test_bad_coordinator_settings_are_refused(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        with pytest.raises(ConfigurationError, match=r"naive protocol .* 'crash before decision'"):
            TwoPhaseCommitTool(target, protocol=CommitProtocol.NAIVE, fault=CoordinatorFault.CRASH_BEFORE_DECISION)
        with pytest.raises(ConfigurationError, match="amount must be at least 1"):
            TwoPhaseCommitTool(target, amount=0)

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize("compensation", list(Compensation), ids=lambda mode: mode.value.replace(" ", "_"))
def test_saga_compensation_leaves_no_partial_state(
    pg_dsn: str, redis_url: str, run_id: str, compensation: Compensation
) -> None:
    async def body(target: PostgresTarget) -> None:
        redis = await open_redis(redis_url, run_id=run_id)
        try:
            tool = SagaTool(target, redis, failure_rate=RATE, compensation=compensation, amount=10, balance=10_000)
            result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
            state = await tool.observe(launch_batch(result.history) or "")
            sagas = check_sagas(result.history, state)
            credits = check_conservation(state.initial_credits, state.final_credits, result.history, lambda _: 10)
            completed = AGENTS * ITERATIONS - FAULTED
            assert len(state.ticketed) == completed
            if compensation is Compensation.FULL:
                assert sagas.passed and credits.passed, (sagas.message, credits.message)
                assert state.final_credits == 10_000 - 10 * completed
                assert state.booked == state.reserved == state.ticketed
                story = f"{FAULTED} sagas failed ({FAULTED} at issue ticket), {2 * FAULTED} compensating steps ran"
                assert story in sagas.message, sagas.message
            else:
                assert not sagas.passed and sagas.value == FAULTED, sagas.message
                left = "reserve credits + record booking" if compensation is Compensation.NONE else "record booking"
                assert f"{FAULTED} with {left} left applied" in sagas.message, sagas.message
                assert credits.passed == (compensation is Compensation.SKIP_BOOKING), credits.message
        finally:
            await redis.close()

    with_target(pg_dsn, run_id, body)


def test_saga_that_fails_at_the_redis_step_undoes_only_the_reservation(
    pg_dsn: str, redis_url: str, run_id: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        redis = await open_redis(redis_url, run_id=run_id)
        try:
            tool = SagaTool(target, redis, failing_step=SagaStep.RECORD_BOOKING, failure_rate=RATE)
            result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS))
            state = await tool.observe(tool.batch)
            verdict = check_sagas(result.history, state)
            assert verdict.passed, verdict.message
            assert len(state.released) == FAULTED
            assert f"{FAULTED} compensating steps ran ({FAULTED} reserve credits)" in verdict.message
        finally:
            await redis.close()
            assert await redis_keys_left(redis_url, run_id) == 0

    with_target(pg_dsn, run_id, body)


async def redis_keys_left(url: str, run_id: str) -> int:
    target = await open_redis(url, run_id=f"{run_id}_probe")
    try:
        return len([key async for key in target.client.scan_iter(match=f"stampede:{run_id}:*")])
    finally:
        await target.close()
