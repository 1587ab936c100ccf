"""What integration tests share: a run's own target on a real server, checked clean afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stampede.launcher import RunningLaunch
from stampede.services.postgres_target import PostgresTarget, open_postgres

T = TypeVar("T")


def with_target(pg_dsn: str, run_id: str, body: Callable[[PostgresTarget], Awaitable[T]]) -> T:
    """Run ``body`` on a fresh target; afterwards the run must have no backend left, and its schema is dropped."""

    async def run() -> T:
        target = await open_postgres(pg_dsn, run_id=run_id)
        try:
            result = await body(target)
            assert await target.backends() == 0, "the run left connections open"
            return result
        finally:
            await target.close()

    return asyncio.run(run())


async def wait_for_operations(running: RunningLaunch, count: int, bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while running.operations < count:
        assert not running.done and time.monotonic() < deadline, f"only {running.operations} operations"
        await asyncio.sleep(0.01)
