"""Metrics cost: record 1,000,000 operations in a History as the launcher does, then compute every figure.

Reports the CPU time (time.process_time: every thread of the process) and the memory (tracemalloc peak, and RSS growth)
of recording plus summarize_history (all percentiles, rates, per-operation and per-phase figures).
The history writes its full chunks to a temporary folder, as a launch from Robot does (under
results/histories/). Target: under 1 s of CPU and under 50 MB.

Run: .venv/bin/python bench/metrics_cost.py [--operations 1000000] [--with-timings]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Protocol, TypeVar

import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line
from stampede.history import History
from stampede.history_columns import OUTCOME_CODE, Row
from stampede.metrics import summarize_history
from stampede.outcomes import Outcome

CPU_TARGET_S = 1.0
MEMORY_TARGET_MB = 50.0


class Recorder(Protocol):
    def record(self, row: Row) -> None: ...


R = TypeVar("R", bound=Recorder)


def record(history: R, operations: int, agents: int, with_timings: bool) -> R:
    """``history`` with ``operations`` operations recorded, with the very call the launcher's _record makes."""
    outcomes = [Outcome.OK] * 97 + [Outcome.CONFLICT, Outcome.TIMEOUT, Outcome.ERROR]
    users = [f"user-{agent}" for agent in range(1, agents + 1)]  # an agent's context holds its user once
    clock = 1_000_000_000
    for index in range(operations):
        latency = 500_000 + index * 2_654_435_761 % 4_000_000  # scattered, so sorting does real work
        outcome = outcomes[index % 100]
        history.record(
            (
                index % agents + 1,
                users[index % agents],
                "deduct",
                index // agents,
                clock,
                clock + latency,
                OUTCOME_CODE[outcome],
                None,
                None if outcome is Outcome.OK else outcome.value,
                0,
                (),
                False,
                None,
                None,
                {"acquire": latency // 10} if with_timings else None,
                0,
            )
        )
        clock += 1000
    return history


class _NoRecorder:
    """Takes the launcher's call and does nothing: what the benchmark's own loop costs."""

    def record(self, row: Row) -> None:
        pass


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=50, help="agents the operations are spread over")
    parser.add_argument("--with-timings", action="store_true", help="give every operation an 'acquire' phase too")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    # tracemalloc slows allocation several-fold: time a run without it, then trace memory in a second run.
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    with tempfile.TemporaryDirectory() as directory:
        started = time.process_time()
        history = record(History(directory=Path(directory)), args.operations, args.agents, args.with_timings)
        recorded = time.process_time()
        summary = summarize_history(history, wall_seconds=60.0)
        summarized = time.process_time()
        rss_mb = (psutil.Process().memory_info().rss - rss_before) / 2**20
        assert summary.counts.operations == args.operations
        del history, summary
    held_mb, summary_mb = measure_memory(args.operations, args.agents, args.with_timings)
    record_s, summary_s = recorded - started, summarized - recorded
    started = time.process_time()
    record(_NoRecorder(), args.operations, args.agents, args.with_timings)
    rows_s = time.process_time() - started
    print(
        f"{args.operations:,} operations: recording {record_s:.2f} s CPU ({record_s / args.operations * 1e6:.2f} us "
        f"per operation, of which {rows_s:.2f} s is this benchmark's loop making the rows: the same loop with a "
        f"recorder that does nothing), summarizing {summary_s:.2f} s CPU; the history holds {held_mb:.0f} MB "
        f"({held_mb * 2**20 / args.operations:.0f} B per operation), summarizing needs {summary_mb:.0f} MB more "
        f"at its peak (tracemalloc); RSS grew {rss_mb:.0f} MB"
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
