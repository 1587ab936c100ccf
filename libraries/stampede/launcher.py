"""The launcher: runs N agents of one tool concurrently and records every operation.

Bounds everywhere: each operation has a timeout, the whole launch has one, and
an agent that does not stop when cancelled is reported as hung, not awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .agents import AgentContext, OpResult, Tool
from .bounds import TaskBound
from .errors import ConfigurationError
from .history import History
from .history_columns import OUTCOME_CODE, ShortRow
from .lag import LoopLagSampler
from .outcomes import Outcome, classify_exception
from .shapes import AllAtOnce, FixedRate, LoadShape, RampInBatches, RateShare

CANCEL_GRACE_SECONDS = 2.0
TURNS_TO_END_A_CLOSE = 5
"""Turns of the loop from a close's own bound firing to this launcher seeing it end: the timer, the cancel, the
abort, the close's end, the wait's wake."""
TIMER_SLACK_NS = 2_000_000
"""How early an event loop's timer may fire: the last of a wait for a shared start is spent yielding, not asleep."""
YOUNG_COLLECTION_ALLOCATIONS = 10_000  # while a launch runs, instead of CPython's 700 (see _collecting_less)


class StartGate(Protocol):
    """What releases a shard's agents together with the other shards' (a launch on workers)."""

    async def released(self) -> int:
        """Wait, once this shard's agents are all ready, for the instant (monotonic ns, this clock) to start at."""
        ...


class _Collector:
    """The launches running at once, and the collector's thresholds before the first of them."""

    launches = 0
    threshold: tuple[int, int, int] = gc.get_threshold()


@dataclass(frozen=True)
class LaunchPlan:
    """How many agents, for how long, in which shape, within which bounds."""

    agents: int
    iterations: int | None = None
    duration: float | None = None
    shape: LoadShape = field(default_factory=AllAtOnce)
    operation_timeout: float = 10.0
    run_timeout: float = 60.0
    users: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.agents, int) or self.agents < 1:
            raise ConfigurationError(f"agents must be a whole number of at least 1, got {self.agents!r}")
        if self.iterations is not None and self.iterations < 1:
            raise ConfigurationError(f"iterations must be at least 1, got {self.iterations}")
        if self.duration is not None and self.duration <= 0:
            raise ConfigurationError(f"duration must be longer than 0 s, got {self.duration} s")
        if self.operation_timeout <= 0:
            raise ConfigurationError(f"operation timeout must be longer than 0 s, got {self.operation_timeout} s")
        if self.run_timeout <= 0:
            raise ConfigurationError(f"launch timeout must be longer than 0 s, got {self.run_timeout} s")
        if self.users is not None and not 1 <= self.users <= self.agents:
            raise ConfigurationError(f"users must be between 1 and the agent count {self.agents}, got {self.users}")

    def user_of(self, agent: int) -> str:
        """The user agent ``agent`` (1-based) acts as: agents spread over the users in turn."""
        return f"user-{(agent - 1) % (self.users or self.agents) + 1}"

    @property
    def iterations_per_agent(self) -> int | None:
        """The iteration bound; one iteration when neither it nor a duration is given."""
        if self.iterations is None and self.duration is None:
            return 1
        return self.iterations

    def describe(self) -> str:
        bounds = []
        if self.iterations_per_agent is not None:
            bounds.append(f"{self.iterations_per_agent} iteration(s) per agent")
        if self.duration is not None:
            bounds.append(f"for {self.duration:g} s")
        return f"{self.agents} agents, {self.shape.describe()}, {' and '.join(bounds)}"


@dataclass(frozen=True)
class WorkersStart:
    """How together a launch on workers started, on the launching process's clock (ns)."""

    scheduled_ns: int  # the instant every shard was released at
    gate_spread_ns: int | None  # from the first shard's gate opening to the last's; None when one never opened
    first_operation_spread_ns: int | None  # from the first agent's first operation to the last agent's
    clock_error_ns: int  # the largest uncertainty ε of a worker's clock offset: each spread is within ± 2ε
    clocks: tuple[str, ...]  # each shard's worker clock offset, as said


