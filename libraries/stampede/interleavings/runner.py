"""Run a permutation step by step on real connections, noticing blocked steps the way PostgreSQL's isolation tests do.

Each step is sent on its session's connection as a task. A step that does not
finish within a short poll is looked at from an observer connection: if
``pg_blocking_pids()`` (or ``pg_safe_snapshot_blocking_pids()``) names another
session of the run, the step is blocked and the permutation goes on with the
next step; the blocked step is reported again when it completes. After every
step, steps that are no longer blocked are waited for, so the timeline comes
out the same on every run.

Nothing waits forever:
- a step blocked only by sessions with nothing left to run before it is needed
  (or before the permutation ends) can never resume: it is cancelled at once and
  reported as blocked forever;
- a step neither finished nor blocked by a session of the run within
  ``step_timeout`` (a long query, a lock held outside the run) is cancelled and
  reported as hung.

Connections live only while a permutation runs: each session opens one,
``BEGIN``s a transaction at its isolation level, and whatever is still open at
the end is rolled back and closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ..errors import ConfigurationError
from ..services.postgres_target import PostgresTarget
from ..units import format_duration
from .outcome import PermutationRun, SessionTransaction, StepOutcome, TimelineEntry, short_sql
from .spec import DEFAULT_PERMUTATION_LIMIT, InterleavingSpec, Session, Step

DEFAULT_STEP_TIMEOUT = 10.0
POLL_SECONDS = 0.01  # isolationtester polls every 10 ms too
CANCEL_GRACE = 5.0
CLOSE_TIMEOUT = 5.0

_BLOCKERS = """
    SELECT pid, pg_blocking_pids(pid) || pg_safe_snapshot_blocking_pids(pid) AS blockers
    FROM unnest($1::int[]) AS pid
