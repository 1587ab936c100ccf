"""Start barrier spread: agents released at once, and how far apart they reach their first database call.

Every agent is opened before the barrier; when the last one is ready the launcher releases
them all. Each agent notes time.monotonic_ns() as it issues its first query (SELECT 1, through
a pool of --pool connections). The figure is the spread between the first agent and the
99th-percentile agent, the median over --runs launches after one warm-up launch. Target:
under 20 ms. For reference it also prints the spread with no database call at all (the
launcher alone).

--pool 0 gives every agent its own connection, opened before the barrier (the embedded
PostgreSQL is started with max_connections = agents + 100): then the 1,000 server backends
woken at once compete with the harness for the two cores, which shows in the spread.

Run: .venv/bin/python bench/barrier_spread.py [--agents 1000] [--runs 3] [--pool 20] [--dsn ...]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, postgres, run
from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.launcher import LaunchPlan, launch
from stampede.metrics import percentile
from stampede.services.postgres_target import PostgresTarget, open_postgres

TARGET_MS = 20.0


class FirstCallClock(BaseTool):
    """Notes when each agent issues its first database call, then makes it."""

    name = "first_call"

    def __init__(self, target: PostgresTarget, pool_size: int) -> None:
        self.target = target
        self.pool_size = pool_size
        self.first_call_ns: dict[int, int] = {}
        self._pool: asyncpg.Pool | None = None

    async def setup(self, agents: int) -> None:
        if self.pool_size:
            self._pool = await self.target.create_pool(self.pool_size)

    async def open_agent(self, agent: AgentContext) -> None:
        if self._pool is None:
            agent.state["connection"] = await self.target.connect()

    async def run(self, agent: AgentContext) -> OpResult:
        self.first_call_ns.setdefault(agent.agent, time.monotonic_ns())
        await (agent.state.get("connection") or self._pool).fetchval("SELECT 1")
        return OpResult()

    async def close_agent(self, agent: AgentContext) -> None:
        if "connection" in agent.state:
            await agent.state.pop("connection").close()

    async def teardown(self) -> None:
        if self._pool is not None:
            await self._pool.close()


class FirstRunClock(BaseTool):
    """Notes when each agent starts its first operation, which calls nothing: the launcher's own spread."""

    name = "first_run"

    def __init__(self) -> None:
        self.first_call_ns: dict[int, int] = {}

    async def run(self, agent: AgentContext) -> OpResult:
        self.first_call_ns.setdefault(agent.agent, time.monotonic_ns())
        await asyncio.sleep(0)
        return OpResult()


async def spread(tool: FirstCallClock | FirstRunClock, agents: int) -> tuple[float, float]:
    """(first → p99, first → last) in ms of one launch."""
    result = await launch(tool, LaunchPlan(agents=agents, iterations=1, operation_timeout=60, run_timeout=180))
    if result.agent_errors or len(tool.first_call_ns) != agents:
        raise SystemExit(f"{len(tool.first_call_ns)} of {agents} agents called; {result.agent_errors}")
    times = sorted(tool.first_call_ns.values())
    return (percentile(times, 99) - times[0]) / 1e6, (times[-1] - times[0]) / 1e6


async def spreads(dsn: str, agents: int, runs: int, pool_size: int) -> list[float]:
    """First → p99 in ms of each run."""
    target = await open_postgres(dsn, run_id=f"bench_{secrets.token_hex(4)}", connect_timeout=60)
    found = []
    try:
        # A first launch warms up what runs once per process (imports, statement caches); it is not counted.
        await spread(FirstCallClock(target, pool_size), agents)
        for number in range(1, runs + 1):
            to_p99, to_last = await spread(FirstCallClock(target, pool_size), agents)
            alone_p99, _ = await spread(FirstRunClock(), agents)
            print(
                f"run {number}: {agents} agents, first → p99 {to_p99:.1f} ms, first → last {to_last:.1f} ms; "
                f"with no database call first → p99 {alone_p99:.1f} ms",
                flush=True,
            )
            found.append(to_p99)
    finally:
        await target.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="launches; the figure is their median")
    parser.add_argument("--pool", type=int, default=20, help="connections the agents share (0: one per agent)")
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with postgres(args.dsn, settings={"max_connections": str(args.agents + 100)}) as dsn:
        found = run(spreads(dsn, args.agents, args.runs, args.pool))
    median_p99 = statistics.median(found)
    pool = f"a pool of {args.pool}" if args.pool else "a connection each"
    figure(
        f"start barrier spread, first → p99 of {args.agents} agents, {pool} (median of {args.runs} runs)",
        f"{median_p99:.1f} ms",
        f"< {TARGET_MS:g} ms",
        median_p99 < TARGET_MS,
    )


if __name__ == "__main__":
    main()
