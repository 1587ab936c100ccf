"""Race exposure: does a run of the naive read-modify-write actually lose updates?

50 agents each deduct 1 credit from one account by reading the balance and writing it back
minus 1 (no lock, no version check). Repeated --runs times:
- Stampede: a launch (connections opened before the start barrier, agents released at once);
  a run counts as caught when the lost-updates checker fails on its history.
- plain asyncio.gather, no barrier (the seeds' approach): 50 coroutines gathered, each taking a
  connection from an asyncpg pool (default size 10) or opening its own (--gather-connects), then
  reading and writing; a run counts as caught when the final balance shows lost deductions.
Target for Stampede: caught in 20 of 20 runs.

Run: .venv/bin/python bench/race_exposure.py [--agents 50] [--runs 20] [--dsn ...]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line, postgres, run
from stampede.checkers.lost_updates import check_lost_updates
from stampede.launcher import LaunchPlan, launch
from stampede.services.postgres_target import PostgresTarget, open_postgres
from stampede.workloads.credits import CreditDeductionTool, Strategy, create_accounts, total_balance

BALANCE = 1_000_000
POOL_SIZE = 10  # asyncpg's default max_size


async def stampede_run(target: PostgresTarget, agents: int) -> int:
    """Lost updates the checker found in one launch (0: not caught)."""
    (account,) = await create_accounts(target, 1, BALANCE)
    tool = CreditDeductionTool(target, strategy=Strategy.NAIVE, accounts=[account])
    result = await launch(tool, LaunchPlan(agents=agents, iterations=1, run_timeout=60))
    verdict = check_lost_updates(result.history)
    lost_by_balance = await total_balance(target, [account]) - (BALANCE - len(result.history.successful()))
    return lost_by_balance if not verdict.passed else 0


async def gather_run(target: PostgresTarget, agents: int, connect_each: bool) -> int:
    """Lost deductions (by the final balance) of one plain asyncio.gather run."""
    (account,) = await create_accounts(target, 1, BALANCE)

    async def deduct(connection: object) -> None:
        balance = await connection.fetchval("SELECT balance FROM accounts WHERE id = $1", account)
        await connection.execute("UPDATE accounts SET balance = $1 WHERE id = $2", balance - 1, account)

    async def own_connection() -> None:
        connection = await target.connect()
        try:
            await deduct(connection)
        finally:
            await connection.close()

    if connect_each:
        await asyncio.gather(*(own_connection() for _ in range(agents)))
    else:
        pool = await target.create_pool(POOL_SIZE)
        try:

            async def pooled() -> None:
                async with pool.acquire() as connection:
                    await deduct(connection)

            await asyncio.gather(*(pooled() for _ in range(agents)))
        finally:
            await pool.close()
    return await total_balance(target, [account]) - (BALANCE - agents)


async def expose(dsn: str, agents: int, runs: int) -> dict[str, list[int]]:
    target = await open_postgres(dsn, run_id=f"bench_{secrets.token_hex(4)}")
    found: dict[str, list[int]] = {"stampede": [], "gather_pool": [], "gather_connect": []}
    try:
        for _ in range(runs):
            found["stampede"].append(await stampede_run(target, agents))
            found["gather_pool"].append(await gather_run(target, agents, connect_each=False))
            found["gather_connect"].append(await gather_run(target, agents, connect_each=True))
    finally:
        await target.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    with postgres(args.dsn) as dsn:
        found = run(expose(dsn, args.agents, args.runs))
    names = {
        "stampede": "Stampede launch (start barrier)",
        "gather_pool": f"asyncio.gather, pool of {POOL_SIZE}, no barrier",
        "gather_connect": "asyncio.gather, a connection each opened in the task, no barrier",
    }
    for key, lost in found.items():
        caught = sum(1 for count in lost if count > 0)
        print(f"{names[key]}: lost updates in {caught} of {args.runs} runs; lost per run {lost}")
    caught = sum(1 for count in found["stampede"] if count > 0)
    figure(
        f"race exposure, naive read-modify-write, {args.agents} agents",
        f"{caught} of {args.runs} runs caught",
        f"{args.runs} of {args.runs}",
        caught == args.runs,
    )


if __name__ == "__main__":
    main()
