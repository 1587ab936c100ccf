"""The launcher with small in-memory tools: barrier, shapes, bounds, timeouts, hung agents.

Timing assertions are generous on purpose: these tests must hold on a busy
two-core machine. Speed belongs in the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import time
from pathlib import Path

import pytest

from stampede import launcher as launcher_module
from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.errors import ConfigurationError
from stampede.history import Operation
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.loop import EngineLoop
from stampede.outcomes import Outcome
from stampede.shapes import FixedRate, RampInBatches

S = 1_000_000_000


class SleepTool(BaseTool):
    """Sleeps ``delay`` per operation and remembers when each agent finished opening."""

    name = "sleep"

    def __init__(self, delay: float = 0.0, open_delay: float = 0.0) -> None:
        self.delay = delay
        self.open_delay = open_delay
        self.opened_ns: dict[int, int] = {}
        self.closed: list[int] = []
        self.calls: list[str] = []

    async def setup(self, agents: int) -> None:
        self.calls.append(f"setup {agents}")

    async def open_agent(self, agent: AgentContext) -> None:
        await asyncio.sleep(self.open_delay * (agent.agent % 5))
        self.opened_ns[agent.agent] = time.monotonic_ns()

    async def run(self, agent: AgentContext) -> OpResult:
        await asyncio.sleep(self.delay)
        return OpResult(read={"agent": agent.agent}, written={"iteration": agent.iteration})

    async def close_agent(self, agent: AgentContext) -> None:
        self.closed.append(agent.agent)

    async def teardown(self) -> None:
        self.calls.append("teardown")


def run(tool: BaseTool, plan: LaunchPlan) -> LaunchResult:
    return asyncio.run(launch(tool, plan))


def first_starts(result: LaunchResult) -> dict[int, int]:
    starts: dict[int, int] = {}
    for op in result.history:
        starts[op.agent] = min(starts.get(op.agent, op.start_ns), op.start_ns)
    return starts


def by_agent(result: LaunchResult) -> dict[int, list[Operation]]:
    ops: dict[int, list[Operation]] = {}
    for op in result.history:
        ops.setdefault(op.agent, []).append(op)
    return ops


# --- start barrier and identities -----------------------------------------------------------


def test_start_barrier_releases_all_agents_together() -> None:
    tool = SleepTool(open_delay=0.15)  # agents finish opening over 0.6 s
    gc.collect()  # a collection of the whole suite's garbage while agents open would shorten the spread measured
    result = run(tool, LaunchPlan(agents=200))
    starts = first_starts(result)
    assert len(result.history) == 200 and len(starts) == 200
    assert max(tool.opened_ns.values()) <= min(starts.values()), "an agent started before all had opened"
    opening_spread = max(tool.opened_ns.values()) - min(tool.opened_ns.values())
    assert opening_spread >= 0.55 * S
    assert max(starts.values()) - min(starts.values()) < 0.3 * S
    assert sorted(tool.closed) == list(range(1, 201))
    assert tool.calls == ["setup 200", "teardown"]
    assert not result.timed_out and result.agent_errors == {}


def test_agents_have_identities_and_users() -> None:
    result = run(SleepTool(), LaunchPlan(agents=5, users=2))
    ops = sorted(result.history, key=lambda op: op.agent)
    assert [op.user for op in ops] == ["user-1", "user-2", "user-1", "user-2", "user-1"]
    assert all(op.read == {"agent": op.agent} for op in ops)
    assert result.tool == "sleep" and result.tool_settings == {"tool": "sleep"}
    assert result.loop == "asyncio"


def test_agent_markers_are_unique() -> None:
    markers: dict[int, str] = {}

    class MarkerTool(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            markers[agent.agent] = agent.marker
            return OpResult()

    run(MarkerTool(), LaunchPlan(agents=50))
    assert len(set(markers.values())) == 50
    assert all(marker.endswith(f"-{agent}") for agent, marker in markers.items())


# --- shapes and bounds ----------------------------------------------------------------------


def test_ramp_starts_a_batch_every_interval() -> None:
    tool = SleepTool()
    result = run(tool, LaunchPlan(agents=6, shape=RampInBatches(batch_size=2, interval=0.2)))
    starts = first_starts(result)
    batches = [[starts[agent] for agent in (2 * k + 1, 2 * k + 2)] for k in range(3)]
    all_open = max(tool.opened_ns.values())  # the ramp counts from the moment the last agent opened
    for k, batch in enumerate(batches):
        offset = (min(batch) - all_open) / S
        assert k * 0.2 - 0.001 <= offset <= k * 0.2 + 0.5, f"batch {k} started {offset:.3f} s after the barrier"
        assert max(batch) - min(batch) < 0.1 * S


def test_iterations_bound_each_agent() -> None:
    result = run(SleepTool(), LaunchPlan(agents=4, iterations=3))
    assert len(result.history) == 12
    assert all(sorted(op.iteration for op in ops) == [0, 1, 2] for ops in by_agent(result).values())


def test_one_iteration_when_no_bound_is_given() -> None:
    result = run(SleepTool(), LaunchPlan(agents=3))
    assert sorted(op.agent for op in result.history) == [1, 2, 3]


def test_duration_bounds_the_launch() -> None:
    result = run(SleepTool(delay=0.02), LaunchPlan(agents=2, duration=0.3))
    ops = by_agent(result)
    assert all(len(agent_ops) >= 3 for agent_ops in ops.values())
    first = min(op.start_ns for op in result.history)
    assert max(op.start_ns for op in result.history) - first < 0.3 * S
    assert result.wall_seconds < 3.0
    assert not result.timed_out


def test_iterations_end_a_launch_before_its_duration() -> None:
    started = time.monotonic()
    result = run(SleepTool(), LaunchPlan(agents=2, iterations=2, duration=30.0))
    assert len(result.history) == 4
    assert time.monotonic() - started < 5.0


def test_fixed_rate_records_when_each_operation_was_due() -> None:
    result = run(SleepTool(), LaunchPlan(agents=2, iterations=5, shape=FixedRate(per_second=50)))
    ops = sorted(result.history, key=lambda op: op.iteration)
    assert [op.iteration for op in ops] == list(range(10))
    due = [op.intended_ns for op in ops]
    assert all(d is not None for d in due)
    assert all(abs(later - earlier - 0.02 * S) < 1_000 for earlier, later in itertools.pairwise(due))
    assert all(op.start_ns >= op.intended_ns - 0.002 * S for op in ops)


def test_fixed_rate_latency_counts_from_the_due_time_when_the_tool_stalls() -> None:
    # Due every 10 ms, but each operation takes 50 ms: a backlog builds up.
    result = run(SleepTool(delay=0.05), LaunchPlan(agents=1, iterations=5, shape=FixedRate(per_second=100)))
    ops = sorted(result.history, key=lambda op: op.iteration)
    assert all(op.latency_ns >= op.end_ns - op.start_ns for op in ops)
    last = ops[-1]
    waited = last.latency_ns - (last.end_ns - last.start_ns)
    assert waited >= 0.1 * S, f"only {waited / S:.3f} s of backlog counted"


# --- timeouts and hung agents ---------------------------------------------------------------


def test_operation_timeout_is_recorded() -> None:
    started = time.monotonic()
    result = run(SleepTool(delay=10.0), LaunchPlan(agents=2, operation_timeout=0.1))
    assert time.monotonic() - started < 3.0
    assert [(op.outcome, op.error) for op in result.history] == [(Outcome.TIMEOUT, "operation_timeout")] * 2
    assert not result.timed_out


def test_operation_timeout_cuts_off_only_the_slow_operation() -> None:
    """Operations shorter than the bound but together longer are never cut; a slow one is, and the next run."""

    class SlowSecond(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            await asyncio.sleep(1.0 if agent.iteration == 3 else 0.06)
            return OpResult()

    result = run(SlowSecond(), LaunchPlan(agents=2, iterations=6, operation_timeout=0.2))
    outcomes = [(op.iteration, op.outcome) for op in sorted(result.history, key=lambda op: (op.agent, op.start_ns))]
    expected = [(i, Outcome.TIMEOUT if i == 3 else Outcome.OK) for i in range(6)]
    assert outcomes == expected * 2
    assert all(op.latency_ns < 0.9 * S for op in result.history)


def test_a_swallowed_operation_timeout_leaves_the_agent_uncancelled() -> None:
    class Swallows(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            if agent.iteration == 0:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(1.0)
            await asyncio.sleep(0.01)
            return OpResult()

    result = run(Swallows(), LaunchPlan(agents=1, iterations=3, operation_timeout=0.1))
    assert [op.outcome for op in result.history] == [Outcome.OK] * 3
    assert not result.agent_errors


def test_a_tools_own_timeout_is_not_the_operation_timeout() -> None:
    class ClientTimeout(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            raise TimeoutError("the client gave up")

    result = run(ClientTimeout(), LaunchPlan(agents=1))
    assert [(op.outcome, op.error) for op in result.history] == [(Outcome.TIMEOUT, "timeout")]


def test_launch_timeout_cuts_off_unfinished_agents() -> None:
    class SlowForSome(SleepTool):
        async def run(self, agent: AgentContext) -> OpResult:
            await asyncio.sleep(0.0 if agent.agent == 1 else 10.0)
            return OpResult()

    tool = SlowForSome()
    started = time.monotonic()
    result = run(tool, LaunchPlan(agents=3, run_timeout=0.3))
    assert time.monotonic() - started < 4.0
    assert result.timed_out
    assert result.unfinished_agents == [2, 3] and result.hung_agents == []
    outcomes = {op.agent: (op.outcome, op.error) for op in result.history}
    assert outcomes == {
        1: (Outcome.OK, None),
        2: (Outcome.TIMEOUT, "launch_timeout"),
        3: (Outcome.TIMEOUT, "launch_timeout"),
    }
    assert sorted(tool.closed) == [1, 2, 3]
    assert tool.calls[-1] == "teardown"


def test_agent_ignoring_cancellation_is_reported_hung_not_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher_module, "CANCEL_GRACE_SECONDS", 0.3)
    release = asyncio.Event()

    class Stubborn(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            if agent.agent == 2:
                while not release.is_set():
                    with contextlib.suppress(asyncio.CancelledError):  # the bug under test
                        await asyncio.sleep(0.02)
            return OpResult()

    async def scenario() -> tuple[LaunchResult, float]:
        started = time.monotonic()
        result = await launch(Stubborn(), LaunchPlan(agents=3, run_timeout=0.3))
        elapsed = time.monotonic() - started
        release.set()
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.wait_for(asyncio.gather(*leftovers), 2.0)
        return result, elapsed

    result, elapsed = asyncio.run(scenario())
    assert elapsed < 4.0
    assert result.timed_out
    assert result.unfinished_agents == [2] and result.hung_agents == [2]
    assert {op.agent for op in result.history} >= {1, 3}


# --- configuration and failures -------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"agents": 0}, "agents must be a whole number of at least 1, got 0"),
        ({"agents": -5}, "got -5"),
        ({"agents": "5"}, "got '5'"),
        ({"agents": 3, "iterations": 0}, "iterations must be at least 1, got 0"),
        ({"agents": 3, "duration": 0.0}, "duration must be longer than 0 s"),
        ({"agents": 3, "operation_timeout": 0.0}, "operation timeout must be longer than 0 s"),
        ({"agents": 3, "run_timeout": 0}, "launch timeout must be longer than 0 s"),
        ({"agents": 3, "run_timeout": -1.0}, "launch timeout must be longer than 0 s"),
        ({"agents": 3, "users": 4}, "users must be between 1 and the agent count 3, got 4"),
        ({"agents": 3, "users": 0}, "got 0"),
    ],
)
def test_launch_plan_rejects_what_cannot_work(settings: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        LaunchPlan(**settings)  # type: ignore[arg-type]


def test_launch_plan_describes_itself() -> None:
    assert LaunchPlan(agents=5).describe() == "5 agents, all at once (start barrier), 1 iteration(s) per agent"
    ramp = LaunchPlan(agents=10, duration=2.0, shape=RampInBatches(5, 0.5))
    assert ramp.describe() == "10 agents, ramp in batches of 5 every 0.5 s, for 2 s"


def test_an_agent_that_cannot_open_does_not_block_the_barrier() -> None:
    class FlakyOpen(SleepTool):
        async def open_agent(self, agent: AgentContext) -> None:
            if agent.agent == 3:
                raise RuntimeError("no connection")

    started = time.monotonic()
    result = run(FlakyOpen(), LaunchPlan(agents=4, run_timeout=10.0))
    assert time.monotonic() - started < 3.0
    assert not result.timed_out
    assert result.agent_errors == {3: "could not start: RuntimeError: no connection"}
    assert sorted(op.agent for op in result.history) == [1, 2, 4]


class SqlStateError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def test_exceptions_from_tools_are_classified() -> None:
    class Failing(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            if agent.agent == 1:
                raise SqlStateError("40001")
            if agent.agent == 2:
                raise SqlStateError("40P01")
            if agent.agent == 3:
                raise SqlStateError("23505")
            raise ValueError("bad row")

    result = run(Failing(), LaunchPlan(agents=4))
    outcomes = {op.agent: (op.outcome, op.error) for op in result.history}
    assert outcomes == {
        1: (Outcome.SERIALIZATION_FAILURE, "40001"),
        2: (Outcome.DEADLOCK, "40P01"),
        3: (Outcome.ERROR, "23505"),
        4: (Outcome.ERROR, "ValueError"),
    }


def test_tool_results_are_recorded_as_reported() -> None:
    class Retried(BaseTool):
        async def run(self, agent: AgentContext) -> OpResult:
            result = OpResult(Outcome.CONFLICT, error="version_mismatch", read={"v": 1}, written={"v": 2})
            result.retries = 2
            result.retry_causes = (Outcome.CONFLICT, Outcome.CONFLICT)
            result.exhausted = True
            return result

    (op,) = run(Retried(), LaunchPlan(agents=1)).history
    assert (op.outcome, op.error, op.read, op.written) == (Outcome.CONFLICT, "version_mismatch", {"v": 1}, {"v": 2})
    assert (op.retries, op.retry_causes, op.exhausted) == (2, (Outcome.CONFLICT,) * 2, True)


def test_launch_on_the_engine_loop() -> None:
    engine = EngineLoop()
    try:
        result = engine.run(launch(SleepTool(delay=0.01), LaunchPlan(agents=20, iterations=2)), timeout=10.0)
    finally:
        engine.close()
    assert len(result.history) == 40
    assert result.loop == engine.implementation
    assert all(op.ok for op in result.history)


# --- launches started in the background ---------------------------------------------------------


class StubbornTool(SleepTool):
    """An operation that never ends by itself (only cancellation ends it)."""

    async def run(self, agent: AgentContext) -> OpResult:
        await asyncio.sleep(3600)
        return OpResult()


def test_a_started_launch_reports_progress_and_stops_gracefully() -> None:
    async def scenario() -> tuple[int, LaunchResult]:
        running = launcher_module.start_launch(SleepTool(delay=0.01), LaunchPlan(agents=4, duration=30.0))
        while running.operations < 20:
            await asyncio.sleep(0.01)
        seen = running.operations
        running.stop()
        return seen, await asyncio.wait_for(running.task, 5)

    seen, result = asyncio.run(scenario())
    assert seen >= 20
    assert len(result.history) >= seen
    assert result.stopped_early and not result.timed_out
    assert not result.unfinished_agents
    assert all(op.ok for op in result.history)  # every agent finished the operation it was in
    assert result.wall_seconds < 10


def test_a_started_fixed_rate_launch_stops_too() -> None:
    async def scenario() -> LaunchResult:
        running = launcher_module.start_launch(SleepTool(), LaunchPlan(agents=2, duration=30.0, shape=FixedRate(50)))
        await asyncio.sleep(0.3)
        running.stop()
        return await asyncio.wait_for(running.task, 5)

    result = asyncio.run(scenario())
    assert result.stopped_early and 0 < len(result.history) < 100


def test_an_aborted_launch_cuts_agents_off_and_keeps_the_history() -> None:
    async def scenario() -> LaunchResult:
        running = launcher_module.start_launch(StubbornTool(), LaunchPlan(agents=3, run_timeout=60.0))
        await asyncio.sleep(0.2)
        running.abort()
        return await asyncio.wait_for(running.task, 10)

    result = asyncio.run(scenario())
    assert result.stopped_early and not result.timed_out
    assert result.unfinished_agents == [1, 2, 3]
    assert [op.error for op in result.history] == ["launch_stopped"] * 3


def test_launches_collect_garbage_less_often_while_they_run_and_restore_the_setting() -> None:
    class ThresholdTool(SleepTool):
        async def run(self, agent: AgentContext) -> OpResult:
            seen.append(gc.get_threshold()[0])
            return await super().run(agent)

    async def overlapping() -> None:
        first = launcher_module.start_launch(ThresholdTool(delay=0.05), LaunchPlan(agents=1, iterations=4))
        await asyncio.sleep(0.02)
        await launch(ThresholdTool(), LaunchPlan(agents=1, iterations=2))  # ends while the first still runs
        seen.append(gc.get_threshold()[0])
        await asyncio.wait_for(first.task, 5)

    seen: list[int] = []
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        asyncio.run(overlapping())
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*before)
    assert seen == [launcher_module.YOUNG_COLLECTION_ALLOCATIONS] * 7, "raised in every launch, both overlapping"
    assert after == (700, *before[1:]), "the setting from before the first launch comes back after the last"


def test_a_launch_writes_its_history_in_chunks_to_the_folder_given(tmp_path: Path) -> None:
    result = asyncio.run(launch(SleepTool(), LaunchPlan(agents=3, iterations=4), history_dir=tmp_path / "chunks"))
    assert [path.name for path in (tmp_path / "chunks").iterdir()] == ["000000.arrow"]
    assert len(result.history) == 12
    assert sorted((op.read["agent"], op.written["iteration"]) for op in result.history) == [
        (agent, iteration) for agent in (1, 2, 3) for iteration in range(4)
    ]


class SlowToClose(BaseTool):
    """Closing an agent waits ``closing`` s, within the tool's own close bound ``close_bound``."""

    name = "slow-to-close"

    def __init__(self, closing: float, close_bound: float) -> None:
        self.closing = closing
        self.close_bound = close_bound

    async def run(self, agent: AgentContext) -> OpResult:
        return OpResult()

    async def close_agent(self, agent: AgentContext) -> None:
        await asyncio.sleep(self.closing)


