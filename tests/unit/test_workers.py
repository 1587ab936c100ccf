"""Launches split over worker processes (Dask LocalCluster): shards, the merged history, failures, nothing left."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.errors import ConfigurationError, StampedeError
from stampede.launcher import LaunchPlan, LaunchResult, RunningLaunch, start_launch
from stampede.metrics import summarize
from stampede.progress import Tally
from stampede.shapes import RampInBatches
from stampede.worker_progress import READ_TIMEOUT_SECONDS, ShardProgress, ShardsProgress
from stampede.workers import WorkersFailed, launch_on_workers, shards
from stampede.workers_running import WorkersRunning
from stampede.workloads.python_tool import PythonTool

WHERE = '''
import os


class Where:
    """Says which process ran it."""

    def __init__(self, context):
        self.context = context

    async def run(self):
        return {"read": {"agent": self.context.agent, "user": self.context.user, "pid": os.getpid()}}
'''


SLOW_TO_OPEN = """
import asyncio


class SlowToOpen:
    def __init__(self, context):
        self.context = context

    async def setup(self):
        if self.context.agent == 4:
            await asyncio.sleep(8)

    async def run(self):
        return None
"""


STEADY = """
import asyncio
import pathlib


class Steady:
    def __init__(self, context):
        self.context = context

    async def run(self):
        pathlib.Path(__file__).with_name("running").touch()
        await asyncio.sleep(0.05)
"""


class Quick(BaseTool):
    name = "quick"

    async def run(self, agent: AgentContext) -> OpResult:
        return OpResult()


def children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.fixture
def left_behind() -> Callable[[], list[psutil.Process]]:
    """Children started since the test began (servers of other tests' fixtures are not the launch's), but
    multiprocessing's resource tracker, which is ended with this process."""
    before = children()

    def started_since() -> list[psutil.Process]:
        return [
            child
            for child in psutil.Process().children(recursive=True)
            if child.pid not in before and "multiprocessing.resource_tracker" not in " ".join(child.cmdline())
        ]

    return started_since


def where_tool(tmp_path: Path) -> PythonTool:
    path = tmp_path / "where.py"
    path.write_text(textwrap.dedent(WHERE), encoding="utf-8")
    return PythonTool(name="where", factory=f"{path}:Where")


def test_agents_are_split_by_index_into_contiguous_shards_as_even_as_can_be() -> None:
    assert shards(10, 3) == [range(1, 5), range(5, 8), range(8, 11)]
    assert shards(4, 1) == [range(1, 5)]
    with pytest.raises(ConfigurationError, match="at least 1"):
        shards(4, 0)
    with pytest.raises(ConfigurationError, match="must not outnumber the agents"):
        shards(2, 3)


