"""Metrics cost: record 1,000,000 operations as the launcher does, then compute every figure.

Each operation is recorded by the launcher's own ``_record`` (the call made as an
operation ends) into the launch's History, which writes its full chunks to a
temporary folder as a launch from Robot does (under results/histories/); then
summarize_history computes all percentiles, rates, per-operation and per-phase figures.

Reports the CPU time (time.process_time: every thread of the process) of
recording plus summarizing (the median of --repeat runs: on a shared virtual
machine one run's CPU time varies by a fifth), and the memory (tracemalloc peak, and RSS growth).
What stands in for the agents and their service (a loop handing each operation's
context and result to ``_record``) is timed alone, handing them to a function
that does nothing, and taken out: that is the agents' time, not recording's.
The total with it is printed too. Target: under 1 s of CPU and under 50 MB.

Run: .venv/bin/python bench/metrics_cost.py [--operations 1000000] [--with-timings] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line
from stampede.agents import AgentContext, OpResult
from stampede.history import History
from stampede.history_columns import Row
from stampede.launcher import LaunchPlan, _Launch
from stampede.metrics import summarize_history
from stampede.outcomes import Outcome

CPU_TARGET_S = 1.0
MEMORY_TARGET_MB = 50.0
_LATENCIES = 4099
"""Distinct latencies (a prime: they do not line up with the agents or the 100 outcomes)."""

Record = Callable[[AgentContext, int, "int | None", OpResult], None]


class _Named:
    """A tool as far as recording knows one: its name."""

    def __init__(self, name: str) -> None:
        self.name = name


class Recorder(Protocol):
    def record(self, row: Row) -> None: ...


R = TypeVar("R", bound=Recorder)


def _launch(agents: int) -> _Launch:
    """A launch of ``agents`` agents of a tool named ``deduct``, not started: its ``_record`` and its contexts."""
    return _Launch(_Named("deduct"), LaunchPlan(agents))  # type: ignore[arg-type]


def record(history: R, operations: int, agents: int, with_timings: bool) -> R:
    """``history`` with ``operations`` operations recorded by the launcher's own ``_record``, as each ends."""
    launch = _launch(agents)
    launch.history = history  # type: ignore[assignment]
    agents_loop(launch._record, launch.contexts(), operations, with_timings)
    return history


def agents_loop(record: Record, contexts: list[AgentContext], operations: int, with_timings: bool) -> None:
    """What stands in for the agents and their service: each operation's context and result, handed to ``record``.

    Each agent's operations end in turn; 3% are not OK; latencies come from a
    table, scattered, so sorting does real work.
    """
    outcomes = [Outcome.OK] * 97 + [Outcome.CONFLICT, Outcome.TIMEOUT, Outcome.ERROR]
    results = [OpResult(outcome, error=None if outcome is Outcome.OK else outcome.value) for outcome in outcomes]
    latencies = [500_000 + index * 2_654_435_761 % 4_000_000 for index in range(_LATENCIES)]
    agents = len(contexts)
    for index in range(operations):
        context = contexts[index % agents]
        context.iteration = index // agents
        latency = latencies[index % _LATENCIES]
        result = results[index % 100]
        if with_timings:
            result = OpResult(result.outcome, error=result.error, timings={"acquire": latency // 10})
        record(context, time.monotonic_ns() - latency, None, result)


def _ignore(context: AgentContext, start: int, due: int | None, result: OpResult) -> None:
    """Takes what ``_record`` takes and does nothing."""


def measure_memory(operations: int, agents: int, with_timings: bool) -> tuple[float, float]:
    """MB the recorded history holds, and MB summarizing it needs on top at its peak (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as directory:
        return _traced(operations, agents, with_timings, Path(directory))


def _traced(operations: int, agents: int, with_timings: bool, directory: Path) -> tuple[float, float]:
    """Arrow's buffers are not Python allocations: its pool's own count is added (its peak, to be safe)."""
    history = record(History(directory=directory), operations, agents, with_timings)
    held, _ = tracemalloc.get_traced_memory()
    held += pa.total_allocated_bytes()
    tracemalloc.reset_peak()
    summarize_history(history, wall_seconds=60.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak += pa.default_memory_pool().max_memory()
    return held / 2**20, (peak - held) / 2**20


def timed_run(operations: int, agents: int, with_timings: bool) -> tuple[float, float, float, float]:
    """CPU seconds recording took (the stand-in agents' loop taken out), summarizing took, and that loop took;
    and the MB RSS grew by."""
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as directory:
        started = time.process_time()
        history = record(History(directory=Path(directory)), operations, agents, with_timings)
        recorded = time.process_time()
        summary = summarize_history(history, wall_seconds=60.0)
        summarized = time.process_time()
        rss_mb = (psutil.Process().memory_info().rss - rss_before) / 2**20
        assert summary.counts.operations == operations
        del history, summary
    contexts = _launch(agents).contexts()
    started_alone = time.process_time()
    agents_loop(_ignore, contexts, operations, with_timings)
    agents_s = time.process_time() - started_alone
    return recorded - started - agents_s, summarized - recorded, agents_s, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50, help="agents the operations are spread over")
    parser.add_argument("--with-timings", action="store_true", help="give every operation an 'acquire' phase too")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; their median is reported")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    print(machine_line(), flush=True)
    # tracemalloc slows allocation several-fold: time runs without it, then trace memory in a run of its own.
    runs = [timed_run(args.operations, args.agents, args.with_timings) for _ in range(args.repeat)]
    record_s, summary_s, agents_s, _ = sorted(runs, key=lambda run: run[0] + run[1])[len(runs) // 2]
    rss_mb = runs[0][3]  # later runs reuse the memory the first one took
    held_mb, summary_mb = measure_memory(args.operations, args.agents, args.with_timings)
    each = ", ".join(f"{recorded + summarized:.2f}" for recorded, summarized, _, _ in runs)
    print(
        f"{args.operations:,} operations, the median of {len(runs)} runs ({each} s): recording {record_s:.2f} s CPU "
        f"({record_s / args.operations * 1e6:.2f} us per operation), summarizing {summary_s:.2f} s CPU; the "
        f"stand-in agents' loop took {agents_s:.2f} s more ({record_s + summary_s + agents_s:.2f} s in all); the "
        f"history holds {held_mb:.0f} MB ({held_mb * 2**20 / args.operations:.0f} B per operation), summarizing "
        f"needs {summary_mb:.0f} MB more at its peak (tracemalloc); RSS grew {rss_mb:.0f} MB in the first run"
    )
    total_mb = held_mb + summary_mb
    figure(
        "metrics CPU, recording + summarizing",
        f"{record_s + summary_s:.2f} s",
        f"< {CPU_TARGET_S:g} s",
        record_s + summary_s < CPU_TARGET_S,
    )
    figure("metrics CPU, summarizing alone", f"{summary_s:.2f} s", f"< {CPU_TARGET_S:g} s", summary_s < CPU_TARGET_S)
    figure(
        "metrics memory, history + summarizing",
        f"{total_mb:.0f} MB",
        f"< {MEMORY_TARGET_MB:g} MB",
        total_mb < MEMORY_TARGET_MB,
    )
    figure(
        "metrics memory, summarizing alone",
        f"{summary_mb:.0f} MB",
        f"< {MEMORY_TARGET_MB:g} MB",
        summary_mb < MEMORY_TARGET_MB,
    )


if __name__ == "__main__":
    main()
