"""A launch over two local worker processes against a real PostgreSQL: the seeded race is still caught."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stampede.checkers.lost_updates import check_lost_updates
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan
from stampede.outcomes import Outcome
from stampede.progress import Progress, ProgressMeter
from stampede.services.postgres_target import PostgresTarget
from stampede.shapes import FixedRate
from stampede.workers import LiveShards, launch_on_workers
from stampede.workers_running import WorkersRunning
from stampede.workloads.credits import create_accounts, total_balance
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints
from stampede.workloads.sql_tool import SqlTool
from stampede.workloads.transfers import TransferTool

from .support import with_target

TOOLS = Path(__file__).resolve().parents[2] / "libraries" / "stampede_robot" / "resources" / "credit_tools.py"
AGENTS = 20
ITERATIONS = 3
BALANCE = 10_000


@pytest.mark.parametrize("factory", ["NaiveDeduction", "AtomicDeduction"])
def test_split_over_two_workers_a_read_then_write_still_loses_updates_and_an_atomic_one_does_not(
    pg_dsn: str, run_id: str, factory: str, tmp_path: Path
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        tool = PythonTool(name=factory, factory=f"{TOOLS}:{factory}", settings={"account": account}, services=services)
        plan = LaunchPlan(agents=AGENTS, iterations=ITERATIONS)
        result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2, tmp_path / "chunks")
        assert not result.agent_errors, result.agent_errors
        assert len(result.history) == AGENTS * ITERATIONS
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        lost = check_lost_updates(result.history)
        final = await total_balance(target, [account])
        if factory == "NaiveDeduction":
            assert not lost.passed and lost.value, lost.message
            assert final > BALANCE - AGENTS * ITERATIONS
        else:
            assert lost.passed, lost.message
            assert final == BALANCE - AGENTS * ITERATIONS

    with_target(pg_dsn, run_id, body)


def test_a_fixed_rate_split_over_two_workers_keeps_the_asked_rate_on_one_schedule(
    pg_dsn: str, run_id: str, tmp_path: Path
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        tool = PythonTool(
            name="atomic", factory=f"{TOOLS}:AtomicDeduction", settings={"account": account}, services=services
        )
        plan = LaunchPlan(agents=10, duration=1.5, shape=FixedRate(200.0))
        result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2, tmp_path / "chunks")
        assert not result.agent_errors, result.agent_errors
        assert result.workers_start is not None
        assert len(result.history) == 300, "200/s for 1.5 s: every arrival due before the end ran, once"
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        due = sorted(op.intended_ns for op in result.history if op.intended_ns is not None)
        assert len(due) == 300 and due[0] == result.workers_start.scheduled_ns, "counted from the shared release"
        assert all(abs(later - earlier - 5_000_000) < 1_000 for earlier, later in itertools.pairwise(due)), (
            "the shards' intended starts merge into one schedule, 1/rate apart"
        )
        assert sorted(op.iteration for op in result.history) == list(range(300)), "each arrival run once"
        assert {op.agent for op in result.history} == set(range(1, 11))
        assert await total_balance(target, [account]) == BALANCE - 300

    with_target(pg_dsn, run_id, body)


class Samples:
    """A display's view of a launch on workers: its progress sampled every 0.1 s, and once more at the end."""

    def __init__(self) -> None:
        self.taken: list[Progress] = []

    @contextlib.contextmanager
    def watching(self, live: LiveShards) -> Iterator[None]:
        meter = ProgressMeter(live.progress)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                self.taken.append(meter.sample())

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join(timeout=10)
            self.taken.append(meter.sample())


def test_the_live_progress_of_a_launch_on_two_workers_adds_up_its_shards_and_ends_at_its_totals(
    pg_dsn: str, run_id: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        tool = PythonTool(
            name="atomic", factory=f"{TOOLS}:AtomicDeduction", settings={"account": account}, services=services
        )
        samples = Samples()
        plan = LaunchPlan(agents=AGENTS, duration=1.5)
        result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2, None, None, watch=samples.watching)
        assert not result.agent_errors, result.agent_errors
        operations = [sample.operations for sample in samples.taken]
        assert operations == sorted(operations), "the count only grows"
        assert any(0 < count < len(result.history) for count in operations), f"none while it ran: {operations}"
        last = samples.taken[-1]
        assert (last.agents, last.started, last.finished) == (AGENTS, AGENTS, AGENTS), last
        assert last.operations == len(result.history) > 0, last
        assert last.errors == sum(op.outcome in (Outcome.ERROR, Outcome.TIMEOUT) for op in result.history), last
        assert last.conflicts == sum(op.outcome.is_concurrency_conflict for op in result.history), last

    with_target(pg_dsn, run_id, body)


def test_a_launch_on_workers_in_the_background_counts_its_operations_and_stops_gracefully(
    pg_dsn: str, run_id: str, tmp_path: Path
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        services = ServiceEndpoints(postgres_dsn=target.client_dsn())
        tool = PythonTool(
            name="atomic", factory=f"{TOOLS}:AtomicDeduction", settings={"account": account}, services=services
        )
        running = WorkersRunning(tool.recipe(), LaunchPlan(agents=AGENTS, duration=60.0), 2, tmp_path / "chunks", None)
        deadline = time.monotonic() + 60
        while running.operations < 100 and not running.done and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        seen = running.operations
        assert seen >= 100 and not running.done, f"{seen} operations; done: {running.done}"
        assert running.started_ns is not None
        stopped = time.monotonic()
        assert not await running.settle(0, 5.0), "it was still running: stopped"
        result = await running.task
        assert time.monotonic() - stopped < 30, "a stop ends the shards after the operation they are in"
        assert result.stopped_early and not result.agent_errors, result.agent_errors
        assert len(result.history) >= seen and all(op.ok for op in result.history)
        assert running.operations == len(result.history), "the shards' last tallies, once they have ended"
        assert await total_balance(target, [account]) == BALANCE - len(result.history)

    with_target(pg_dsn, run_id, body)


def test_the_sql_tool_is_rebuilt_in_each_worker_in_the_runs_schema_and_its_password_is_never_shown(
    pg_dsn: str, run_id: str
) -> None:
    async def body(target: PostgresTarget) -> None:
        (account,) = await create_accounts(target, 1, BALANCE)
        sql = "UPDATE accounts SET balance = balance - 1 WHERE id = :account RETURNING balance"
        tool = SqlTool(target, name="deduct by SQL", sql=sql, constants={"account": account})
        recipe = tool.recipe()
        password = urlsplit(target.dsn).password
        # A DSN without a password (a trust-auth server's) has nothing to hide; one with a password never shows it.
        assert not password or (password not in repr(recipe) and target.dsn not in repr(recipe)), repr(recipe)
        plan = LaunchPlan(agents=AGENTS, iterations=ITERATIONS)
        result = await asyncio.to_thread(launch_on_workers, recipe, plan, 2)
        assert not result.agent_errors, result.agent_errors
        assert all(op.ok for op in result.history), {op.error for op in result.history}
        assert await total_balance(target, [account]) == BALANCE - AGENTS * ITERATIONS

    with_target(pg_dsn, run_id, body)


def test_a_postgresql_tool_without_a_definition_is_refused_naming_those_that_have_one(pg_dsn: str, run_id: str) -> None:
    async def body(target: PostgresTarget) -> None:
        accounts = await create_accounts(target, 2, BALANCE)
        with pytest.raises(ConfigurationError, match=r"'transfer' \(TransferTool\) cannot run on workers yet"):
            TransferTool(target, name="transfer", accounts=accounts).recipe()

    with_target(pg_dsn, run_id, body)
