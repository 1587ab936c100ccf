"""Launches on Dask workers: start spread with 1,000 agents over 2 workers, and throughput 2 workers ÷ 1.

Start spread: a Python tool whose operation does nothing is launched with
--agents agents, one iteration each, over 2 local worker processes; the
figures are the gate spread (from the first shard's release to the last's)
and the first-operation spread (from the first agent's first operation to
the 99th-percentile agent's, and to the last's), the median over --runs
launches. Target: under 20 ms.

Throughput: the same do-nothing tool, --throughput-agents agents for
--seconds s, on 1 worker and on 2 (each a LocalCluster of worker processes):
operations per second, and their ratio. The tool is cheap enough that the
harness is the bottleneck: each worker is one event loop on one core, and
this machine's 2 cores are shared with the scheduler and this process.

Run: .venv/bin/python bench/workers_start.py [--agents 1000] [--runs 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line
from stampede.launcher import LaunchPlan, LaunchResult
from stampede.workers import launch_on_workers
from stampede.workloads.python_tool import PythonTool

TARGET_MS = 20.0
NOTHING = """
class Nothing:
    def __init__(self, context):
        pass

    async def run(self):
        return None
"""


def _tool(folder: Path) -> PythonTool:
    path = folder / "nothing.py"
    path.write_text(NOTHING, encoding="utf-8")
    return PythonTool(name="nothing", factory=f"{path}:Nothing")


def _first_starts_ns(result: LaunchResult) -> np.ndarray:
    first: dict[int, int] = {}
    for op in result.history:
        first[op.agent] = min(first.get(op.agent, op.start_ns), op.start_ns)
    return np.sort(np.array(list(first.values()), dtype=np.int64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--throughput-agents", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as folder:
        recipe = _tool(Path(folder)).recipe()
        gates, p99s, lasts = [], [], []
        for _ in range(options.runs):
            result = launch_on_workers(recipe, LaunchPlan(agents=options.agents, iterations=1), workers=2)
            start = result.workers_start
            assert start is not None and start.gate_spread_ns is not None
            starts = _first_starts_ns(result)
            gates.append(start.gate_spread_ns / 1e6)
            p99s.append((starts[int(len(starts) * 0.99) - 1] - starts[0]) / 1e6)
            lasts.append((starts[-1] - starts[0]) / 1e6)
            print(f"# run: gate {gates[-1]:.2f} ms, p99 {p99s[-1]:.2f} ms, last {lasts[-1]:.2f} ms; {start.clocks}")
        p99, gate, last = statistics.median(p99s), statistics.median(gates), statistics.median(lasts)
        figure(
            f"start spread, {options.agents} agents over 2 workers (first operation, p99 agent)",
            f"{p99:.2f} ms (gate spread {gate:.2f} ms, last agent {last:.2f} ms)",
            f"< {TARGET_MS:g} ms",
            p99 < TARGET_MS,
        )
        plan = LaunchPlan(agents=options.throughput_agents, duration=options.seconds)
        rates = {}
        for workers in (1, 2):
            result = launch_on_workers(recipe, plan, workers=workers)
            rates[workers] = len(result.history) / options.seconds
            print(f"# {workers} worker(s): {rates[workers]:,.0f} operations/s")
        figure("throughput, 2 workers ÷ 1 worker (do-nothing Python tool)", f"{rates[2] / rates[1]:.2f}", "n/a", None)


if __name__ == "__main__":
    main()
