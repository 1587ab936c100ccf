"""Throughput of 50 agents deducting credits from one account, per strategy and isolation level.

Run: .venv/bin/python bench/strategies.py [--agents 50] [--seconds 3] [--dsn postgresql://...]
Without --dsn (or STAMPEDE_PG_DSN) it starts the embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from stampede.launcher import LaunchPlan, launch
from stampede.metrics import summarize
from stampede.services.config import resolve_postgres_dsn
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.postgres_target import open_postgres
from stampede.workloads.credits import CreditDeductionTool, Strategy, create_accounts
from stampede.workloads.isolation import IsolationLevel


async def measure(dsn: str, agents: int, seconds: float) -> None:
    target = await open_postgres(dsn, run_id=f"bench_{secrets.token_hex(4)}")
    print(f"PostgreSQL {target.server_version}, {agents} agents, {seconds:g} s per cell, one shared account")
    print(f"{'strategy':<20}{'isolation':<17}{'ops/s':>9}{'success':>9}{'conflict':>10}{'p50 ms':>9}{'p99 ms':>9}")
    try:
        for strategy in Strategy:
            for isolation in IsolationLevel:
                (account,) = await create_accounts(target, 1, 10**9)
                tool = CreditDeductionTool(target, strategy=strategy, isolation=isolation, accounts=[account])
                result = await launch(tool, LaunchPlan(agents=agents, duration=seconds, run_timeout=seconds + 30))
                m = summarize(result).metrics
                print(
                    f"{strategy.value:<20}{isolation.value:<17}{m['successes'] / result.wall_seconds:>9.0f}"
                    f"{m['success_rate'] * 100:>8.1f}%{m['conflict_rate'] * 100:>9.1f}%"
                    f"{m['p50'] * 1e3:>9.2f}{m['p99'] * 1e3:>9.2f}"
                )
    finally:
        await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--dsn", default=None)
    args = parser.parse_args()
    dsn = resolve_postgres_dsn(args.dsn)
    server = None
    if dsn is None:
        server = EmbeddedPostgres()
        dsn = server.start()
    try:
        asyncio.run(measure(dsn, args.agents, args.seconds))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
