"""Live launch progress: the figures from a running launch, and the console line (terminal only, not in CI)."""

from __future__ import annotations

import asyncio
import io
import os
import time

import pytest

from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.launcher import LaunchPlan, RunningLaunch, start_launch
from stampede.outcomes import Outcome
from stampede.progress import LaunchTally, Progress, ProgressMeter, Tally
from stampede_robot import progress as console_progress
from stampede_robot.progress import ConsoleProgress, console_is_interactive, showing_progress


class OutcomeTool(BaseTool):
    """Each agent's operations end with the outcomes given for it, in turn; agent 3 cannot start."""

    name = "outcomes"

    def __init__(self, outcomes: list[Outcome], failing_agent: int | None = None) -> None:
        self.outcomes = outcomes
        self.failing_agent = failing_agent

    async def open_agent(self, agent: AgentContext) -> None:
        if agent.agent == self.failing_agent:
            raise ConnectionError("refused")

    async def run(self, agent: AgentContext) -> OpResult:
        return OpResult(self.outcomes[agent.iteration % len(self.outcomes)])


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def finished_launch(tool: BaseTool, plan: LaunchPlan) -> RunningLaunch:
    async def run() -> RunningLaunch:
        running = start_launch(tool, plan)
        await running.task
        return running

    return asyncio.run(run())


def test_a_finished_launch_counts_its_agents_operations_errors_and_conflicts() -> None:
    tool = OutcomeTool([Outcome.OK, Outcome.ERROR, Outcome.DEADLOCK, Outcome.TIMEOUT], failing_agent=3)
    running = finished_launch(tool, LaunchPlan(agents=4, iterations=4))
    clock = FakeClock()
    meter = ProgressMeter(LaunchTally(running), clock)
    clock.now += 2.0

    progress = meter.sample()

    # Agent 3 never started: 3 agents x 4 operations, 2 errors/timeouts each, 1 deadlock each.
    assert progress == Progress(
        agents=4, started=3, finished=3, operations=12, operations_per_second=6.0, errors=7, conflicts=3, elapsed=2.0
    )


def test_the_rate_is_over_the_time_since_the_previous_sample_and_operations_are_counted_once() -> None:
    running = finished_launch(OutcomeTool([Outcome.ERROR]), LaunchPlan(agents=2, iterations=5))
    clock = FakeClock()
    meter = ProgressMeter(LaunchTally(running), clock)
    clock.now += 0.5
    first = meter.sample()
    clock.now += 0.5
    second = meter.sample()

    assert (first.operations_per_second, first.errors) == (20.0, 10)
    assert (second.operations_per_second, second.errors, second.elapsed) == (0.0, 10, 1.0)


class Shards:
    """The tallies a launch's shards published last, as the launching process reads them."""

    agents = 10

    def __init__(self, *tallies: Tally) -> None:
        self.tallies = list(tallies)

    def tally(self) -> Tally:
        return sum(self.tallies, Tally())


def test_the_shards_tallies_add_up_to_one_launchs_progress_with_the_rate_over_all_of_them() -> None:
    shards = Shards(Tally(5, 1, 40, 2, 3), Tally(5, 0, 60, 0, 1))
    clock = FakeClock()
    meter = ProgressMeter(shards, clock)
    clock.now += 1.0
    first = meter.sample()
    shards.tallies[1] = Tally(5, 5, 160, 1, 1)  # one shard published again; the other has not since
    clock.now += 0.5
    second = meter.sample()

    assert first == Progress(
        agents=10,
        started=10,
        finished=1,
        operations=100,
        operations_per_second=100.0,
        errors=2,
        conflicts=4,
        elapsed=1.0,
    )
    assert second == Progress(
        agents=10,
        started=10,
        finished=6,
        operations=200,
        operations_per_second=200.0,
        errors=3,
        conflicts=4,
        elapsed=1.5,
    ), "a shard that did not publish counts with its last tally"


def test_the_progress_line_reads_as_figures() -> None:
    progress = Progress(
        agents=50,
        started=50,
        finished=12,
        operations=1234,
        operations_per_second=410.4,
        errors=1,
        conflicts=27,
        elapsed=4.25,
    )
    assert progress.describe() == (
        "50/50 agents started, 12 finished | 1234 ops, 410 ops/s | 1 error, 27 conflicts | 4.2 s"
    )


