"""A fixed arrival rate split over a launch's shards: one schedule, each shard's share in proportion to its agents."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.errors import ConfigurationError
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.shapes import FixedRate, RateShare
from stampede.workers import shards


@pytest.mark.parametrize(("agents", "workers"), [(4, 2), (5, 2), (10, 3), (7, 7), (3, 1)])
def test_the_shards_arrivals_interleave_into_exactly_the_whole_launchs_schedule(agents: int, workers: int) -> None:
    rate = FixedRate(200.0)
    taken = [
        [share.arrival(index) for index in range(len(part) * 6)]
        for share, part in ((RateShare(rate, part, agents), part) for part in shards(agents, workers))
    ]
    merged = sorted(itertools.chain.from_iterable(taken))
    assert merged == list(range(agents * 6)), "every arrival once, none twice, none left out"
    assert all(arrivals == sorted(arrivals) for arrivals in taken), "each shard runs its arrivals in order"


def test_each_shard_takes_the_arrivals_of_its_own_agent_slots_a_share_in_proportion_to_its_agents() -> None:
    rate = FixedRate(100.0)
    first, second = (RateShare(rate, part, 5) for part in shards(5, 2))  # agents 1-3 and 4-5
    assert [first.arrival(index) for index in range(6)] == [0, 1, 2, 5, 6, 7]
    assert [second.arrival(index) for index in range(4)] == [3, 4, 8, 9]
    assert (first.per_second, second.per_second) == (60.0, 40.0)


def test_the_share_of_all_the_agents_is_every_arrival_at_the_whole_rate() -> None:
    share = RateShare(FixedRate(50.0), range(1, 9), 8)
    assert [share.arrival(index) for index in range(20)] == list(range(20))
    assert share.per_second == 50.0


@pytest.mark.parametrize("agents", [range(1, 1), range(0, 3), range(3, 7), range(1, 5, 2)])
def test_a_share_needs_a_run_of_the_launchs_agents(agents: range) -> None:
    with pytest.raises(ConfigurationError, match=r"a run of agents within 1\.\.5"):
        RateShare(FixedRate(10.0), agents, 5)


class Quick(BaseTool):
    name = "quick"

    async def run(self, agent: AgentContext) -> OpResult:
        return OpResult()


class OneInstant:
    """Releases every shard at the same instant, as the launch on workers does (here on one loop, one clock)."""

    def __init__(self, instant: int) -> None:
        self.instant = instant

    async def released(self) -> int:
        return self.instant


def test_shards_of_a_fixed_rate_launch_keep_between_them_the_schedule_of_one_launch() -> None:
    plan = LaunchPlan(agents=5, iterations=4, shape=FixedRate(per_second=200))

    start = OneInstant(time.monotonic_ns() + 200_000_000)

    async def both() -> list[LaunchResult]:
        return await asyncio.gather(*(launch(Quick(), plan, None, part, start) for part in shards(5, 2)))

    first, second = asyncio.run(both())
    assert (len(first.history), len(second.history)) == (12, 8), "iterations still count per agent"
    ops = sorted([*first.history, *second.history], key=lambda op: op.iteration)
    assert [op.iteration for op in ops] == list(range(20)), "each operation numbered by its arrival in the launch"
    due = [op.intended_ns for op in ops]
    assert due[0] == start.instant, "the schedule counts from the shared release"
    assert all(abs(later - earlier - 5_000_000) < 1_000 for earlier, later in itertools.pairwise(due)), "1/rate apart"
    assert {op.agent for op in first.history} == {1, 2, 3} and {op.agent for op in second.history} == {4, 5}