@dataclass(frozen=True)
class ToolNotes:
    """What one shard's tool noted beyond the history (a launch on workers), for the tool in the launching process.

    The shard's instants in ``notes`` are on its worker's clock: ``offset_ns``
    (within ± ``error_ns``) ahead of the launch's, for the tool to move them.
    """

    notes: Any
    offset_ns: int = 0
    error_ns: int = 0


@dataclass
class LaunchResult:
    """What a launch did: the history plus what the launcher itself observed."""

    tool: str
    tool_settings: dict[str, str]
    plan: LaunchPlan
    history: History
    started_ns: int
    ended_ns: int
    loop_lag_ns: list[int]
    loop: str
    timed_out: bool = False
    unfinished_agents: list[int] = field(default_factory=list)
    hung_agents: list[int] = field(default_factory=list)
    agent_errors: dict[int, str] = field(default_factory=dict)
    stopped_early: bool = False  # stopped (or aborted) on request before it ran its course
    gate_ns: int | None = None  # when the start gate opened (monotonic ns); None when no agent got that far
    start_failure: str | None = None  # why the start gate never opened (a launch on workers not released)
    workers_start: WorkersStart | None = None  # a launch on workers: how together its shards started
    tool_notes: tuple[ToolNotes, ...] = ()  # a launch on workers: each shard's tool's (see ToolRecipe)

    @property
    def wall_seconds(self) -> float:
        return (self.ended_ns - self.started_ns) / 1e9


