"""Terminating the run's PostgreSQL backends, as an administrator or a crashing server would.

Only backends with the run's ``application_name`` are candidates, and never the
admin connection that does the terminating. ``pg_terminate_backend`` ends the
backend's transaction (rolled back, unless it was already committing) and closes
its connection; the client finds out on its next read. The signal is sent, not
waited for: the keyword returns while the backends are going.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg

from ..errors import StampedeError
from ..units import format_duration
from .selection import pick

if TYPE_CHECKING:
    from ..services.postgres_target import PostgresTarget

POLL_SECONDS = 0.005

_CANDIDATES = """
    SELECT pid, state, xact_start IS NOT NULL AS in_transaction,
           COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - xact_start), 0)::float8 AS transaction_seconds,
           left(query, 80) AS query
    FROM pg_stat_activity
    WHERE application_name = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
      AND ($2 = false OR xact_start IS NOT NULL)
"""


@dataclass(frozen=True)
class TerminatedBackend:
    """A backend as it was when terminated: what it was doing, and whether it went."""

    pid: int
    state: str
    in_transaction: bool
    transaction_seconds: float
    query: str
    terminated: bool

    def row(self) -> tuple[object, ...]:
        age = format_duration(self.transaction_seconds) if self.in_transaction else ""
        return self.pid, self.state, age, self.query, "yes" if self.terminated else "it had already gone"


async def terminate_backends(
    target: PostgresTarget, fraction: float, *, in_transaction: bool, within: float
) -> list[TerminatedBackend]:
    """Terminate ``fraction`` of the run's backends (only those in a transaction when asked).

    Waits up to ``within`` seconds for at least one candidate to appear, so a
    fault aimed between two transactions is not silently a no-op; fails if none does.
    """
    admin = await target.connect()  # the run's own: it is never a candidate, being the one that asks
    try:
        return await _terminate(admin, target, fraction, in_transaction, within)
    finally:
        await admin.close()


async def _terminate(
    admin: asyncpg.Connection, target: PostgresTarget, fraction: float, in_transaction: bool, within: float
) -> list[TerminatedBackend]:
    deadline = time.monotonic() + within
    while not (candidates := await admin.fetch(_CANDIDATES, target.application_name, in_transaction)):
        if time.monotonic() >= deadline:
            which = "in a transaction" if in_transaction else "connected"
            raise StampedeError(
                f"No backend of this run (application_name {target.application_name!r}) was {which} within "
                f"{format_duration(within)}, so there was nothing to terminate. Start the load first "
                "(Launch Agents In Background, then Wait For Operations)."
            )
        await asyncio.sleep(POLL_SECONDS)
    chosen = pick(candidates, fraction)
    pids = [row["pid"] for row in chosen]
    results = await admin.fetch("SELECT pid, pg_terminate_backend(pid) AS done FROM unnest($1::int[]) AS pid", pids)
    done = {row["pid"]: bool(row["done"]) for row in results}
    return [
        TerminatedBackend(
            row["pid"],
            row["state"] or "",
            row["in_transaction"],
            row["transaction_seconds"],
            row["query"] or "",
            done.get(row["pid"], False),
        )
        for row in chosen
    ]
