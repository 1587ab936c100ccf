"""Launches split over worker processes (Dask LocalCluster): shards, the merged history, failures, nothing left."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from stampede.errors import ConfigurationError, StampedeError
from stampede.launcher import LaunchPlan
from stampede.metrics import summarize
from stampede.shapes import FixedRate
from stampede.workers import launch_on_workers, shards
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


def test_a_fixed_rate_is_refused_on_workers_for_now(tmp_path: Path) -> None:
    plan = LaunchPlan(agents=4, iterations=1, shape=FixedRate(10.0))
    with pytest.raises(ConfigurationError, match="fixed rate"):
        launch_on_workers(where_tool(tmp_path).recipe(), plan, workers=2)


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
