"""Keywords that launch agents and hand back what they did."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
from robot.api.deco import keyword

from stampede.agents import Tool
from stampede.errors import ConfigurationError, StampedeError
from stampede.launcher import LaunchPlan, LaunchResult, RunningLaunch, start_launch
from stampede.metrics import summarize
from stampede.progress import LaunchTally, ProgressSource
from stampede.shapes import AllAtOnce, FixedRate, LoadShape, RampInBatches
from stampede.units import format_duration, positive_seconds, require_positive_int
from stampede.workers import ToolRecipe, WorkersFailed, launch_on_workers
from stampede.workers_running import WorkersRunning

from ..component import LibraryComponent
from ..launch_charts import inline_html
from ..progress import showing_progress
from ..report import launch_table
from ..reporting import findings, slug
from ..runtime import STOP_GRACE_SECONDS, BackgroundLaunch, LaunchRecord, Running

SETUP_ALLOWANCE_SECONDS = 60.0
PROGRESS_POLL_SECONDS = 0.02
DEFAULT_OPERATION_TIMEOUT = timedelta(seconds=10)
_CANNOT_START = (StampedeError, TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _shape(batch_size: int | None, batch_interval: timedelta, rate: float | None) -> LoadShape:
    if batch_size is not None and rate is not None:
        raise ConfigurationError("Give either batch_size (ramp in batches) or rate (fixed arrival rate), not both.")
    if rate is not None:
        return FixedRate(rate)
    if batch_size is not None:
        return RampInBatches(batch_size, batch_interval.total_seconds())
    return AllAtOnce()


class LaunchKeywords(LibraryComponent):
    @keyword(tags=["launching"])
    def launch_agents(
        self,
        tool: str,
        agents: int,
        *,
        iterations: int | None = None,
        duration: timedelta | None = None,
        batch_size: int | None = None,
        batch_interval: timedelta = timedelta(seconds=1),
        rate: float | None = None,
        users: int | None = None,
        operation_timeout: timedelta | None = None,
        timeout: timedelta = timedelta(seconds=60),
        workers: int = 1,
        cluster: str | None = None,
    ) -> LaunchRecord:
        """Runs ``agents`` agents of ``tool`` concurrently and waits (at most ``timeout``) for them to finish.

        ``agents`` is a whole number of at least 1. Every argument after it is
        named: ``iterations=5``, ``duration=10 s``.

        Load shape:
        - by default all agents get ready, wait at a start barrier and are released
          at the same instant: the most contention the machine can produce;
        - ``batch_size`` ramps up in batches, one every ``batch_interval``;
        - ``rate`` runs operations at a fixed arrival rate (per second) with
          latency counted from when each operation was due, so a stalled server
          cannot hide behind busy agents.

        Each agent runs ``iterations`` operations (1 by default), or keeps going
        for ``duration``. ``users`` spreads agents over that many user ids
        (default: one user per agent). Each operation is bounded by
        ``operation_timeout`` (by default 10 s, or longer when the tool's own
        waits add up to more); an agent still running at ``timeout`` is cut off,
        and one that ignores cancellation is reported as hung.

        The launch never fails because operations failed: checkers and
        thresholds judge that. It fails when it could not run as asked (a tool
        that cannot start, agents cut off by ``timeout``). Every operation is
        saved as JSON lines under ``${OUTPUT DIR}/histories`` either way (and,
        as the launch runs, in Arrow chunk files in a folder of its own there),
        and a summary table is logged. Returns the launch, for checker keywords.

        To do other things while agents run (inject a fault, look at the data),
        use `Launch Agents In Background` instead.

        ``workers`` above 1 splits the agents by number into that many shards,
        each run in a worker process of its own on Dask distributed: a local
        cluster started for the launch, or the workers of the scheduler at
        ``cluster`` (``tcp://host:8786``). Their histories are merged, so checks
        and thresholds judge the launch as one. Every shard opens its agents,
        then all are released at one instant; the log's table gives the gate
        and first-operation spreads and each worker's clock offset (probed
        before and after, each row's times shifted onto this machine's clock
        with its uncertainty). A worker that dies or stalls fails the launch
        naming its shard; what the other shards did is saved all the same (JSON
        lines ending ``.kept.jsonl`` beside its chunk folder under
        ``histories``), and the failure says where. Rebuilt in the workers:
        Python tools (`Define Python Tool`), the SQL tool, the credit deduction
        tool, the lock tool (`Define Lock Tool`: its lock timings moved onto
        this machine's clock, an overlap within the clocks' uncertainty
        inconclusive; not an in-process ``python:`` lock, which cannot be
        shared between processes), the WebSocket agent tool (each worker signs
        its users' tokens; what they received is judged together) and the HTTP
        agent tool (each user's threads are made here before the launch, so a
        user's agents share them in whichever worker they run). The load shape
        holds across them: a ramp starts each agent by its number in the whole
        launch, and a ``rate`` is split, each shard running the arrivals that
        fall to its agents (a share in proportion to them), so the shards keep
        between them the one schedule and each latency counts from its
        operation's intended start. The console's progress line adds up the
        shards'.

        | Launch Agents | deduct | 50 |
        | Launch Agents | deduct | 100 | iterations=5 | batch_size=25 | batch_interval=1 s |
        | ${launch}= | Launch Agents | deduct | 20 | rate=200 | duration=10 s |
        | Launch Agents | deduct | 2000 | iterations=10 | workers=4 |
        | Launch Agents | deduct | 200 | rate=2000 | duration=1 min | workers=2 |
        """
        with self._attempt(tool):
            chosen = self.runtime.tool(tool)
            bound = _operation_bound(chosen, operation_timeout)
            plan = _plan(agents, iterations, duration, batch_size, batch_interval, rate, users, bound, timeout)
            if workers != 1 or cluster is not None:
                recipe = self._recipe_for_workers(chosen, plan)
                count = require_positive_int(workers, what="workers")
                history_dir = self._history_dir(chosen)
                return self._finish(
                    chosen,
                    self._after_workers(
                        chosen,
                        history_dir,
                        lambda: launch_on_workers(
                            recipe,
                            plan,
                            count,
                            history_dir,
                            cluster,
                            watch=lambda live: showing_progress(live.progress, tool),
                        ),
                    ),
                )
            try:
                running = self.runtime.run(_start(chosen, plan, self._history_dir(chosen)))
                with showing_progress(LaunchTally(running), tool):
                    result = self.runtime.run(_result(running), timeout=plan.run_timeout + SETUP_ALLOWANCE_SECONDS)
            except _CANNOT_START as error:
                raise StampedeError(f"Launch of {tool!r} with {plan.agents} agents could not start: {error}") from error
            return self._finish(chosen, result)

    @keyword(tags=["launching"])
    def launch_agents_in_background(
        self,
        tool: str,
        agents: int,
        *,
        iterations: int | None = None,
        duration: timedelta | None = None,
        batch_size: int | None = None,
        batch_interval: timedelta = timedelta(seconds=1),
        rate: float | None = None,
        users: int | None = None,
        operation_timeout: timedelta | None = None,
        timeout: timedelta = timedelta(seconds=60),
        workers: int = 1,
        cluster: str | None = None,
    ) -> BackgroundLaunch:
        """Starts agents like `Launch Agents` does, but returns at once with a handle to the running launch.

        The arguments are those of `Launch Agents`. While the agents run, other
        keywords can inject faults, query the data or wait for progress with
        `Wait For Operations`. Then `Wait For Launch` (or `Stop Launch`) gives
        the finished launch, which checkers judge like any other. A launch
        nobody waited for is stopped when the suite's services stop.

        With ``workers`` (and ``cluster``) the launch runs on workers as
        `Launch Agents` says; `Wait For Operations` counts the operations the
        shards have published (a few times a second), and a stop is graceful
        in every shard.

        | ${load}= | Launch Agents In Background | deduct | 20 | duration=10 s |
        | Wait For Operations | ${load} | 100 |
        | Terminate PostgreSQL Backends | fraction=50% |
        | ${launch}= | Wait For Launch | ${load} | timeout=30 s |
        | ${load}= | Launch Agents In Background | deduct | 200 | duration=10 min | workers=2 |
        """
        with self._attempt(tool):
            chosen = self.runtime.tool(tool)
            bound = _operation_bound(chosen, operation_timeout)
            plan = _plan(agents, iterations, duration, batch_size, batch_interval, rate, users, bound, timeout)
            running: Running
            if workers != 1 or cluster is not None:
                recipe = self._recipe_for_workers(chosen, plan)
                count = require_positive_int(workers, what="workers")
                running = WorkersRunning(recipe, plan, count, self._history_dir(chosen), cluster)
            else:
                running = self.runtime.run(_start(chosen, plan, self._history_dir(chosen)))
        handle = BackgroundLaunch(len(self.runtime.background) + 1, chosen, plan, running)
        self.runtime.background.append(handle)
        self.log(f"Started {handle}: {plan.describe()}.")
        return handle

    @keyword(tags=["launching"])
    def wait_for_operations(
        self, launch: BackgroundLaunch, count: int, timeout: timedelta = timedelta(seconds=30)
    ) -> int:
        """Waits until the background ``launch`` has recorded at least ``count`` operations; returns how many it has.

        Use it to inject a fault once the load is really running. Fails when
        ``timeout`` passes first, or when the launch ends before reaching ``count``.

        | ${load}= | Launch Agents In Background | deduct | 20 | duration=10 s |
        | Wait For Operations | ${load} | 200 | timeout=5 s |
        """
        bound = positive_seconds(timeout, what="timeout")
        count = require_positive_int(count, what="count")
        _check_handle(launch)
        deadline = time.monotonic() + bound
        with showing_progress(_progress(launch.running), launch.tool.name):
            while launch.running.operations < count:
                if launch.running.done:
                    raise StampedeError(
                        f"{launch} ended after {launch.running.operations} operations, before reaching {count}."
                    )
                if time.monotonic() >= deadline:
                    raise StampedeError(
                        f"{launch} had run {launch.running.operations} operations when the {format_duration(bound)} "
                        f"wait for {count} ran out."
                    )
                time.sleep(PROGRESS_POLL_SECONDS)
        return launch.running.operations

    @keyword(tags=["launching"])
    def wait_for_launch(self, launch: BackgroundLaunch, timeout: timedelta = timedelta(seconds=60)) -> LaunchRecord:
        """Waits at most ``timeout`` for the background ``launch`` to finish and returns it, like `Launch Agents`.

        Checkers then judge it (it is also the latest launch). A launch still
        running when ``timeout`` runs out is stopped and this keyword fails,
        saying so; its history is kept. Each background launch is waited for once.

        | ${launch}= | Wait For Launch | ${load} |
        | ${launch}= | Wait For Launch | ${load} | timeout=2 min |
        """
        return self._collect(launch, positive_seconds(timeout, what="timeout"), stop=False)

    @keyword(tags=["launching"])
    def stop_launch(self, launch: BackgroundLaunch, timeout: timedelta = timedelta(seconds=30)) -> LaunchRecord:
        """Stops the background ``launch`` and returns it: each agent ends the operation it is in and starts no more.

        Agents still busy after ``timeout`` are cut off and the keyword fails.

        | ${load}= | Launch Agents In Background | deduct | 20 | duration=10 min |
        | Partition | ${proxy} |
        | ${launch}= | Stop Launch | ${load} |
        """
        return self._collect(launch, positive_seconds(timeout, what="timeout"), stop=True)

    def _collect(self, launch: BackgroundLaunch, bound: float, *, stop: bool) -> LaunchRecord:
        _check_handle(launch)
        if launch.waited:
            became = f": it is launch {launch.record.number}" if launch.record else ""
            raise StampedeError(f"{launch} was already waited for{became}. Wait for each background launch once.")
        launch.waited = True
        running = launch.running
        if stop:
            running.stop()
        grace = min(launch.plan.operation_timeout, STOP_GRACE_SECONDS)
        with self._attempt(launch.tool.name):
            with showing_progress(_progress(running), launch.tool.name):
                finished = self.runtime.run(
                    running.settle(bound, grace), timeout=bound + grace + SETUP_ALLOWANCE_SECONDS
                )
            try:
                if isinstance(running, WorkersRunning):
                    result = self._after_workers(
                        launch.tool, running.history_dir, lambda: self.runtime.run(_result(running))
                    )
                else:
                    result = self.runtime.run(_result(running))
            except WorkersFailed:
                raise  # it started: a worker was lost, and the error says which
            except _CANNOT_START as error:
                raise StampedeError(f"{launch} could not start: {error}") from error
            record = self._finish(launch.tool, result, overran=None if finished else bound)
        launch.record = record
        return record

    def _recipe_for_workers(self, tool: Tool, plan: LaunchPlan) -> ToolRecipe:
        """The tool's recipe for the workers, once the tool has done here what it needs (it is set up only there).

        A tool that cannot be rebuilt is refused before it does anything; the recipe is taken after, since it
        carries what was done (the HTTP tool's threads).
        """
        _recipe(tool)
        before = getattr(tool, "before_workers", None)
        if before is not None:
            self.runtime.run(before(plan))
        return _recipe(tool)

    @contextlib.contextmanager
    def _attempt(self, tool: str) -> Iterator[None]:
        """A launch attempt: one that fails before a launch is recorded is noted as not run, with its cause.

        The checks after it in the test then say "not judged: launch N did not run", not an error of their own.
        """
        numbers = self.runtime.launch_numbers
        try:
            yield
        except Exception as error:
            if self.runtime.launch_numbers == numbers:
                missed = self.runtime.did_not_run(tool, self.scope(), str(error))
                self.log(f"Launch {missed.number} of {tool!r} did not run: checks that depend on it are not judged.")
            raise

    def _after_workers(
        self, tool: Tool, history_dir: Path | None, launched: Callable[[], LaunchResult]
    ) -> LaunchResult:
        """The launch on workers; when a worker was lost, what the others did is saved and the failure says where.

        Once every shard has ended, the tool does here what it must (``after_workers``), whatever the outcome.
        """
        after = getattr(tool, "after_workers", None)
        done: LaunchResult | None = None
        try:
            done = launched()
            return done
        except WorkersFailed as failed:
            done = failed.kept
            if done is None or history_dir is None:
                raise
            saved = done.history.write_jsonl(history_dir.with_name(f"{history_dir.stem}.kept.jsonl"))
            raise WorkersFailed(
                f"{failed}: {len(done.history)} operations of the shards that answered, saved in {saved} "
                f"(Arrow chunks in {history_dir})",
                done,
            ) from None
        finally:
            if after is not None:
                self.runtime.run(after(done))

    def _history_dir(self, tool: Tool) -> Path:
        """Where the launch writes its history's chunks as they fill: a folder of its own beside the JSON lines."""
        test = self.variable("TEST NAME") or self.variable("SUITE NAME", "suite")
        name = f"{slug(test, 'launch')}.{slug(tool.name, 'launch')}.{self.runtime.run_id}.{secrets.token_hex(4)}.chunks"
        return self.output_dir / "histories" / name

    def _finish(self, tool: Tool, result: LaunchResult, overran: float | None = None) -> LaunchRecord:
        """Save the history, log the summary table, and fail when the launch did not run as asked."""
        number = self.runtime.next_launch_number()
        test = self.variable("TEST NAME") or self.variable("SUITE NAME", "suite")
        history_file = result.history.write_jsonl(
            self.output_dir
            / "histories"
            / f"{slug(test, 'launch')}.{number}.{slug(tool.name, 'launch')}.{self.runtime.run_id}.jsonl"
        )
        summary = summarize(result, getattr(tool, "timed_phases", ()))
        record = LaunchRecord(number, tool, result, summary, history_file, self.scope())
        self.runtime.launches.append(record)
        self.log_html(launch_table(record))
        self.log_html(inline_html(findings.charts(record)))
        plan = result.plan
        errors = sorted(result.agent_errors.items())
        problems = [f"agent {agent} {error}" if agent else error for agent, error in errors]
        if overran is not None:
            problems.insert(
                0,
                f"it was still running when the {format_duration(overran)} wait ran out, so it was stopped "
                f"after {len(result.history)} operations"
                + (f" (agents {_ids(result.unfinished_agents)} cut off)" if result.unfinished_agents else ""),
            )
        elif result.timed_out:
            problems.insert(
                0,
                f"the launch hit its {plan.run_timeout:g} s timeout with {len(result.unfinished_agents)} of "
                f"{plan.agents} agents unfinished (agents {_ids(result.unfinished_agents)})"
                + (f"; hung, ignoring cancellation: agents {_ids(result.hung_agents)}" if result.hung_agents else ""),
            )
        if problems:
            raise StampedeError(f"Launch {number} of {tool.name!r} did not run as asked: " + "; ".join(problems[:10]))
        return record


def _plan(
    agents: int,
    iterations: int | None,
    duration: timedelta | None,
    batch_size: int | None,
    batch_interval: timedelta,
    rate: float | None,
    users: int | None,
    operation_timeout: timedelta,
    timeout: timedelta,
) -> LaunchPlan:
    return LaunchPlan(
        agents=require_positive_int(agents, what="agents"),
        iterations=iterations,
        duration=duration.total_seconds() if duration is not None else None,
        shape=_shape(batch_size, batch_interval, rate),
        operation_timeout=operation_timeout.total_seconds(),
        run_timeout=timeout.total_seconds(),
        users=users,
    )


def _operation_bound(tool: Tool, given: timedelta | None) -> timedelta:
    """``given``, else 10 s or the tool's own bound on one operation (its connect, answer and run waits) if longer."""
    if given is not None:
        return given
    own = getattr(tool, "operation_bound", 0.0)
    return max(DEFAULT_OPERATION_TIMEOUT, timedelta(seconds=own))


def _recipe(tool: Tool) -> ToolRecipe:
    """What rebuilds ``tool`` in a worker process; a tool that cannot be is refused, saying which can."""
    recipe = getattr(tool, "recipe", None)
    if recipe is None:
        raise ConfigurationError(
            f"Tool {tool.name!r} cannot run on workers yet: Python tools (Define Python Tool), the SQL tool, the "
            "credit deduction tool, the lock tool and the WebSocket and HTTP agent tools are rebuilt in a worker "
            "process. Launch it with workers=1."
        )
    built: ToolRecipe = recipe()
    return built


def _progress(running: Running) -> ProgressSource:
    return running if isinstance(running, WorkersRunning) else LaunchTally(running)


def _check_handle(launch: object) -> None:
    if not isinstance(launch, BackgroundLaunch):
        raise ConfigurationError(f"Expected the handle Launch Agents In Background returns, got {launch!r}.")


async def _start(tool: Tool, plan: LaunchPlan, history_dir: Path) -> RunningLaunch:
    running = start_launch(tool, plan, history_dir)
    await asyncio.sleep(0)  # let it begin: a setup that fails at once is reported when its result is awaited
    return running


async def _result(running: Running) -> LaunchResult:
    return await running.task


def _ids(agents: list[int]) -> str:
    shown = ", ".join(str(a) for a in agents[:10])
    return shown + (f" and {len(agents) - 10} more" if len(agents) > 10 else "")