@pytest.mark.parametrize(
    ("stream", "environ", "interactive"),
    [
        (Terminal(), {}, True),
        (Terminal(), {"CI": "false"}, True),
        (Terminal(), {"CI": "true"}, False),
        (Terminal(), {"CI": "1"}, False),
        (Terminal(), {"TERM": "dumb"}, False),
        (io.StringIO(), {}, False),
        (None, {}, False),
    ],
)
def test_progress_shows_only_in_a_terminal_outside_ci(
    stream: io.StringIO | None, environ: dict[str, str], interactive: bool
) -> None:
    assert console_is_interactive(stream, environ) is interactive


def terminal_width(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    monkeypatch.setattr(console_progress.shutil, "get_terminal_size", lambda: os.terminal_size((columns, 24)))


def test_the_console_line_is_drawn_under_robots_line_at_most_every_half_second_and_erased_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal_width(monkeypatch, 200)
    running = finished_launch(OutcomeTool([Outcome.OK]), LaunchPlan(agents=3, iterations=2))
    terminal, clock = Terminal(), FakeClock()
    progress = ConsoleProgress(LaunchTally(running), "deduct", terminal, environ={}, clock=clock)

    progress.update()
    assert terminal.getvalue() == "", "nothing in the first second: quick launches do not flicker"
    clock.now += 1.0
    progress.update()
    clock.now += 0.2
    progress.update()
    drawn = terminal.getvalue()
    progress.clear()

    assert drawn == (
        "\x1bD\x1bM\x1b7\x1bD\r  deduct: 3/3 agents started, 3 finished | 6 ops, 6 ops/s | 0 errors, 0 conflicts"
        " | 1.0 s\x1b[K\x1b8"
    ), "one draw: on the line below, cursor back where Robot left it"
    assert terminal.getvalue() == drawn + "\x1b7\x1bD\r\x1b[K\x1b8"
    assert "\n" not in terminal.getvalue(), "Robot's own lines are never moved"


def test_the_console_line_is_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal_width(monkeypatch, 30)
    running = finished_launch(OutcomeTool([Outcome.OK]), LaunchPlan(agents=1))
    terminal, clock = Terminal(), FakeClock()
    progress = ConsoleProgress(LaunchTally(running), "deduct", terminal, environ={}, clock=clock)
    clock.now += 1.0
    progress.update()

    line = terminal.getvalue().split("\r", 1)[1].split("\x1b[K")[0]
    assert line == "  deduct: 1/1 agents started,"


@pytest.mark.parametrize(("stream", "environ"), [(io.StringIO(), {}), (Terminal(), {"CI": "true"})])
def test_nothing_is_written_outside_a_terminal_or_in_ci(
    stream: io.StringIO, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = finished_launch(OutcomeTool([Outcome.OK]), LaunchPlan(agents=1))
    clock = FakeClock()
    progress = ConsoleProgress(LaunchTally(running), "deduct", stream, environ=environ, clock=clock)
    clock.now += 5.0
    progress.update()
    progress.clear()
    assert stream.getvalue() == ""


def test_a_waiting_block_in_ci_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(console_progress, "SHOW_AFTER_SECONDS", 0.0)
    running = finished_launch(OutcomeTool([Outcome.OK]), LaunchPlan(agents=1))
    terminal = Terminal()
    with showing_progress(LaunchTally(running), "deduct", terminal):
        time.sleep(0.3)
    assert terminal.getvalue() == ""


def test_a_waiting_block_shows_progress_from_a_helper_thread_and_erases_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(console_progress, "SHOW_AFTER_SECONDS", 0.0)
    running = finished_launch(OutcomeTool([Outcome.OK]), LaunchPlan(agents=2))
    terminal = Terminal()
    with showing_progress(LaunchTally(running), "deduct", terminal):
        for _ in range(100):  # bounded: 5 s at most
            if "agents started" in terminal.getvalue():
                break
            time.sleep(0.05)
    assert "2/2 agents started" in terminal.getvalue()
    assert terminal.getvalue().endswith("\x1b7\x1bD\r\x1b[K\x1b8"), "erased when the wait ended"
