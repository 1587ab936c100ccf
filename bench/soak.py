"""Soak: a long launch at the highest rate this machine sustains, its harness memory and its history on disk.

A no-op tool (each operation returns at once, in the harness's own process) is
launched by Stampede's launcher with ``--agents`` agents for ``--minutes``
minutes, all at once and closed-loop, so the harness itself is the bottleneck
and the rate is the highest it sustains. The history is written chunk by chunk
to a temporary folder, as a launch from Robot writes it to ``results/histories/``.

A sampler thread reads the harness's RSS every ``--sample-seconds``. The figures:
the operations per second, the RSS growth from just before the launch to its peak
(target < 50 MB: recording memory is bounded by one chunk), the growth after the
first tenth of the soak (what a longer soak would add), and the history's bytes on
disk. Then the history is summarized from its files (CPU and peak RSS of that,
which holds the latencies of every operation at once, reported apart).

Run: .venv/bin/python bench/soak.py [--minutes 10] [--agents 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, run
from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.metrics import summarize

RSS_GROWTH_TARGET_MB = 50.0
MB = 1024 * 1024


class NoOp(BaseTool):
    """An operation that does nothing: what the harness costs per operation, and nothing else."""

    name = "no-op"

    async def run(self, agent: AgentContext) -> OpResult:
        return OpResult()


class RssSampler(threading.Thread):
    """The process's RSS every ``interval`` seconds, with the time it was read (monotonic seconds)."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stopping = threading.Event()
        self._process = psutil.Process()

    def run(self) -> None:
        while not self._stopping.is_set():
            self.samples.append((time.monotonic(), self._process.memory_info().rss))
            self._stopping.wait(self.interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join(self.interval + 5)


def soak(minutes: float, agents: int, sample_seconds: float) -> None:
    seconds = minutes * 60
    print(machine_line())
    print(f"# {agents} agents of a no-op tool for {minutes:g} min, closed loop, history to chunk files")
    with tempfile.TemporaryDirectory(prefix="stampede-soak-") as folder:
        history_dir = Path(folder) / "history.chunks"
        plan = LaunchPlan(agents=agents, duration=seconds, run_timeout=seconds + 60)
        sampler = RssSampler(sample_seconds)
        before = psutil.Process().memory_info().rss
        began = time.monotonic()
        sampler.start()
        try:
            result = run(launch(NoOp(), plan, history_dir))
        finally:
            sampler.stop()
        assert isinstance(result, LaunchResult)
        operations = len(result.history)
        on_disk = sum(path.stat().st_size for path in history_dir.rglob("*") if path.is_file())
        chunks = len(list(history_dir.glob("*.arrow")))
        peak = max(rss for _, rss in sampler.samples)
        warm = [rss for at, rss in sampler.samples if at - began <= seconds / 10]
        after_warm_up = peak - (warm[-1] if warm else before)
        growth = peak - before
        rate = operations / result.wall_seconds
        print(
            f"# {operations:,} operations in {result.wall_seconds:.1f} s ({rate:,.0f} operations/s), "
            f"{chunks} chunk files, RSS {before / MB:.0f} MB before, peak {peak / MB:.0f} MB, "
            f"{len(sampler.samples)} samples"
        )
        tenths = [
            max((rss for at, rss in sampler.samples if at - began <= seconds * tenth / 10), default=before)
            for tenth in range(1, 11)
        ]
        print("# peak RSS by tenth of the soak (MB): " + ", ".join(f"{rss / MB:.0f}" for rss in tenths))
        figure("soak rate, no-op tool", f"{rate:,.0f} operations/s over {result.wall_seconds / 60:.1f} min", "-", None)
        figure(
            "soak harness RSS growth",
            f"{growth / MB:+.1f} MB (after the first tenth: {after_warm_up / MB:+.1f} MB)",
            f"< {RSS_GROWTH_TARGET_MB:g} MB",
            growth / MB < RSS_GROWTH_TARGET_MB,
        )
        figure(
            "soak history on disk",
            f"{on_disk / MB:.1f} MB ({on_disk / max(operations, 1):.1f} B per operation, {chunks} chunks)",
            "-",
            None,
        )
        cpu = time.process_time()
        summary = summarize(result)
        cpu = time.process_time() - cpu
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(
            f"# summarizing {summary.latency.count:,} operations from the files: {cpu:.2f} s CPU, "
            f"peak RSS of the process since it started {peak_kb / 1024:.0f} MB; "
            f"p99 {summary.latency.percentiles[99.0] * 1e6:.1f} µs"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the launch runs (default 10)")
    parser.add_argument("--agents", type=int, default=50, help="agents, all at once, closed loop (default 50)")
    parser.add_argument("--sample-seconds", type=float, default=1.0, help="how often RSS is read (default 1 s)")
    args = parser.parse_args()
    if args.minutes <= 0 or args.agents < 1 or args.sample_seconds <= 0:
        parser.error("--minutes and --sample-seconds must be above 0, --agents at least 1")
    soak(args.minutes, args.agents, args.sample_seconds)


if __name__ == "__main__":
    main()