class _Launch:
    def __init__(
        self,
        tool: Tool,
        plan: LaunchPlan,
        history_dir: Path | None = None,
        agents: range | None = None,
        start: StartGate | None = None,
    ) -> None:
        self.tool = tool
        self.start = start
        self.gate_ns: int | None = None
        self.start_failure: str | None = None
        self._release: asyncio.Task[None] | None = None
        self.plan = plan
        self.agents = range(1, plan.agents + 1) if agents is None else agents
        """The agents this launch runs: all of the plan's, or one worker's shard of them."""
        self.history = History(directory=history_dir)
        self.agent_errors: dict[int, str] = {}
        self._gate = asyncio.Event()
        self._ready = 0
        self._due_index = itertools.count()
        self._origin_ns = 0
        self._deadline_ns: int | None = None
        self.started_ns: int | None = None  # when the tool's setup was done and agents began to open
        self.stopped = False
        self.aborted = asyncio.Event()
        self.agents_started = 0  # released into their operations (for progress displays)
        self.agents_finished = 0

    def contexts(self) -> list[AgentContext]:
        token = secrets.token_hex(4)
        return [AgentContext(agent, self.plan.user_of(agent), f"m-{token}-{agent}") for agent in self.agents]

    async def run_agent(self, context: AgentContext) -> None:
        try:
            async with asyncio.timeout(self.plan.operation_timeout):
                await self.tool.open_agent(context)
        except Exception as error:  # noqa: BLE001 - reported per agent, the launch goes on
            self.agent_errors[context.agent] = f"could not start: {_describe(error)}"
            self._arrive()
            return
        bound = TaskBound(self.plan.operation_timeout)
        try:
            bound.arm()  # before the barrier, so released agents reach their first operation sooner
            self._arrive()
            await self._wait_for_start(context)
            self.agents_started += 1
            if isinstance(self.plan.shape, FixedRate):
                await self._run_due_operations(
                    context, RateShare(self.plan.shape, self.agents, self.plan.agents), bound
                )
            else:
                await self._run_iterations(context, bound)
            self.agents_finished += 1
        finally:
            bound.close()
            try:
                await self._close_agent(context)
            except Exception as error:  # noqa: BLE001
                self.agent_errors.setdefault(context.agent, f"could not stop cleanly: {_describe(error)}")

    async def _close_agent(self, context: AgentContext) -> None:
        """Close the agent within the grace beyond the tool's own close bound, judged on time the loop kept.

        A close that ends at the tool's own bound still takes a few turns of
        the loop to get here. When thousands of agents close at once, each
        turn is late by about as much as this bound's wake was: if those turns
        add up past the grace, the tool never had its time, and the bound is
        given once more before the close is cut and reported.
        """
        bound = CANCEL_GRACE_SECONDS + getattr(self.tool, "close_bound", 0.0)
        closing = asyncio.ensure_future(self.tool.close_agent(context))
        loop = asyncio.get_running_loop()
        try:
            for _ in range(2):
                due = loop.time() + bound
                await asyncio.wait({closing}, timeout=bound)
                if closing.done() or (loop.time() - due) * TURNS_TO_END_A_CLOSE < CANCEL_GRACE_SECONDS:
                    break
        finally:
            if not closing.done():
                closing.cancel()
                await asyncio.wait({closing}, timeout=CANCEL_GRACE_SECONDS)
        if not closing.done() or closing.cancelled():
            raise TimeoutError
        closing.result()

    def _arrive(self) -> None:
        self._ready += 1
        if self._ready == len(self.agents):
            if self.start is None:
                self._open_gate(time.monotonic_ns())
            else:
                self._release = asyncio.ensure_future(self._released(self.start))

    async def _released(self, start: StartGate) -> None:
        try:
            instant = await start.released()
        except Exception as error:  # noqa: BLE001 - the launch ends, saying why it never started
            self.start_failure = _describe(error)
            self.stopped = True
            self.aborted.set()
            return
        await _sleep_until(instant - TIMER_SLACK_NS)
        while time.monotonic_ns() < instant:  # a loop's timer may fire early (uvloop's by up to 1 ms)
            await asyncio.sleep(0)
        self._open_gate(instant)

    def _open_gate(self, origin_ns: int) -> None:
        self._origin_ns = origin_ns
        if self.plan.duration is not None:
            self._deadline_ns = self._origin_ns + int(self.plan.duration * 1e9)
        self.gate_ns = time.monotonic_ns()
        self._gate.set()

    async def _wait_for_start(self, context: AgentContext) -> None:
        await self._gate.wait()
        shape = self.plan.shape
        if isinstance(shape, RampInBatches):
            start_ns = self._origin_ns + int(shape.start_offset(context.agent - 1) * 1e9)
            await _sleep_until(start_ns)

    def _time_left(self) -> bool:
        if self.stopped:
            return False
        return self._deadline_ns is None or time.monotonic_ns() < self._deadline_ns

    async def _run_iterations(self, context: AgentContext, bound: TaskBound) -> None:
        limit = self.plan.iterations_per_agent
        iteration = 0
        while (limit is None or iteration < limit) and self._time_left() and not context.finished:
            context.iteration = iteration
            await self._run_operation(context, None, bound)
            iteration += 1

    async def _run_due_operations(self, context: AgentContext, share: RateShare, bound: TaskBound) -> None:
        """Run this launch's arrivals as they fall due: every one of the rate's, or on a worker its shard's share."""
        limit = self.plan.iterations_per_agent
        total = None if limit is None else limit * self.plan.agents
        while not self.stopped and not context.finished:
            index = share.arrival(next(self._due_index))
            due_ns = self._origin_ns + int(share.rate.due_offset(index) * 1e9)
            if (total is not None and index >= total) or (
                self._deadline_ns is not None and due_ns >= self._deadline_ns
            ):
                return
            await _sleep_until(due_ns)
            context.iteration = index
            await self._run_operation(context, due_ns, bound)

    async def _run_operation(self, context: AgentContext, due_ns: int | None, bound: TaskBound) -> None:
        start = time.monotonic_ns()
        bound.start(start)
        try:
            result = await self.tool.run(context)
        except asyncio.CancelledError:
            if bound.took_its_cancel():
                self._record(context, start, due_ns, OpResult(Outcome.TIMEOUT, error="operation_timeout"))
                return
            cut_by = "launch_stopped" if self.aborted.is_set() else "launch_timeout"
            self._record(context, start, due_ns, OpResult(Outcome.TIMEOUT, error=cut_by))
            raise
        except Exception as error:  # noqa: BLE001 - every failure is classified and recorded
            # Only the launcher's own bound is "operation_timeout"; a client's timeout is classified.
            outcome, code = (
                (Outcome.TIMEOUT, "operation_timeout") if bound.took_its_cancel() else classify_exception(error)
            )
            self._record(context, start, due_ns, OpResult(outcome, error=code))
        else:
            self._record(context, start, due_ns, result)
        finally:
            bound.stop()

    def _record(self, context: AgentContext, start: int, due: int | None, result: OpResult) -> None:
        # One tuple of plain values in Operation's argument order: the call is on every operation's path.
        # Short unless the operation was retried or carries values or timings (see ShortRow).
        row: ShortRow = (
            context.agent,
            context.user,
            self.tool.name,
            context.iteration,
            start,
            time.monotonic_ns(),
            OUTCOME_CODE[result.outcome],
            due,
            result.error,
        )
        if result.retries or result.read is not None or result.written is not None or result.timings is not None:
            tail = (result.retries, result.retry_causes, result.exhausted, result.read, result.written, result.timings)
            self.history.record((*row, *tail, 0))
        else:
            self.history.record(row)