"""


@dataclass
class _Result:
    finished_ns: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None
    sqlstate: str | None = None
    error: str | None = None


async def _execute(connection: asyncpg.Connection, sql: str) -> _Result:
    """Run one statement (extended protocol, so both rows and the command tag come back); never raises."""
    try:
        statement = await connection.prepare(sql)
        rows = await statement.fetch()
        return _Result(time.monotonic_ns(), [dict(row.items()) for row in rows], statement.get_statusmsg())
    except asyncpg.PostgresError as error:
        return _Result(time.monotonic_ns(), sqlstate=error.sqlstate, error=getattr(error, "message", str(error)))
    except (asyncpg.InterfaceError, OSError) as error:
        return _Result(time.monotonic_ns(), error=f"{type(error).__name__}: {error}")


@dataclass
class _Pending:
    outcome: StepOutcome
    task: asyncio.Task[_Result]
    since: float  # monotonic seconds: issued, or last seen blocked by a session of the run
    needed_since: float | None = None  # since when the permutation cannot go on without it
    announced: bool = False  # the timeline already shows it as blocked


@dataclass
class _Live:
    session: Session
    connection: asyncpg.Connection
    pid: int
    transaction: SessionTransaction
    pending: _Pending | None = None


class _Runner:
    def __init__(
        self, target: PostgresTarget, spec: InterleavingSpec, steps: tuple[Step, ...], step_timeout: float
    ) -> None:
        if step_timeout <= 0:
            raise ConfigurationError(f"The step timeout must be longer than 0 s, got {step_timeout:g} s.")
        self.target = target
        self.spec = spec
        self.steps = steps
        self.step_timeout = step_timeout
        self.sessions = {
            name: spec.sessions[name] for name in spec.sessions if any(step.session == name for step in steps)
        }
        self.live: dict[str, _Live] = {}
        self.outcomes: dict[str, StepOutcome] = {}
        self.timeline: list[TimelineEntry] = []
        self.observer: asyncpg.Connection | None = None

    async def run(self) -> PermutationRun:
        began = time.monotonic()
        try:
            self.observer = await self.target.connect()
            await self._set_up()
            for name, session in self.sessions.items():
                await self._open(name, session)
            for step in self.steps:
                await self._run_step(step)
            await self._settle(finishing=True)
            await self._roll_back_open()
        finally:
            await self._close()
        return PermutationRun(
            sessions=dict(self.sessions),
            permutation=tuple(step.name for step in self.steps),
            outcomes=self.outcomes,
            timeline=self.timeline,
            transactions={name: live.transaction for name, live in self.live.items()},
            server_version=self.target.server_version,
            seconds=time.monotonic() - began,
        )

    # ------------------------------------------------------------------ set-up and clean-up

    async def _set_up(self) -> None:
        if not self.spec.setup.strip():
            return
        assert self.observer is not None
        try:
            await self.observer.execute(self.spec.setup)
        except asyncpg.PostgresError as error:
            raise ConfigurationError(
                f"The permutation set-up SQL failed with {error.sqlstate}: {getattr(error, 'message', error)}. "
                "Fix the set-up SQL."
            ) from None

    async def _open(self, name: str, session: Session) -> None:
        connection = await self.target.connect()
        live = _Live(session, connection, connection.get_server_pid(), SessionTransaction(session))
        self.live[name] = live
        level = session.isolation.value.upper()
        await connection.execute(f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}")
        await connection.execute("BEGIN")

    async def _roll_back_open(self) -> None:
        for name, live in self.live.items():
            if not live.connection.is_closed() and live.connection.is_in_transaction():
                await live.connection.execute("ROLLBACK")
                live.transaction.ended_by_stampede()
                self.timeline.append(TimelineEntry(name, "", "Stampede rolled back the transaction left open"))

    async def _close(self) -> None:
        """Close every connection; one still busy (only after an error of the runner itself) is cut off."""
        connections = [live.connection for live in self.live.values()]
        if self.observer is not None:
            connections.append(self.observer)
        for live in self.live.values():
            if live.pending is not None:
                live.connection.terminate()
        for connection in connections:
            if connection.is_closed():
                continue
            try:
                await connection.close(timeout=CLOSE_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                connection.terminate()
        tasks = [live.pending.task for live in self.live.values() if live.pending is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)

    # ------------------------------------------------------------------ steps

    async def _run_step(self, step: Step) -> None:
        live = self.live[step.session]
        if live.pending is not None:
            await self._settle(need=live)
        outcome = StepOutcome(step)
        self.outcomes[step.name] = outcome
        task = asyncio.get_running_loop().create_task(_execute(live.connection, step.sql))
        live.pending = _Pending(outcome, task, time.monotonic())
        await self._settle(current=live)

    async def _settle(self, current: _Live | None = None, need: _Live | None = None, finishing: bool = False) -> None:
        """Wait until every pending step has finished or is blocked by a session of the run.

        ``current``: the session whose step was just issued; when it finishes,
        it is reported before the steps it unblocked (whose results may reach
        us first). ``need``: that session's pending step must finish (its
        session has a step to run). ``finishing``: every pending step must
        finish. A step that can never resume is cancelled; one that hangs is
        cancelled after the step timeout.
        """
        while True:
            self._collect_finished(current)
            pending = [live for live in self.live.values() if live.pending is not None]
            if not pending:
                return
            blockers = await self._blockers(pending)
            now = time.monotonic()
            waiting: list[_Live] = []
            for live in pending:
                assert live.pending is not None
                if live.pending.task.done():
                    waiting.append(live)
                elif blockers[live.session.name]:
                    self._mark_blocked(live, blockers[live.session.name], now)
                    if live is need or finishing:
                        live.pending.needed_since = live.pending.needed_since or now
                        waiting.append(live)
                else:
                    waiting.append(live)
            if not waiting:
                return
            for live in waiting:
                await self._cancel_if_stuck_or_hung(live, blockers, now, finishing)
            await asyncio.wait(
                [live.pending.task for live in waiting if live.pending is not None],
                timeout=POLL_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )

    async def _cancel_if_stuck_or_hung(
        self, live: _Live, blockers: dict[str, set[str]], now: float, finishing: bool
    ) -> None:
        pending = live.pending
        if pending is None or pending.task.done():
            return
        name = live.session.name
        if blockers[name]:
            # When finishing, end the roots of a chain first: a step behind them may then resume for real.
            ready = not finishing or all(self.live[other].pending is None for other in blockers[name])
            if ready and self._stuck(name, blockers, set()):
                idle = " and ".join(sorted(self._idle_roots(name, blockers, {name})))
                when = "the permutation ended" if finishing else f"{name} had its next step to run"
                await self._cancel(live, f"{idle} had nothing left to run when {when}; Stampede cancelled it")
            elif pending.needed_since is not None and now - pending.needed_since > self.step_timeout:
                await self._cancel(
                    live, f"still blocked after {format_duration(self.step_timeout)}; Stampede cancelled it"
                )
        elif now - pending.since > self.step_timeout:
            await self._cancel(
                live,
                f"neither finished nor blocked by another session within {format_duration(self.step_timeout)}; "
                "Stampede cancelled it",
            )

    def _stuck(self, name: str, blockers: dict[str, set[str]], path: set[str]) -> bool:
        """Whether ``name``'s pending step waits only, directly or through others, on sessions that are idle.

        A cycle of waits is a deadlock, which PostgreSQL itself breaks: not stuck.
        """
        if name in path:
            return False
        for other in blockers.get(name, ()):
            live = self.live[other]
            if live.pending is not None and (not blockers[other] or not self._stuck(other, blockers, path | {name})):
                return False
        return bool(blockers.get(name))

    def _idle_roots(self, name: str, blockers: dict[str, set[str]], seen: set[str]) -> set[str]:
        """The sessions with nothing running that ``name``'s step waits on, directly or through other waits."""
        roots = set()
        for other in blockers.get(name, ()):
            if self.live[other].pending is None:
                roots.add(other)
            elif other not in seen:
                roots |= self._idle_roots(other, blockers, seen | {other})
        return roots

    def _mark_blocked(self, live: _Live, sessions: set[str], now: float) -> None:
        pending = live.pending
        assert pending is not None
        outcome = pending.outcome
        if outcome.blocked_ns is None:
            outcome.blocked_ns = time.monotonic_ns()
        outcome.blocked_by = outcome.blocked_by + tuple(sorted(sessions - set(outcome.blocked_by)))
        pending.since = now
        if not pending.announced:
            pending.announced = True
            self.timeline.append(
                TimelineEntry(
                    live.session.name,
                    outcome.name,
                    f"{outcome.name}: {short_sql(outcome.step.sql)} → blocked ({outcome.waited})",
                )
            )

    async def _blockers(self, pending: list[_Live]) -> dict[str, set[str]]:
        """For each pending session, the sessions of the run that block it."""
        assert self.observer is not None
        by_pid = {live.pid: name for name, live in self.live.items()}
        rows = await self.observer.fetch(_BLOCKERS, [live.pid for live in pending])
        found = {by_pid[row["pid"]]: {by_pid[pid] for pid in row["blockers"] if pid in by_pid} for row in rows}
        return {live.session.name: found.get(live.session.name, set()) for live in pending}

    async def _cancel(self, live: _Live, reason: str) -> None:
        """Cancel the running step on the server (``pg_cancel_backend``); cut the connection if that does not end it."""
        pending = live.pending
        assert pending is not None and self.observer is not None
        pending.outcome.cancelled = reason
        await self.observer.execute("SELECT pg_cancel_backend($1)", live.pid)
        await asyncio.wait([pending.task], timeout=CANCEL_GRACE)
        if not pending.task.done():
            pending.outcome.cancelled += f"; the cancel did not end it within {CANCEL_GRACE:g} s, so it was terminated"
            await self.observer.execute("SELECT pg_terminate_backend($1)", live.pid)
            await asyncio.wait([pending.task], timeout=CANCEL_GRACE)
            if not pending.task.done():
                live.connection.terminate()
                await asyncio.wait([pending.task], timeout=CANCEL_GRACE)

    def _collect_finished(self, current: _Live | None) -> None:
        finished = [live for live in self.live.values() if live.pending is not None and live.pending.task.done()]

        def order(live: _Live) -> tuple[bool, int]:
            assert live.pending is not None
            return live is not current, live.pending.task.result().finished_ns

        for live in sorted(finished, key=order):
            self._record(live)

    def _record(self, live: _Live) -> None:
        pending = live.pending
        assert pending is not None
        live.pending = None
        result = pending.task.result()
        outcome = pending.outcome
        outcome.finished_ns = result.finished_ns
        outcome.rows, outcome.status = result.rows, result.status
        outcome.sqlstate, outcome.error = result.sqlstate, result.error
        live.transaction.after(outcome, live.connection.is_in_transaction())
        sql = outcome.step.sql
        if outcome.cancelled is not None:
            head = f"{outcome.name} never resumed" if outcome.blocked else f"{outcome.name}: {short_sql(sql)} → hung"
            text = f"{head}: {outcome.cancelled} → {outcome.result()}"
        elif pending.announced and outcome.blocked_ns is not None:
            waited = format_duration((result.finished_ns - outcome.blocked_ns) / 1e9)
            text = f"{outcome.name} resumed after {waited} → {outcome.result()}"
        else:
            text = f"{outcome.name}: {short_sql(sql)} → {outcome.result()}"
        self.timeline.append(TimelineEntry(live.session.name, outcome.name, text))


async def run_permutation(
    target: PostgresTarget,
    spec: InterleavingSpec,
    permutation: str | Sequence[str],
    *,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> PermutationRun:
    """Run the steps ``permutation`` names (``"r1 r2 w1 c1"``), in that order, on fresh connections."""
    return await _Runner(target, spec, spec.permutation(permutation), step_timeout).run()


async def run_every_permutation(
    target: PostgresTarget,
    spec: InterleavingSpec,
    *,
    limit: int = DEFAULT_PERMUTATION_LIMIT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> list[PermutationRun]:
    """Run every interleaving that keeps each session's steps in order, the set-up SQL before each one."""
    return [await _Runner(target, spec, steps, step_timeout).run() for steps in spec.every_permutation(limit)]
