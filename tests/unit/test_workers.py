"""Launches split over worker processes (Dask LocalCluster): shards, the merged history, failures, nothing left."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.checkers.lock_records import lock_attempts
from stampede.checkers.mutual_exclusion import check_holders_never_overlap
from stampede.errors import ConfigurationError, StampedeError
from stampede.history import History, Operation
from stampede.history_columns import read_chunk
from stampede.launcher import LaunchPlan, LaunchResult, RunningLaunch, ToolNotes, start_launch
from stampede.metrics import summarize
from stampede.outcomes import Outcome
from stampede.progress import Tally
from stampede.records.threads import RunAttempt, RunPolicy, ThreadRead
from stampede.records.websocket import ReceivedMessage
from stampede.services.tokens import TokenIssuer
from stampede.shapes import RampInBatches
from stampede.worker_progress import READ_TIMEOUT_SECONDS, ShardProgress, ShardsProgress
from stampede.workers import WorkersFailed, launch_on_workers, shards
from stampede.workers_running import WorkersRunning
from stampede.workloads.http_agents import HttpAgentTool, HttpNotes
from stampede.workloads.http_protocol import reference_service as reference_http_service
from stampede.workloads.lock_contention import on_launch_clock
from stampede.workloads.python_tool import PythonTool
from stampede.workloads.websocket_agents import WebSocketAgentTool, WebSocketNotes
from stampede.workloads.websocket_agents import on_launch_clock as websocket_on_launch_clock
from stampede.workloads.websocket_protocol import reference_service
from stampede_robot.keywords.launching import LaunchKeywords
from stampede_robot.runtime import Runtime

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


def hold(agent: int, acquired_ms: float, released_ms: float, offset_ns: int) -> Operation:
    """A lock attempt as a worker whose clock is ``offset_ns`` ahead records it (times from the launch's 0)."""
    at = [int(ms * 1e6) + offset_ns for ms in (acquired_ms - 1, acquired_ms, released_ms, released_ms + 1)]
    access = {"fence": None, "accepted": True, "value": 0, "highest_before": None, "at": [at[1], at[1]]}
    written = {
        "key": "guard",
        "acquire": at[:2],
        "acquired": True,
        "granted_try_ns": at[0],
        "lease_ns": None,
        "write": {**access, "serial": agent},
        "release": at[2:],
        "release_answer": "released",
    }
    return Operation(agent, "user-1", "guard", 0, at[0], at[3], Outcome.OK, read=access, written=written)


def test_lock_timings_in_a_payload_move_onto_the_launchs_clock_and_an_overlap_within_their_error_is_inconclusive() -> (
    None
):
    ahead = 1_000_000_000_000  # the second worker's clock is 1000 s ahead of the launch's
    # On the launch's clock agent 2 takes the lock 0.5 ms before agent 1 lets go of it: within ε = 1 ms.
    first, second = History([hold(1, 10, 20, 0)]), History([hold(2, 19.5, 30, ahead)])
    merged = History.merged([first, second], clocks=[(0, 0), (ahead, 1_000_000)], payloads=on_launch_clock)
    moved = merged[1].written
    assert moved["acquire"] == [18_500_000, 19_500_000] and moved["release"] == [30_000_000, 31_000_000]
    assert moved["granted_try_ns"] == 18_500_000 and moved["write"]["at"] == [19_500_000] * 2
    assert merged[1].read["at"] == [19_500_000] * 2
    assert [a.clock_error_ns for a in lock_attempts(merged)] == [0, 1_000_000]
    verdict = check_holders_never_overlap(merged, tolerance_ns=0)
    assert verdict.held and verdict.inconclusive, verdict.message
    assert "clock errors" in verdict.message
    unmoved = History.merged([first, second], clocks=[(0, 0), (ahead, 1_000_000)])
    assert unmoved[1].written["acquire"][1] > ahead, "without the tool's shift the payload stays on the worker's clock"


def test_a_websocket_tool_goes_to_workers_with_tokens_they_can_sign_and_never_shows_the_secret() -> None:
    secret = "s" * 40
    protocol = reference_service("ws://127.0.0.1:9/ws")
    tool = WebSocketAgentTool(protocol, tokens=TokenIssuer(lambda: secret, protocol.token))
    recipe = tool.recipe()
    assert secret not in repr(recipe) and secret not in repr(recipe.options)
    rebuilt = pickle.loads(pickle.dumps(recipe)).build()
    assert rebuilt.values.token_for("user-1") == tool.values.token_for("user-1"), "signed alike in a worker"
    unsendable = WebSocketAgentTool(protocol, tokens=lambda user: f"token of {user}")
    with pytest.raises(ConfigurationError, match=r"cannot run on workers: its tokens \(function\) cannot be sent"):
        unsendable.recipe()


def test_what_agent_tools_noted_in_a_shard_comes_back_on_the_launchs_clock() -> None:
    ahead = 5_000_000_000
    message = ReceivedMessage(4, "user-2", 1, ahead + 30, "{}", own_marker="m-4")
    websocket = WebSocketAgentTool(reference_service("ws://127.0.0.1:9/ws"), tokens="t")
    noted = WebSocketNotes([message], 2, {"m-4": "user-2"}, ["a path matched nothing"])
    asyncio.run(websocket.after_workers(_noted(ToolNotes(noted, ahead, 1000))))
    assert [m.t_ns for m in websocket.messages] == [30] and websocket.messages.left_out == 2
    assert websocket.marker_owners == {"m-4": "user-2"} and websocket.config_problems == ["a path matched nothing"]
    read = {"session": {"id": "s", "since_ns": ahead + 1, "connection": 1}, "first_event_ns": ahead + 2}
    assert websocket_on_launch_clock({**read, "done_ns": ahead + 3}, None, ahead) == (
        {"session": {"id": "s", "since_ns": 1, "connection": 1}, "first_event_ns": 2, "done_ns": 3},
        None,
    )
    http = HttpAgentTool(reference_http_service("http://127.0.0.1:9"), tokens="t")
    http.threads = {"user-2": ["thread-1"]}  # made here before the launch
    attempt = RunAttempt(4, "user-2", "thread-1", "m-4-0", RunPolicy.REJECT, ahead + 10, end_ns=ahead + 20)
    thread_read = ThreadRead(4, "user-2", "thread-1", ahead + 21, ahead + 22, 200, ())
    asyncio.run(http.after_workers(_noted(ToolNotes(HttpNotes([attempt], [thread_read], [], 0, {}, []), ahead))))
    assert (http.attempts[0].request_ns, http.attempts[0].end_ns, http.attempts[0].started_ns) == (10, 20, None)
    assert (http.reads[0].start_ns, http.reads[0].end_ns) == (21, 22)
    assert http.threads == {"user-2": ["thread-1"]}, "the threads made here are kept"


def _noted(*notes: ToolNotes) -> LaunchResult:
    return LaunchResult("t", {}, LaunchPlan(agents=1), History(), 0, 1, [], "asyncio", tool_notes=notes)


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
    plan = LaunchPlan(agents=4, duration=30.0, operation_timeout=2.0)
    killer = _losing_a_worker(tmp_path, signal_sent, left_behind)
    began = time.monotonic()
    with pytest.raises(WorkersFailed, match=rf"shard \d \(agents \d-\d\): its worker tcp://\S+ {why}") as failed:
        launch_on_workers(_steady(tmp_path).recipe(), plan, workers=2, history_dir=tmp_path / "chunks")
    killer.join()
    assert time.monotonic() - began < 25, "nothing hangs: the launch would have run 30 s"
    assert "did not end" not in str(failed.value) and "their history is kept" in str(failed.value)
    kept = failed.value.kept
    assert kept is not None and len(kept.history) > 0
    assert len({op.agent for op in kept.history}) == 2, "the surviving shard's two agents"
    assert not left_behind(), "no worker process is left behind"


def test_launch_agents_saves_what_the_surviving_shards_did_and_says_where_when_a_worker_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, left_behind: Callable[[], list[psutil.Process]]
) -> None:
    monkeypatch.chdir(tmp_path)  # outside Robot, the results go to ./results
    runtime = Runtime()
    runtime.tools["steady"] = _steady(tmp_path)
    killer = _losing_a_worker(tmp_path, signal.SIGKILL, left_behind)
    with pytest.raises(WorkersFailed, match=r"its worker tcp://\S+ left the cluster.*their history is kept") as failed:
        LaunchKeywords(runtime).launch_agents(
            "steady", 4, duration=timedelta(seconds=30), operation_timeout=timedelta(seconds=2), workers=2
        )
    killer.join()
    said = re.search(
        r": (\d+) operations of the shards that answered, saved in (\S+\.kept\.jsonl) \(Arrow chunks in (\S+)\)$",
        str(failed.value),
    )
    assert said, str(failed.value)
    count, saved, chunks = int(said[1]), Path(said[2]), Path(said[3])
    assert saved.parent == Path("results/histories") and chunks.parent == saved.parent
    lines = [json.loads(line) for line in saved.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == count > 0 and {line["agent"] for line in lines} in ({1, 2}, {3, 4}), "one shard's agents"
    assert [path.name for path in chunks.iterdir()] == ["000000.arrow"], "the merged chunk, no shard folder"
    assert read_chunk(chunks / "000000.arrow").num_rows == count
    assert runtime.not_run and "saved in" in runtime.not_run[-1].cause, "the checks after it say why it did not run"
    assert not left_behind(), "no worker process is left behind"


def _steady(tmp_path: Path) -> PythonTool:
    path = tmp_path / "steady.py"
    path.write_text(STEADY, encoding="utf-8")
    return PythonTool(name="steady", factory=f"{path}:Steady")


def _losing_a_worker(
    tmp_path: Path, signal_sent: signal.Signals, left_behind: Callable[[], list[psutil.Process]]
) -> threading.Thread:
    """A thread that sends ``signal_sent`` to a worker once the Steady agents run (bounded), started."""

    def lose_a_worker_once_it_runs() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (tmp_path / "running").exists():
            time.sleep(0.1)
        workers = [child for child in left_behind() if "spawn_main" in " ".join(child.cmdline())]
        workers[-1].send_signal(signal_sent)

    killer = threading.Thread(target=lose_a_worker_once_it_runs)
    killer.start()
    return killer


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