async def _sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class RunningLaunch:
    """A launch running on the loop: watch its progress, stop it, or await its result.

    ``stop()`` is graceful (each agent finishes the operation it is in and starts
    no new one); ``abort()`` cuts agents off as the launch timeout would.
    """

    def __init__(self, run: _Launch, task: asyncio.Task[LaunchResult]) -> None:
        self._run = run
        self._aborted = run.aborted
        self.task = task

    @property
    def operations(self) -> int:
        """Operations recorded so far."""
        return len(self._run.history)

    @property
    def history(self) -> History:
        """The operations recorded so far; it grows while the launch runs."""
        return self._run.history

    @property
    def plan(self) -> LaunchPlan:
        return self._run.plan

    @property
    def started_ns(self) -> int | None:
        """When the launch started (monotonic ns, as ``LaunchResult.started_ns``); None while its tool sets up."""
        return self._run.started_ns

    @property
    def agents_started(self) -> int:
        """Agents released into their operations so far."""
        return self._run.agents_started

    @property
    def agents_finished(self) -> int:
        """Agents that ran all their operations (or ran out of time) and stopped."""
        return self._run.agents_finished

    @property
    def agents_failed(self) -> int:
        """Agents that could not start or stop cleanly so far."""
        return len(self._run.agent_errors)

    @property
    def done(self) -> bool:
        return self.task.done()

    def stop(self) -> None:
        self._run.stopped = True

    def abort(self) -> None:
        self._run.stopped = True
        self._aborted.set()

    async def settle(self, within: float, grace: float) -> bool:
        """Wait up to ``within`` s for the launch to end by itself and say whether it did.

        Past that it is stopped, and agents still busy ``grace`` s later are
        cut off; either way the launch has ended when this returns (bounded).
        """
        if await self._ended_within(within):
            return True
        self.stop()
        if not await self._ended_within(grace):
            self.abort()
            await self._ended_within(CANCEL_GRACE_SECONDS * 7)  # agents' grace, then the tool's teardown
        return False

    async def _ended_within(self, seconds: float) -> bool:
        done, _ = await asyncio.wait({self.task}, timeout=seconds)
        return bool(done)


def start_launch(
    tool: Tool,
    plan: LaunchPlan,
    history_dir: Path | None = None,
    agents: range | None = None,
    start: StartGate | None = None,
) -> RunningLaunch:
    """Start ``plan.agents`` agents of ``tool`` on the running loop and return at once (see :func:`launch`)."""
    run = _Launch(tool, plan, history_dir, agents, start)
    return RunningLaunch(run, asyncio.ensure_future(_execute(run)))


