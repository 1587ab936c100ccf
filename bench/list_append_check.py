"""List-append check: judge a generated history of 100,000 transactions (about 4 micro-operations each).

The history comes from a simulated store running snapshot isolation: 10 agents, each transaction reads
its keys as of its start and commits at its end unless another committed a write to one of its keys in
between (first committer wins, recorded as a serialization failure). So the history holds what a real
one does: concurrent, aborted and real-time-ordered transactions, and write skew (G2-item cycles) among
them. Keys rotate after 32 appends, as the list-append tool's do.

Reports the check's wall time by phase, the peak RSS of the process (history included) and the anomalies.
Target: under 10 s and under 1 GB.

Run: .venv/bin/python bench/list_append_check.py [--transactions 100000] [--agents 10] [--seed 1]
"""

from __future__ import annotations

import argparse
import heapq
import random
import resource
import sys
import time
from bisect import bisect_right
from itertools import count
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line
from stampede.checkers.list_append import analyse
from stampede.history import Operation
from stampede.outcomes import Outcome

SECONDS_TARGET = 10.0
MEMORY_TARGET_MB = 1000.0
ACTIVE_KEYS = 50
APPENDS_PER_KEY = 32


class SnapshotStore:
    """Lists by key, each element stamped with the commit that appended it, read as of a snapshot."""

    def __init__(self) -> None:
        self.values: dict[int, list[int]] = {}
        self.commits: dict[int, list[int]] = {}
        self.last_write: dict[int, int] = {}
        self.clock = 0

    def read(self, key: int, snapshot: int) -> list[int]:
        stamps = self.commits.get(key, [])
        return self.values.get(key, [])[: bisect_right(stamps, snapshot)]

    def commit(self, snapshot: int, appends: list[tuple[int, int]]) -> bool:
        if any(self.last_write.get(key, -1) > snapshot for key, _ in appends):
            return False
        self.clock += 1
        for key, value in appends:
            self.values.setdefault(key, []).append(value)
            self.commits.setdefault(key, []).append(self.clock)
            self.last_write[key] = self.clock
        return True


def generate(transactions: int, agents: int, rng: random.Random) -> list[Operation]:
    store = SnapshotStore()
    values = count(1)
    keys = list(range(ACTIVE_KEYS))
    next_key = count(ACTIVE_KEYS)
    planned: dict[int, int] = {}
    events: list[tuple[int, int, int]] = [(rng.randrange(1000), 0, agent) for agent in range(1, agents + 1)]
    running: dict[int, tuple[int, int, list[list[object]], list[tuple[int, int]]]] = {}
    operations: list[Operation] = []
    started = 0
    while events:
        now, phase, agent = heapq.heappop(events)
        if phase == 0:
            if started == transactions:
                continue
            started += 1
            snapshot = store.clock
            ops: list[list[object]] = []
            appends: list[tuple[int, int]] = []
            own: dict[int, list[int]] = {}
            for _ in range(rng.randint(1, 7)):
                slot = rng.randrange(ACTIVE_KEYS)
                key = keys[slot]
                if rng.random() < 0.5:
                    ops.append(["r", key, store.read(key, snapshot) + own.get(key, [])])
                else:
                    value = next(values)
                    ops.append(["append", key, value])
                    appends.append((key, value))
                    own.setdefault(key, []).append(value)
                    planned[key] = planned.get(key, 0) + 1
                    if planned[key] >= APPENDS_PER_KEY:
                        keys[slot] = next(next_key)
            running[agent] = (now, snapshot, ops, appends)
            heapq.heappush(events, (now + rng.randint(200_000, 5_000_000), 1, agent))
        else:
            start, snapshot, ops, appends = running.pop(agent)
            committed = store.commit(snapshot, appends)
            outcome = Outcome.OK if committed else Outcome.SERIALIZATION_FAILURE
            error = None if committed else "40001"
            operations.append(
                Operation(agent, f"user-{agent}", "list append", 0, start, now, outcome, error=error, written=ops)
            )
            heapq.heappush(events, (now + rng.randint(10_000, 100_000), 0, agent))
    return operations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(machine_line())
    began = time.perf_counter()
    operations = generate(args.transactions, args.agents, random.Random(args.seed))
    micro = sum(len(op.written) for op in operations)
    rss_before = psutil.Process().memory_info().rss / 1e6
    print(
        f"generated {len(operations)} transactions, {micro} micro-operations ({micro / len(operations):.1f} each) "
        f"in {time.perf_counter() - began:.1f} s; RSS {rss_before:.0f} MB before checking"
    )
    began = time.perf_counter()
    analysis = analyse(operations)
    seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(analysis.describe())
    for phase, spent in analysis.seconds.items():
        print(f"  {phase:<45} {spent:6.2f} s  {spent / seconds * 100:5.1f}%")
    print(f"  (reading records into transactions: the rest, {seconds - sum(analysis.seconds.values()):.2f} s)")
    print("anomalies:", ", ".join(f"{count} {name}" for name, count in analysis.counts().items()) or "none")
    print("models ruled out:", ", ".join(analysis.ruled_out) or "none")
    figure("list-append check time", f"{seconds:.2f} s", f"< {SECONDS_TARGET:.0f} s", seconds < SECONDS_TARGET)
    figure(
        "peak RSS (history included)", f"{peak_mb:.0f} MB", f"< {MEMORY_TARGET_MB:.0f} MB", peak_mb < MEMORY_TARGET_MB
    )


if __name__ == "__main__":
    main()