def test_a_ramp_over_workers_starts_each_agent_by_its_number_in_the_whole_launch(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    plan = LaunchPlan(agents=4, iterations=1, shape=RampInBatches(batch_size=2, interval=0.5))
    result = launch_on_workers(where_tool(tmp_path).recipe(), plan, workers=2)
    assert result.workers_start is not None
    since_release = {op.agent: op.start_ns - result.workers_start.scheduled_ns for op in result.history}
    assert all(0 <= since_release[agent] < 400_000_000 for agent in (1, 2)), since_release
    assert all(since_release[agent] >= 490_000_000 for agent in (3, 4)), "the second batch, in the other shard"
    assert not left_behind()


def test_each_shard_runs_in_a_worker_process_of_its_own_and_the_histories_merge(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    plan = LaunchPlan(agents=6, iterations=3, users=2)
    result = launch_on_workers(where_tool(tmp_path).recipe(), plan, workers=2, history_dir=tmp_path / "chunks")
    assert not result.agent_errors, result.agent_errors
    assert len(result.history) == 18
    pids = {op.agent: op.read["pid"] for op in result.history}
    assert sorted(pids) == [1, 2, 3, 4, 5, 6]
    assert len({pids[1], pids[2], pids[3]}) == 1 and len({pids[4], pids[5], pids[6]}) == 1
    assert pids[1] != pids[4] and os.getpid() not in pids.values()
    assert {op.agent: op.user for op in result.history}[5] == "user-1", "users are numbered over the whole launch"
    ends = [op.end_ns for op in result.history]
    assert ends == sorted(ends), "merged in the order operations ended"
    assert [path.name for path in sorted((tmp_path / "chunks").iterdir())] == ["000000.arrow"], "shard folders removed"
    assert summarize(result).counts.operations == 18
    assert not left_behind(), "no worker or nanny process is left behind"


def test_a_shard_whose_tool_cannot_be_rebuilt_fails_the_launch_naming_it(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    recipe = where_tool(tmp_path).recipe()
    (tmp_path / "where.py").unlink()
    with pytest.raises(StampedeError, match=r"shard 1 \(agents 1-2\).*where\.py"):
        launch_on_workers(recipe, LaunchPlan(agents=4, iterations=1), workers=2)
    assert not left_behind()


def test_the_shards_are_released_at_one_instant_and_the_spreads_are_reported(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    result = launch_on_workers(where_tool(tmp_path).recipe(), LaunchPlan(agents=40, iterations=2), workers=2)
    start = result.workers_start
    assert start is not None
    assert start.clocks == ("0 ns exactly (same boot and time namespace)",) * 2, "local workers share this clock"
    assert start.clock_error_ns == 0
    assert start.gate_spread_ns is not None and 0 <= start.gate_spread_ns < 20_000_000, start
    assert start.first_operation_spread_ns is not None and 0 <= start.first_operation_spread_ns < 50_000_000, start
    assert min(op.start_ns for op in result.history) >= start.scheduled_ns, "no operation before the release"
    assert not left_behind()


def test_a_shard_not_ready_in_time_fails_the_launch_naming_it_and_its_agents(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    path = tmp_path / "slow.py"
    path.write_text(SLOW_TO_OPEN, encoding="utf-8")
    tool = PythonTool(name="slow", factory=f"{path}:SlowToOpen")
    with pytest.raises(StampedeError, match=r"shard 2 \(agents 3-4\) not ready .* within 1.5 s"):
        launch_on_workers(tool.recipe(), LaunchPlan(agents=4, iterations=1), workers=2, ready_timeout=1.5)
    assert not left_behind()


@pytest.mark.parametrize(
    ("signal_sent", "why"),
    [(signal.SIGKILL, r"left the cluster \(its process died\)"), (signal.SIGSTOP, r"stalled \(no heartbeat for")],
    ids=["killed", "stalled"],
)
def test_a_worker_lost_mid_launch_fails_it_naming_the_shard_keeps_the_others_history_and_leaves_nothing(
    tmp_path: Path, signal_sent: signal.Signals, why: str, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    path = tmp_path / "steady.py"
    path.write_text(STEADY, encoding="utf-8")
    tool = PythonTool(name="steady", factory=f"{path}:Steady")
    plan = LaunchPlan(agents=4, duration=30.0, operation_timeout=2.0)

    def lose_a_worker_once_it_runs() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (tmp_path / "running").exists():
            time.sleep(0.1)
        workers = [child for child in left_behind() if "spawn_main" in " ".join(child.cmdline())]
        workers[-1].send_signal(signal_sent)

    killer = threading.Thread(target=lose_a_worker_once_it_runs)
    killer.start()
    began = time.monotonic()
    with pytest.raises(WorkersFailed, match=rf"shard \d \(agents \d-\d\): its worker tcp://\S+ {why}") as failed:
        launch_on_workers(tool.recipe(), plan, workers=2, history_dir=tmp_path / "chunks")
    killer.join()
    assert time.monotonic() - began < 25, "nothing hangs: the launch would have run 30 s"
    assert "did not end" not in str(failed.value) and "their history is kept" in str(failed.value)
    kept = failed.value.kept
    assert kept is not None and len(kept.history) > 0
    assert len({op.agent for op in kept.history}) == 2, "the surviving shard's two agents"
    assert not left_behind(), "no worker process is left behind"


def test_a_display_adds_up_the_shards_latest_tallies_and_never_waits_on_one_it_cannot_read() -> None:
    from distributed import Client, LocalCluster, Variable

    async def finished() -> RunningLaunch:
        running = start_launch(Quick(), LaunchPlan(agents=2, iterations=3))
        await running.task
        return running

    running = asyncio.run(finished())
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=":0", silence_logs=50) as cluster,
        Client(cluster) as client,
    ):
        shards = ShardsProgress(client, "token", 2, agents=4)
        assert shards.agents == 4 and shards.tally() == Tally(), "nothing yet, and a read does not wait for a shard"
        ShardProgress("token", 2, running).publish()
        assert shards.tally() == Tally(started=2, finished=2, operations=6)
        Variable("stampede-progress-token-2", client=client).delete()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and client.run_on_scheduler(variables_named, "stampede-progress-token-2"):
            time.sleep(0.05)
        began = time.monotonic()
        assert shards.tally() == Tally(started=2, finished=2, operations=6), "the last tally seen of shard 2"
        assert time.monotonic() - began < 5 * READ_TIMEOUT_SECONDS, "bounded: the read gave up on shard 2"
        shards.close()
        while time.monotonic() < deadline and client.run_on_scheduler(variables_named, "stampede-progress-token"):
            time.sleep(0.05)
        assert not client.run_on_scheduler(variables_named, "stampede-progress-"), "deleted after the launch"


def variables_named(prefix: str, dask_scheduler: Any) -> list[str]:
    """Run on the scheduler: the names of the variables it holds that start with ``prefix``."""
    return [name for name in dask_scheduler.extensions["variables"].variables if name.startswith(prefix)]


def test_a_launch_on_workers_stopped_while_its_cluster_starts_runs_nothing_and_leaves_nothing(
    tmp_path: Path, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    running = WorkersRunning(where_tool(tmp_path).recipe(), LaunchPlan(agents=4, duration=30.0), 2, None, None)
    running.stop()

    async def result() -> LaunchResult:
        return await asyncio.wait_for(running.task, timeout=60)

    began = time.monotonic()
    stopped = asyncio.run(result())
    assert time.monotonic() - began < 30, "the stop reached the shards: the launch would have run 30 s"
    assert stopped.stopped_early and len(stopped.history) == 0 and running.operations == 0
    assert running.done and not left_behind()


def test_a_split_that_cannot_be_is_refused_when_the_background_launch_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="must not outnumber the agents"):
        WorkersRunning(where_tool(tmp_path).recipe(), LaunchPlan(agents=2), 3, None, None)


def test_a_cluster_with_fewer_workers_than_asked_fails_saying_how_many_joined_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster

    monkeypatch.setattr("stampede.workers.START_ALLOWANCE_SECONDS", 1.0)
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        with pytest.raises(
            StampedeError, match=rf"cluster {address} has 1 worker\(s\).*fewer than the 2 asked.*dask worker"
        ):
            launch_on_workers(where_tool(tmp_path).recipe(), LaunchPlan(agents=4), 2, cluster=address)
