"""A launch over two local worker processes against a real PostgreSQL and Redis: the seeded bugs are still caught."""

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

from stampede.checkers.fencing import check_protected_data
from stampede.checkers.lost_updates import check_lost_updates
from stampede.checkers.mutual_exclusion import check_holders_never_overlap, check_never_granted_twice
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult
from stampede.locks import LockSpec, make_lock
from stampede.locks.resource import FencedCounter
from stampede.outcomes import Outcome
from stampede.progress import Progress, ProgressMeter
from stampede.services.postgres_target import PostgresTarget
from stampede.services.tokens import TokenIssuer
from stampede.shapes import FixedRate
from stampede.workers import LiveShards, launch_on_workers
from stampede.workers_running import WorkersRunning
from stampede.workloads.credits import create_accounts, total_balance
from stampede.workloads.http_agents import HttpAgentTool
from stampede.workloads.http_protocol import reference_service as reference_http_service
from stampede.workloads.lock_contention import LockContentionTool, LockWork
from stampede.workloads.python_tool import PythonTool, ServiceEndpoints
from stampede.workloads.sql_tool import SqlTool
from stampede.workloads.transfers import TransferTool
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede.workloads.websocket_protocol import reference_service

from .support import with_target
from .test_agent_service import agent_service
from .test_locks import STALLS, Targets, with_services
from .test_thread_checks import AGENTS as THREAD_AGENTS
from .test_thread_checks import CASES, USERS, verdicts_of
from .test_websocket_agents import Launched, Reference, scenario

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


async def _atomic_deduction(target: PostgresTarget) -> tuple[int, PythonTool]:
    """A new account and the user-code tool that deducts from it atomically."""
    (account,) = await create_accounts(target, 1, BALANCE)
    services = ServiceEndpoints(postgres_dsn=target.client_dsn())
    factory = f"{TOOLS}:AtomicDeduction"
    return account, PythonTool(name="atomic", factory=factory, settings={"account": account}, services=services)


def test_a_fixed_rate_split_over_two_workers_keeps_the_asked_rate_on_one_schedule(
    pg_dsn: str, run_id: str, tmp_path: Path
) -> None:
    async def body(target: PostgresTarget) -> None:
        account, tool = await _atomic_deduction(target)
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
        _, tool = await _atomic_deduction(target)
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
        account, tool = await _atomic_deduction(target)
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


async def lock_on_workers(
    targets: Targets, lock: str, work: LockWork, lease: float | None, plan: LaunchPlan, cluster: str | None = None
) -> tuple[LockContentionTool, LaunchResult]:
    """The lock tool defined here, launched on two workers (rebuilt in each), and swept here afterwards."""
    made = make_lock(LockSpec.parse(lock), lease, targets)
    tool = LockContentionTool("guard", made, FencedCounter(targets.redis, "guard", fencing=work.fencing), work)
    result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2, None, cluster)
    await tool.after_workers(result)
    assert not result.timed_out and not result.agent_errors, result.agent_errors
    return tool, result


@pytest.mark.parametrize("lock", ["stampede redis", "redis-py", "advisory session"])
def test_split_over_two_workers_a_correct_lock_keeps_its_holders_apart(
    embedded: tuple[str, str], run_id: str, lock: str
) -> None:
    pg_dsn, redis_url = embedded

    async def body(targets: Targets) -> None:
        lease = None if lock == "advisory session" else 0.5
        plan = LaunchPlan(agents=4, iterations=5)
        fencing = lock != "redis-py"  # redis-py's lock issues no fencing numbers
        tool, result = await lock_on_workers(targets, lock, LockWork(hold=0.003, fencing=fencing), lease, plan)
        history = result.history
        holders = {op.agent for op in history if op.ok}
        assert holders == {1, 2, 3, 4}, "both shards' agents held the lock"
        for verdict in (
            check_holders_never_overlap(history),
            check_never_granted_twice(history),
            check_protected_data(history, await tool.resource_states()),
        ):
            assert verdict.passed, verdict.message
        assert (await tool.resource_states())["guard"].writes == 20

    with_services(redis_url, run_id, pg_dsn, body)