def test_an_agent_close_within_the_tools_own_bound_is_waited_for_and_one_beyond_it_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(launcher_module, "CANCEL_GRACE_SECONDS", 0.05)
    waited = run(SlowToClose(closing=0.2, close_bound=1.0), LaunchPlan(agents=2, iterations=1))
    assert not waited.agent_errors, "a close the tool bounds itself is not cut at the launcher's grace"
    cut = run(SlowToClose(closing=0.2, close_bound=0.0), LaunchPlan(agents=2, iterations=1))
    assert cut.agent_errors == {1: "could not stop cleanly: TimeoutError", 2: "could not stop cleanly: TimeoutError"}


class BlocksTheLoopWhileClosing(SlowToClose):
    """Closing starts, then something else holds the loop past the close's wait and past the launcher's bound.

    Like a WebSocket close, the close takes a few more turns of the loop after its wait ends.
    """

    def __init__(self, closing: float, close_bound: float, held: float) -> None:
        super().__init__(closing, close_bound)
        self.held = held

    async def close_agent(self, agent: AgentContext) -> None:
        asyncio.get_running_loop().call_later(0.01, time.sleep, self.held)
        await asyncio.sleep(self.closing)
        for _ in range(3):
            await asyncio.sleep(0)


def test_an_agent_close_is_not_cut_for_a_loop_that_was_late_past_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """The close would have ended within its bound: the loop, busy elsewhere, woke both at once."""
    monkeypatch.setattr(launcher_module, "CANCEL_GRACE_SECONDS", 0.05)
    late = run(BlocksTheLoopWhileClosing(closing=0.1, close_bound=0.1, held=0.5), LaunchPlan(agents=1, iterations=1))
    assert not late.agent_errors
    hung = run(BlocksTheLoopWhileClosing(closing=60, close_bound=0.1, held=0.5), LaunchPlan(agents=1, iterations=1))
    assert hung.agent_errors == {1: "could not stop cleanly: TimeoutError"}, "given its bound once more, no more"
    assert hung.wall_seconds < 5


