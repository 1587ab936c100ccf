"""Work queues against a real PostgreSQL and Redis: safe claims deliver exactly once, seeded bugs are caught."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from stampede.agents import AgentContext
from stampede.checkers.queue_delivery import check_no_item_lost, check_no_item_processed_twice, check_overflow
from stampede.checkers.queue_priorities import check_priority_inversions, check_waits_by_priority
from stampede.checkers.queue_records import summarize_queue
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis
from stampede.verdicts import Verdict
from stampede.workloads.pg_queue import PostgresWorkQueue
from stampede.workloads.redis_queue import RedisWorkQueue
from stampede.workloads.work_queue import CapacityCheck, ClaimStrategy, QueueBackend, QueueSettings, WorkQueueTool
from stampede_robot.keywords.queues import parse_priorities

LAUNCH_BOUND = 30.0


@dataclass(frozen=True)
class Outcome:
    """What one launch of a queue did, with the verdicts on it."""

    tool: WorkQueueTool
    result: LaunchResult
    remaining: dict[int, str]

    @property
    def history(self) -> Any:
        return self.result.history

    def lost(self) -> Verdict:
        return check_no_item_lost(self.history, self.remaining, self.tool.settings.items)

    def twice(self) -> Verdict:
        return check_no_item_processed_twice(self.history)

    def overflow(self) -> Verdict:
        return check_overflow(self.history, self.tool.capacity)

    def inversions(self) -> Verdict:
        return check_priority_inversions(self.history)


@dataclass(frozen=True)
class Scenario:
    agents: int
    settings: dict[str, Any] = field(default_factory=dict)


QueueRun = Callable[[Scenario], Awaitable[Outcome]]


async def run_scenario(tool: WorkQueueTool, scenario: Scenario) -> Outcome:
    result = await launch(tool, LaunchPlan(agents=scenario.agents, duration=LAUNCH_BOUND))
    assert not result.timed_out and not result.agent_errors, (result.unfinished_agents, result.agent_errors)
    assert result.wall_seconds < LAUNCH_BOUND / 3, "consumers stop once the queue is drained, not at the bound"
    return Outcome(tool, result, await tool.contents())


def on_postgresql(pg_dsn: str, run_id: str, body: Callable[[QueueRun], Awaitable[None]]) -> None:
    async def main() -> None:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:

            async def queue_run(scenario: Scenario) -> Outcome:
                settings = QueueSettings(QueueBackend.POSTGRESQL, **scenario.settings)
                return await run_scenario(await PostgresWorkQueue.create(target, "jobs", settings), scenario)

            await body(queue_run)
            assert await target.backends() == 0, "the launch left connections open"
        finally:
            await target.close()

    asyncio.run(main())


def on_redis(redis_url: str, run_id: str, body: Callable[[QueueRun], Awaitable[None]]) -> None:
    async def main() -> None:
        target = await open_redis(redis_url, run_id=run_id)
        try:

            async def queue_run(scenario: Scenario) -> Outcome:
                settings = QueueSettings(QueueBackend.REDIS, **scenario.settings)
                return await run_scenario(RedisWorkQueue(target, "jobs", settings), scenario)

            await body(queue_run)
        finally:
            await target.close()
        observer = aioredis.Redis.from_url(redis_url)
        try:
            assert not [key async for key in observer.scan_iter(match=f"{target.prefix}*")], "keys left behind"
        finally:
            await observer.aclose()

    asyncio.run(main())


# --------------------------------------------------------------------------- scenarios, one body for both backends

UNDER_LOAD = Scenario(agents=15, settings={"producers": 3, "items": 300, "priorities": (1, 5, 10)})
BACKLOG = Scenario(agents=8, settings={"producers": 4, "items": 200, "priorities": (1, 10), "process_time": 0.01})
OVERFLOW = Scenario(agents=7, settings={"producers": 5, "items": 150, "capacity": 10, "process_time": 0.01})
COUNT_THEN_INSERT = Scenario(
    agents=9,
    settings={
        "producers": 8,
        "items": 80,
        "capacity": 10,
        "process_time": 0.02,
        "capacity_check": CapacityCheck.COUNT_THEN_INSERT,
        "think_time": 0.02,  # the gap between count and insert: wide enough to be hit on a loaded machine
    },
)
NAIVE = Scenario(agents=8, settings={"producers": 2, "items": 40, "claim": ClaimStrategy.NAIVE, "think_time": 0.002})


async def every_item_exactly_once_under_load(queue_run: QueueRun) -> None:
    outcome = await queue_run(UNDER_LOAD)
    for verdict in (outcome.lost(), outcome.twice(), outcome.inversions()):
        assert verdict.passed, verdict.message
    assert outcome.remaining == {}
    summary = summarize_queue(outcome.history)
    assert (summary.accepted, summary.processings, summary.refused) == (300, 300, 0)
    assert summary.throughput > 0
    assert outcome.overflow().inconclusive, "nothing was refused, so overflow was not exercised"


async def higher_priorities_jump_the_backlog(queue_run: QueueRun) -> None:
    outcome = await queue_run(BACKLOG)
    for verdict in (outcome.lost(), outcome.twice(), outcome.inversions(), check_waits_by_priority(outcome.history)):
        assert verdict.passed, verdict.message
    high, low = summarize_queue(outcome.history).waits
    assert (high.priority, low.priority) == (10, 1)
    assert high.waits.percentiles[95.0] < low.waits.percentiles[95.0], (high.waits, low.waits)


async def overflow_is_refused_and_reported(queue_run: QueueRun) -> None:
    outcome = await queue_run(OVERFLOW)
    overflow = outcome.overflow()
    assert overflow.passed, overflow.message
    assert overflow.value and overflow.value > 0
    for verdict in (outcome.lost(), outcome.twice()):
        assert verdict.passed, verdict.message


async def count_then_insert_overfills_the_queue(queue_run: QueueRun) -> None:
    outcome = await queue_run(COUNT_THEN_INSERT)
    overflow = outcome.overflow()
    assert not overflow.passed, overflow.message
    assert "accepted beyond capacity" in overflow.message
    assert outcome.lost().passed, "every accepted item is still processed once"


async def naive_claim_processes_items_twice(queue_run: QueueRun) -> None:
    outcome = await queue_run(NAIVE)
    twice = outcome.twice()
    assert not twice.passed and twice.value and twice.value > 0, twice.message
    assert twice.message.startswith("Items processed twice: expected each item processed once, but ")


SCENARIOS = [
    every_item_exactly_once_under_load,
    higher_priorities_jump_the_backlog,
    overflow_is_refused_and_reported,
    count_then_insert_overfills_the_queue,
    naive_claim_processes_items_twice,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_postgresql_queue(pg_dsn: str, run_id: str, scenario: Callable[[QueueRun], Awaitable[None]]) -> None:
    on_postgresql(pg_dsn, run_id, scenario)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_redis_queue(redis_url: str, run_id: str, scenario: Callable[[QueueRun], Awaitable[None]]) -> None:
    on_redis(redis_url, run_id, scenario)


def test_postgresql_oldest_first_claim_ignores_priorities(pg_dsn: str, run_id: str) -> None:
    async def body(queue_run: QueueRun) -> None:
        backlog = Scenario(BACKLOG.agents, {**BACKLOG.settings, "claim": ClaimStrategy.OLDEST_FIRST})
        outcome = await queue_run(backlog)
        inversions = outcome.inversions()
        assert not inversions.passed and inversions.value and inversions.value > 10, inversions.message
        assert outcome.lost().passed and outcome.twice().passed

    on_postgresql(pg_dsn, run_id, body)


# --------------------------------------------------------------------------- claim order, step by step


async def claim_order(tool: WorkQueueTool) -> list[tuple[int, int]]:
    """Enqueue priorities 1, 10, 5, 10, 1 one by one, then claim everything: (item, priority) in claim order."""
    agent = AgentContext(1, "user-1", "m")
    await tool.setup(1)
    try:
        await tool.open_agent(agent)
        for priority in (1, 10, 5, 10, 1):
            assert await tool.enqueue(agent, priority) is not None
        claimed = []
        while (item := await tool.claim(agent)) is not None:
            claimed.append((item.item, item.priority))
            await tool.complete(agent, item.item)
        assert await tool.contents() == {}
        await tool.close_agent(agent)
    finally:
        await tool.teardown()
    return claimed


def test_postgresql_claims_highest_priority_first_then_oldest(pg_dsn: str, run_id: str) -> None:
    async def main() -> None:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:
            settings = QueueSettings(QueueBackend.POSTGRESQL, items=5)
            claimed = await claim_order(await PostgresWorkQueue.create(target, "order", settings))
            first = min(item for item, _ in claimed) - 1  # ids come from a sequence all queues of the run share
            assert claimed == [(first + 2, 10), (first + 4, 10), (first + 3, 5), (first + 1, 1), (first + 5, 1)]
        finally:
            await target.close()

    asyncio.run(main())


def test_redis_claims_highest_priority_first_then_oldest(redis_url: str, run_id: str) -> None:
    async def main() -> None:
        target = await open_redis(redis_url, run_id=run_id)
        try:
            claimed = await claim_order(RedisWorkQueue(target, "order", QueueSettings(QueueBackend.REDIS, items=5)))
            assert claimed == [(2, 10), (4, 10), (3, 5), (1, 1), (5, 1)]
        finally:
            await target.close()

    asyncio.run(main())


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"backend": QueueBackend.REDIS, "claim": ClaimStrategy.SKIP_LOCKED},
            r"claim 'skip locked' is not available on redis; use one of 'atomic pop', 'naive'",
        ),
        (
            {"backend": QueueBackend.POSTGRESQL, "claim": ClaimStrategy.ATOMIC_POP},
            r"claim 'atomic pop' is not available on postgresql; use one of 'skip locked', 'naive', 'oldest first'",
        ),
        ({"backend": QueueBackend.REDIS, "capacity": 0}, r"capacity must be a whole number of at least 1, got 0"),
        ({"backend": QueueBackend.REDIS, "producers": -5}, r"producers must be a whole number of at least 1, got -5"),
        ({"backend": QueueBackend.REDIS, "priorities": (1, 5000)}, r"priorities are whole numbers from 0 to 1000"),
        ({"backend": QueueBackend.REDIS, "priorities": ()}, r"at least one priority"),
        ({"backend": QueueBackend.REDIS, "process_time": -1.0}, r"process time cannot be negative"),
    ],
)
def test_settings_that_cannot_work_are_refused_saying_what_to_fix(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        QueueSettings(**settings)


def test_fewer_agents_than_producers_is_refused_before_anything_runs(redis_url: str, run_id: str) -> None:
    async def main() -> None:
        target = await open_redis(redis_url, run_id=run_id)
        try:
            tool = RedisWorkQueue(target, "jobs", QueueSettings(QueueBackend.REDIS, producers=5))
            with pytest.raises(ConfigurationError, match=r"has 5 producers: launch at least that many agents"):
                await launch(tool, LaunchPlan(agents=3, duration=1))
        finally:
            await target.close()

    asyncio.run(main())


def test_priorities_are_read_as_people_write_them() -> None:
    assert parse_priorities("1, 5, 10") == parse_priorities("1 5 10") == parse_priorities([1, 5, 10]) == (1, 5, 10)
    assert parse_priorities(7) == (7,)
    with pytest.raises(ConfigurationError, match=r"priorities must be whole numbers separated by commas, e\.g\. 1, 5"):
        parse_priorities("high, low")
