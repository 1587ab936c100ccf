"""Connection-pool exhaustion: more agents than pool slots, each holding a connection for a while.

The tool owns a deliberately small asyncpg pool (``pool_size`` connections, all
opened up front) shared by every agent. One operation:

1. acquires a connection, waiting at most ``acquire_timeout``; the wait is recorded
   as the ``acquire`` phase (``acquire_p95`` etc.), for refused acquires too, so the
   percentiles are the waits agents actually had. A refused acquire is
   ``Outcome.TIMEOUT`` with error ``acquire_timeout``: graceful degradation, not a crash;
2. holds it for ``hold`` doing real work on the server: ``SELECT pg_backend_pid()
   FROM pg_sleep(hold)``, so the backend is busy (``active`` in pg_stat_activity) and
   the history records which backend served the operation;
3. releases it.

Seeded bugs (``leak``), every ``leak_every``-th operation:

- ``never released``: the connection is not given back to the pool, which shrinks;
- ``never closed``: the operation also opens a connection of its own beside the
  pool and never closes it.

What a leak checker needs is recorded by :meth:`ConnectionPoolTool.teardown`, which
the launcher calls after every agent has finished: first the pool's own count of
connections still checked out; then, after the pool is closed, the run's backends in
pg_stat_activity against the baseline taken before the pool opened. Only then does
the harness reclaim what the seeded bug left, so nothing is left behind and the
evidence is already in :attr:`ConnectionPoolTool.census`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import Enum
from typing import TYPE_CHECKING

import asyncpg

from ..agents import AgentContext, BaseTool, OpResult
from ..errors import ConfigurationError
from ..outcomes import Outcome
from ..records.fields import ACQUIRE_TIMEOUT_ERROR
from ..records.snapshots import ConnectionCensus, LeakedConnection
from ..units import format_duration

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

HOLD_SQL = "SELECT pg_backend_pid() FROM pg_sleep($1)"
# A closed connection's backend leaves pg_stat_activity a moment after the client hangs up.
BACKENDS_SETTLE_SECONDS = 2.0
BACKENDS_POLL_SECONDS = 0.02
POOL_CLOSE_SECONDS = 3.0


class ConnectionLeak(Enum):
    """A seeded bug that leaks connections; see the module documentation."""

    NONE = "none"
    NEVER_RELEASED = "never released"
    NEVER_CLOSED = "never closed"


class ConnectionPoolTool(BaseTool):
    """Agents share a pool of ``pool_size`` connections: acquire (bounded), hold, release."""

    def __init__(
        self,
        target: PostgresTarget,
        *,
        name: str = "pool",
        pool_size: int = 10,
        hold: float = 0.1,
        acquire_timeout: float = 1.0,
        leak: ConnectionLeak = ConnectionLeak.NONE,
        leak_every: int = 10,
    ) -> None:
        if pool_size < 1:
            raise ConfigurationError(f"pool_size must be at least 1 connection, got {pool_size}")
        if hold < 0:
            raise ConfigurationError(f"hold cannot be negative, got {hold:g} s")
        if acquire_timeout <= 0:
            raise ConfigurationError(f"acquire_timeout must be longer than 0 s, got {acquire_timeout:g} s")
        if leak is not ConnectionLeak.NONE and leak_every < 1:
            raise ConfigurationError(f"leak_every must be at least 1 (leak every n-th operation), got {leak_every}")
        self.target = target
        self.name = name
        self.pool_size = pool_size
        self.hold = hold
        self.acquire_timeout = acquire_timeout
        self.leak = leak
        self.leak_every = leak_every
        self.census: ConnectionCensus | None = None
        """What the latest launch left: filled in by :meth:`teardown`, read by the leak checks."""
        self._pool: asyncpg.Pool | None = None
        self._baseline = 0
        self._served = 0
        # Connections taken from the pool and not (yet) given back, and who took them.
        self._unreleased: dict[asyncpg.pool.PoolConnectionProxy, LeakedConnection] = {}
        self._unclosed: list[tuple[asyncpg.Connection, LeakedConnection]] = []

    def describe(self) -> dict[str, str]:
        settings = {
            "tool": self.name,
            "pool size": str(self.pool_size),
            "hold": format_duration(self.hold),
            "acquire timeout": format_duration(self.acquire_timeout),
        }
        if self.leak is not ConnectionLeak.NONE:
            every = "every operation" if self.leak_every == 1 else f"one operation in {self.leak_every}"
            settings["seeded leak"] = f"{self.leak.value}, {every}"
        return settings

    async def setup(self, agents: int) -> None:
        self.census = None
        self._served = 0
        self._unreleased.clear()
        self._unclosed.clear()
        self._baseline = await self.target.backends()
        self._pool = await self.target.create_pool(self.pool_size)

    async def run(self, agent: AgentContext) -> OpResult:
        pool = self._pool
        assert pool is not None, "setup() opens the pool before agents start"
        began = time.monotonic_ns()
        try:
            connection = await pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError:
            waited = time.monotonic_ns() - began
            return OpResult(Outcome.TIMEOUT, error=ACQUIRE_TIMEOUT_ERROR, timings={"acquire": waited})
        waited = time.monotonic_ns() - began
        self._served += 1
        leaks = self.leak is not ConnectionLeak.NONE and self._served % self.leak_every == 0
        holder = LeakedConnection(agent.agent, agent.iteration)
        self._unreleased[connection] = holder
        try:
            backend = await connection.fetchval(HOLD_SQL, self.hold)
            if leaks and self.leak is ConnectionLeak.NEVER_CLOSED:
                self._unclosed.append((await self.target.connect(), holder))
        finally:
            if not (leaks and self.leak is ConnectionLeak.NEVER_RELEASED):
                del self._unreleased[connection]
                await pool.release(connection)
        return OpResult(read={"backend": backend}, timings={"acquire": waited})

    async def teardown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        checked_out = pool.get_size() - pool.get_idle_size()
        leaked = sorted(self._unreleased.values())
        try:
            if leaked:
                pool.terminate()  # the harness reclaims what the seeded bug kept, now that the pool's count is taken
            else:
                with contextlib.suppress(TimeoutError):  # asyncpg terminates the pool's connections then
                    await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
            self.census = ConnectionCensus(
                pool_size=self.pool_size,
                checked_out=checked_out,
                unreleased=tuple(leaked),
                baseline_backends=self._baseline,
                backends_after=await self._settled_backends(),
                unclosed=tuple(sorted(holder for _, holder in self._unclosed)),
            )
        finally:
            pool.terminate()  # nothing left to do once it closed; if counting failed, nothing is left open
            self._unreleased.clear()
            unclosed, self._unclosed = self._unclosed, []
            await asyncio.gather(
                *(connection.close(timeout=POOL_CLOSE_SECONDS) for connection, _ in unclosed), return_exceptions=True
            )
            for connection, _ in unclosed:
                if not connection.is_closed():
                    connection.terminate()

    async def _settled_backends(self) -> int:
        """The run's backends, once the ones just closed have left pg_stat_activity (bounded wait)."""
        deadline = time.monotonic() + BACKENDS_SETTLE_SECONDS
        while (backends := await self.target.backends()) > self._baseline and time.monotonic() < deadline:
            await asyncio.sleep(BACKENDS_POLL_SECONDS)
        return backends
