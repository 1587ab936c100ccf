"""Transfers against a real PostgreSQL: opposite lock orders deadlock, ordered ones never do, victims recover."""

from __future__ import annotations

import pytest

from stampede.checkers.deadlocks import (
    check_deadlock_resolution,
    check_deadlocks_detected,
    check_forward_progress,
    check_no_deadlocks,
    check_transfers_conserved,
    count_deadlocks,
    resolution_waits_ns,
)
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.outcomes import Outcome
from stampede.records.fields import DEADLOCK_WAITS
from stampede.retry import NO_RETRIES, RetryPolicy
from stampede.services.postgres_target import PostgresTarget
from stampede.units import parse_duration
from stampede.workloads.credits import create_accounts
from stampede.workloads.transfers import RESOLUTION_TIMING, LockOrder, TransferTool

from .support import with_target

AGENTS = 10
ITERATIONS = 2
THINK_TIME = 0.01


async def transfers(target: PostgresTarget, **options: object) -> tuple[TransferTool, LaunchResult]:
    accounts = await create_accounts(target, AGENTS, 1_000)
    tool = TransferTool(target, accounts=accounts, think_time=THINK_TIME, **options)  # type: ignore[arg-type]
    result = await launch(tool, LaunchPlan(agents=AGENTS, iterations=ITERATIONS, operation_timeout=30))
    return tool, result


def test_opposite_lock_orders_deadlock_and_every_victim_recovers(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool, result = await transfers(target, lock_order=LockOrder.OPPOSITE, retry=RetryPolicy(max_retries=20))
        history = result.history
        deadlocks = count_deadlocks(history)
        assert deadlocks > 0, "partners locking in opposite orders after a think time must deadlock"
        assert check_deadlocks_detected(history).passed
        assert check_forward_progress(history).passed, check_forward_progress(history).message
        assert tool.initial_balances is not None
        conserved = check_transfers_conserved(tool.initial_balances, await tool.final_balances(), history)
        assert conserved.passed, conserved.message
        # One resolution time per 40P01, each at least the deadlock_timeout PostgreSQL waits before it looks.
        waits = resolution_waits_ns(history)
        assert len(waits) == deadlocks
        deadlock_timeout = parse_duration(tool.deadlock_timeout or "", what="deadlock_timeout")
        assert min(waits) >= deadlock_timeout * 1e9
        bound = deadlock_timeout + 1.0
        assert check_deadlock_resolution(history, bound, deadlock_timeout=tool.deadlock_timeout).passed
        for op in history:
            if op.retries:
                assert op.timings == {RESOLUTION_TIMING: max(op.read[DEADLOCK_WAITS])}
                assert len(op.read[DEADLOCK_WAITS]) == op.retries

    with_target(pg_dsn, run_id, body)


def test_ordered_locking_never_deadlocks(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        tool, result = await transfers(target, lock_order=LockOrder.ORDERED)
        assert check_no_deadlocks(result.history).passed, check_no_deadlocks(result.history).message
        assert all(op.ok and op.retries == 0 for op in result.history)
        assert tool.initial_balances is not None
        final = await tool.final_balances()
        assert check_transfers_conserved(tool.initial_balances, final, result.history).passed
        moved = {op.written["from"] for op in result.history} | {op.written["to"] for op in result.history}
        assert moved == set(tool.accounts), "every pair of accounts sees transfers both ways"

    with_target(pg_dsn, run_id, body)


def test_victims_without_retries_are_recorded_as_deadlocks_with_their_wait(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        _, result = await transfers(target, retry=NO_RETRIES)
        victims = [op for op in result.history if not op.ok]
        assert victims, "the first round of partners deadlocks"
        assert all(op.outcome is Outcome.DEADLOCK and op.error == "40P01" for op in victims)
        assert all(len(op.read[DEADLOCK_WAITS]) == 1 for op in victims)
        assert not check_forward_progress(result.history).passed

    with_target(pg_dsn, run_id, body)


def test_session_settings_reach_the_agents_and_set_the_resolution_time(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        server_setting = await target.fetch_setting("deadlock_timeout")
        tool, result = await transfers(target, session_settings={"deadlock_timeout": "300ms"})
        assert tool.deadlock_timeout == "300ms"
        assert tool.describe()["session settings"] == "deadlock_timeout=300ms"
        waits = resolution_waits_ns(result.history)
        assert waits and min(waits) >= 300_000_000
        assert await target.fetch_setting("deadlock_timeout") == server_setting, "only the agents' sessions change"
        assert not check_deadlock_resolution(result.history, 0.2, deadlock_timeout=tool.deadlock_timeout).passed

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize(
    ("setting", "value"), [("no_such_setting", "1"), ("deadlock_timeout", "soon")], ids=["unknown", "malformed"]
)
def test_a_session_setting_the_server_refuses_is_reported_by_name(
    pg_dsn: str, run_id: str, setting: str, value: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        accounts = await create_accounts(target, 2, 100)
        tool = TransferTool(target, name="slow", accounts=accounts, session_settings={setting: value})
        refused = rf"refused the session setting {setting}='{value}' of tool 'slow'"
        with pytest.raises(ConfigurationError, match=refused):
            await tool.validate()

    with_target(pg_dsn, run_id, body)


def test_transfers_between_accounts_that_do_not_exist_are_refused(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        await create_accounts(target, 1, 100)
        tool = TransferTool(target, accounts=[1, 99])
        with pytest.raises(ConfigurationError, match=r"There is no account \[99\]"):
            await launch(tool, LaunchPlan(agents=2))

    with_target(pg_dsn, run_id, body)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"accounts": [1]}, r"even number of different accounts \(2 or more\), got \[1\]"),
        ({"accounts": [1, 2, 3]}, r"even number of different accounts"),
        ({"accounts": [1, 1]}, r"even number of different accounts"),
        ({"accounts": [1, 2], "amount": 0}, r"at least 1 credit, got 0"),
        ({"accounts": [1, 2], "think_time": -1}, r"think time cannot be negative"),
    ],
)
def test_bad_tool_settings_are_refused_with_what_to_fix(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TransferTool(None, **options)  # type: ignore[arg-type]