class ClosesInABusyLoop(SlowToClose):
    """While the agent closes, every turn of the loop is held ``turn`` s by other work (thousands of agents at once).

    The close ends at its own bound, then takes a few more turns, each late by at least ``turn``.
    """

    def __init__(self, closing: float, close_bound: float, turn: float) -> None:
        super().__init__(closing, close_bound)
        self.turn = turn

    async def close_agent(self, agent: AgentContext) -> None:
        loop, until = asyncio.get_running_loop(), time.monotonic() + 2.0

        def hold() -> None:
            time.sleep(self.turn)
            if time.monotonic() < until:
                loop.call_soon(hold)

        loop.call_soon(hold)
        await asyncio.sleep(self.closing)
        for _ in range(6):
            await asyncio.sleep(0)


def test_an_agent_close_is_not_cut_for_a_loop_too_busy_to_end_it_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each turn late by less than the grace, but the turns a close takes after its bound add up past it."""
    monkeypatch.setattr(launcher_module, "CANCEL_GRACE_SECONDS", 0.5)
    busy = run(ClosesInABusyLoop(closing=0.2, close_bound=0.2, turn=0.1), LaunchPlan(agents=1, iterations=1))
    assert not busy.agent_errors
    hung = run(ClosesInABusyLoop(closing=60, close_bound=0.2, turn=0.1), LaunchPlan(agents=1, iterations=1))
    assert hung.agent_errors == {1: "could not stop cleanly: TimeoutError"}
    assert hung.wall_seconds < 5