def test_split_over_two_workers_the_broken_lock_is_caught_granting_itself_twice(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        plan = LaunchPlan(agents=6, iterations=6)
        _, result = await lock_on_workers(targets, "broken", LockWork(**STALLS), 0.05, plan)
        twice = check_never_granted_twice(result.history)
        assert not twice.passed and twice.message.startswith("Lock granted twice: "), twice.message

    with_services(redis_url, run_id, None, body)


def test_an_in_process_lock_is_refused_on_workers_saying_why_and_what_to_use(redis_url: str, run_id: str) -> None:
    async def body(targets: Targets) -> None:
        made = make_lock(LockSpec.parse("python:stampede.locks.in_process:asyncio_lock"), None, targets)
        tool = LockContentionTool("guard", made, FencedCounter(targets.redis, "guard", fencing=False), LockWork())
        with pytest.raises(ConfigurationError, match=r"one lock object in one process.*workers=1.*stampede redis"):
            tool.recipe()

    with_services(redis_url, run_id, None, body)


async def websocket_agents_on_workers(
    ref: Reference, agents: int, cluster: str | None = None, **options: float
) -> Launched:
    """WebSocket agents of the reference service split over two workers, each signing its users' tokens."""
    tool = WebSocketAgentTool(
        reference_service(ref.service.url), tokens=TokenIssuer(lambda: ref.service.secret), **options
    )
    plan = LaunchPlan(agents, iterations=2, operation_timeout=tool.operation_bound, run_timeout=60)
    result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2, None, cluster)
    await tool.after_workers(result)
    assert not result.agent_errors and not result.hung_agents, result.agent_errors
    return Launched(tool, result)


def test_split_over_two_workers_websocket_users_are_judged_together_on_a_sound_service(
    embedded: tuple[str, str], run_id: str
) -> None:
    async def body(ref: Reference) -> None:
        launched = await websocket_agents_on_workers(ref, 6, answer_timeout=5.0, run_timeout=10.0)
        assert [op.error for op in launched.result.history] == [None] * 12
        assert {message.agent for message in launched.tool.messages} == set(range(1, 7)), "both shards' messages"
        assert len(launched.tool.marker_owners) == 6
        verdicts = launched.verdicts()
        assert verdicts.pop("single session").inconclusive  # every user ran one agent
        for name in ("contamination", "ordering", "answers", "duplicates"):
            assert verdicts[name].passed, verdicts[name].message
        assert "on 6 connections" in verdicts["ordering"].message
        now = time.monotonic_ns()
        assert all(now - 120e9 < message.t_ns <= now for message in launched.tool.messages), "on this clock"

    scenario(*embedded, run_id, body)


def test_split_over_two_workers_a_leak_between_users_is_caught(embedded: tuple[str, str], run_id: str) -> None:
    async def body(ref: Reference) -> None:
        launched = await websocket_agents_on_workers(ref, 10, answer_timeout=2.0, run_timeout=2.0)
        verdict = launched.verdicts()["contamination"]
        assert not verdict.passed and not verdict.inconclusive, verdict.message
        assert verdict.message.startswith("Messages reached the wrong user: "), verdict.message

    scenario(*embedded, run_id, body, bugs="leak", settings={"think_ms": 200})


@pytest.mark.parametrize("name", ["reject", "concurrent_runs", "crossed_streams"])
def test_split_over_two_workers_http_users_share_their_threads_and_each_bug_switch_fails_its_check_only(
    embedded: tuple[str, str], run_id: str, name: str
) -> None:
    case = CASES[name]

    async def body() -> None:
        async with agent_service(*embedded, run_id, bugs=case.bug or None) as harness:
            service = harness.service
            tool = HttpAgentTool(
                reference_http_service(service.http_url),
                tokens=TokenIssuer(lambda: service.secret),
                policy=case.policy,
                read_every=1,
            )
            plan = LaunchPlan(agents=THREAD_AGENTS, users=USERS, shape=case.shape, operation_timeout=30)
            await tool.before_workers(plan)
            result = await asyncio.to_thread(launch_on_workers, tool.recipe(), plan, 2)
            await tool.after_workers(result)
            assert not result.agent_errors, result.agent_errors
            assert len(tool.threads) == USERS and all(len(threads) == 1 for threads in tool.threads.values())
            on_threads = {attempt.thread for attempt in tool.attempts}
            assert on_threads == {threads[0] for threads in tool.threads.values()}, "one thread per user, shared"
            assert {attempt.agent for attempt in tool.attempts} == set(range(1, THREAD_AGENTS + 1))
            verdicts = await verdicts_of(tool)
        failing = {check: verdict.message for check, verdict in verdicts.items() if not verdict.passed}
        assert set(failing) == case.caught_by, failing

    asyncio.run(body())
