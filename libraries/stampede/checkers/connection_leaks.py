"""Connection leaks: after a run the pool has nothing checked out and the server is back to its baseline.

Two views, because they catch different bugs:

- the pool's own count of connections still checked out after every agent has
  finished catches a connection taken from the pool and never given back;
- the run's backends in ``pg_stat_activity`` (counted by ``application_name``)
  after the tool closed its pool, against the count before the launch, catch a
  connection opened beside the pool and never closed, or a pool left open.
"""

from __future__ import annotations

from ..records.snapshots import ConnectionCensus, LeakedConnection
from ..verdicts import Verdict
from ._report import agent_list, capped, plural, rows_note


def _holders(leaked: tuple[LeakedConnection, ...]) -> list[dict[str, int]]:
    return [{"agent": holder.agent, "iteration": holder.iteration} for holder in leaked]


def check_pool_returned(census: ConnectionCensus) -> Verdict:
    """Fail when the pool still has connections checked out after every agent finished."""
    out, size = census.checked_out, census.pool_size
    expected = "0 connections checked out"
    measured = f"{out} of {size} checked out"
    if out == 0:
        message = f"No connection leaked from the pool: 0 of its {size} connections checked out after the run."
        return Verdict("pool connections returned", True, expected, measured, message=message, value=0)
    named = census.unreleased
    by = (
        f", taken by {'agent' if len({h.agent for h in named}) == 1 else 'agents'} "
        f"{agent_list(h.agent for h in named)} and never released"
        if named
        else ""
    )
    message = (
        f"Connections leaked: {out} still checked out of the pool after the run (expected 0){by}; "
        f"the other agents had {max(size - out, 0)} of {plural(size, 'connection')} left"
        f"{rows_note(len(named))}."
    )
    miss = plural(out, "connection") + " leaked"
    return Verdict(
        "pool connections returned", False, expected, measured, miss, message, capped(_holders(named)), value=out
    )


def check_backends_at_baseline(census: ConnectionCensus) -> Verdict:
    """Fail when the run has more backends in pg_stat_activity after the pool closed than before it opened."""
    after, baseline = census.backends_after, census.baseline_backends
    expected = f"at most {plural(baseline, 'backend')} (the baseline)"
    measured = f"{plural(after, 'backend')} after the run"
    extra = after - baseline
    if extra <= 0:
        message = (
            f"pg_stat_activity is back to its baseline: {plural(after, 'backend')} of this run after the tool "
            f"closed its pool, {baseline} before the launch."
        )
        return Verdict("server connections closed", True, expected, measured, message=message, value=after)
    named = census.unclosed
    by = (
        f" ({len(named)} opened beside the pool by agents {agent_list(h.agent for h in named)} and never closed)"
        if named
        else ""
    )
    message = (
        f"Connections leaked: pg_stat_activity shows {plural(after, 'backend')} of this run after the tool closed "
        f"its pool, baseline {baseline}: {plural(extra, 'connection')} left open{by}{rows_note(len(named))}."
    )
    miss = f"{plural(extra, 'backend')} over the baseline"
    return Verdict(
        "server connections closed", False, expected, measured, miss, message, capped(_holders(named)), value=after
    )


def check_connections_not_leaked(census: ConnectionCensus) -> list[Verdict]:
    """Both leak checks: the pool's view, then the server's."""
    return [check_pool_returned(census), check_backends_at_baseline(census)]