async def launch(
    tool: Tool,
    plan: LaunchPlan,
    history_dir: Path | None = None,
    agents: range | None = None,
    start: StartGate | None = None,
) -> LaunchResult:
    """Run ``plan.agents`` agents of ``tool`` and return everything they did.

    The history is written, chunk by chunk as it fills, to ``history_dir`` when
    given (so a long launch holds one chunk in memory), else kept in memory.
    ``agents`` runs only those of the plan's agents (a worker's shard, numbered
    as in the whole launch); the others run elsewhere. ``start``, when given,
    holds them, once all are ready, until the instant it says (the other
    shards' agents are released then too).

    The history is complete even when the launch times out: operations cut off
    by the launch timeout are recorded as timeouts, agents that ignore
    cancellation are listed as hung and left behind, never awaited.
    """
    return await _execute(_Launch(tool, plan, history_dir, agents, start))


@contextlib.contextmanager
def _collecting_less() -> Iterator[None]:
    """Run the cyclic garbage collector less often while launches run, as it was afterwards.

    A launch keeps a record of every operation (the history, the tool's own
    records): at CPython's default, a young collection after every 700 new
    objects and now and then a full one over all of them, collecting cost
    about 5 µs of CPU per HTTP operation (a fifth of the tool's own cost).
    After 10,000 objects it costs about 1.5 µs. Nothing is left uncollected:
    garbage cycles only wait a little longer.
    """
    if _Collector.launches == 0:
        _Collector.threshold = young, older, oldest = gc.get_threshold()
        gc.set_threshold(max(young, YOUNG_COLLECTION_ALLOCATIONS), older, oldest)
    _Collector.launches += 1
    try:
        yield
    finally:
        _Collector.launches -= 1
        if _Collector.launches == 0:
            gc.set_threshold(*_Collector.threshold)


async def _execute(run: _Launch) -> LaunchResult:
    with _collecting_less():
        return await _execute_plan(run)


async def _execute_plan(run: _Launch) -> LaunchResult:
    tool, plan = run.tool, run.plan
    sampler = LoopLagSampler()
    await asyncio.wait_for(tool.setup(len(run.agents)), plan.run_timeout)
    started = run.started_ns = time.monotonic_ns()
    sampler.start()
    tasks = {asyncio.create_task(run.run_agent(context)): context.agent for context in run.contexts()}
    unfinished: list[int] = []
    hung: list[int] = []
    try:
        all_done = asyncio.ensure_future(asyncio.wait(tasks))
        aborted = asyncio.ensure_future(run.aborted.wait())
        await asyncio.wait({all_done, aborted}, timeout=plan.run_timeout, return_when=asyncio.FIRST_COMPLETED)
        all_done.cancel()
        aborted.cancel()
        pending = [task for task in tasks if not task.done()]
        for task, agent in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                run.agent_errors[agent] = _describe(task.exception())  # type: ignore[arg-type]
        if pending:
            unfinished = sorted(tasks[task] for task in pending)
            for task in pending:
                task.cancel()
            _, still_running = await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)
            hung = sorted(tasks[task] for task in still_running)
    finally:
        ended = time.monotonic_ns()
        if run._release is not None:
            run._release.cancel()
        lag = await sampler.stop()
        # Hung agents may still be running: no new operations, and the history below is a copy.
        stopped_early = run.stopped
        run.stopped = True
        try:
            await asyncio.wait_for(tool.teardown(), CANCEL_GRACE_SECONDS * 5)
        except Exception as error:  # noqa: BLE001 - the history must survive a failing teardown
            run.agent_errors[0] = f"(tool teardown) failed: {_describe(error)}"
    return LaunchResult(
        tool=tool.name,
        tool_settings=tool.describe(),
        plan=plan,
        history=run.history.snapshot(),
        started_ns=started,
        ended_ns=ended,
        loop_lag_ns=lag,
        loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        timed_out=bool(unfinished) and not run.aborted.is_set(),
        unfinished_agents=unfinished,
        hung_agents=hung,
        agent_errors=run.agent_errors,
        stopped_early=stopped_early,
        gate_ns=run.gate_ns,
        start_failure=run.start_failure,
    )
