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
  reported as blocked forever (a spec file's run waits for it up to
  ``step_timeout`` instead, as isolationtester does: a server timeout may end it);
- a step neither finished nor blocked by a session of the run within
  ``step_timeout`` (a long query, a lock held outside the run) is cancelled and
  reported as hung.

The order steps are reported in is isolationtester's: the step just issued
first (completed, or blocked), then the steps that were waiting, in the order
they began to wait. Blocker annotations hold a step's completion back as
isolationtester's do: ``(*)`` shows it waiting once, ``(other)`` until step
``other`` has completed, ``(other notices N)`` until ``other``'s session has
received N more notices.

Connections live only while a permutation runs: the set-up blocks run on a
control connection, then each session opens its own and runs its setup (a
session with an isolation level then ``BEGIN``s at that level), the steps run,
each session's teardown, then the spec's teardown. Whatever is still open
at the end is rolled back and closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ..errors import ConfigurationError
from ..services.postgres_target import PostgresTarget
from ..units import format_duration
from .libpq import Result, SessionConnection
from .notation import BlockerKind
from .outcome import (
    EntryKind,
    Notice,
    PermutationRun,
    SessionTransaction,
    StepOutcome,
    TimelineEntry,
    WaitKind,
    short_sql,
)
from .spec import DEFAULT_PERMUTATION_LIMIT, InterleavingSpec, PermutationStep, Session

DEFAULT_STEP_TIMEOUT = 10.0
POLL_SECONDS = 0.01  # isolationtester polls every 10 ms too
CANCEL_GRACE = 5.0
CLOSE_TIMEOUT = 5.0

_BLOCKERS = """
    SELECT pid, pg_blocking_pids(pid) AS locks, pg_safe_snapshot_blocking_pids(pid) AS snapshots
    FROM unnest($1::int[]) AS pid
"""

_STILL_THERE = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])"


@dataclass
class _Pending:
    place: PermutationStep
    outcome: StepOutcome
    task: asyncio.Task[Result]
    since: float  # monotonic seconds: issued, or last seen blocked by a session of the run
    target_notices: dict[str, int]  # (other session: notices it must have received) for 'notices N' blockers
    needed_since: float | None = None  # since when the permutation cannot go on without it
    announced: bool = False  # the timeline already shows it as blocked (or held back)
    blocked_now: bool = False  # blocked by a session of the run at the last look


@dataclass
class _Live:
    session: Session
    connection: SessionConnection
    transaction: SessionTransaction
    pending: _Pending | None = None

    @property
    def pid(self) -> int:
        return self.connection.pid


class SpecSetupError(ConfigurationError):
    """A set-up block, or a session's setup, failed: the permutation cannot run."""


class _Runner:
    def __init__(
        self,
        target: PostgresTarget,
        spec: InterleavingSpec,
        steps: tuple[PermutationStep, ...],
        step_timeout: float,
        as_isolationtester: bool = False,
    ) -> None:
        if step_timeout <= 0:
            raise ConfigurationError(f"The step timeout must be longer than 0 s, got {step_timeout:g} s.")
        self.target = target
        self.spec = spec
        self.steps = steps
        self.step_timeout = step_timeout
        # As isolationtester does: open every session (and run its setup), and wait for a step blocked by
        # idle sessions (a server timeout may end it) rather than cancel it at once.
        self.as_isolationtester = as_isolationtester
        self.sessions = {
            name: session
            for name, session in spec.sessions.items()
            if as_isolationtester or any(place.session == name for place in steps)
        }
        self.live: dict[str, _Live] = {}
        self.waiting: list[_Live] = []  # sessions whose step waits, in the order they began to wait
        self.outcomes: dict[str, StepOutcome] = {}
        self.timeline: list[TimelineEntry] = []
        self.observer: asyncpg.Connection | None = None
        self.control: SessionConnection | None = None
        self.last_issued: str | None = None

    async def run(self) -> PermutationRun:
        began = time.monotonic()
        try:
            self.observer = await self.target.connect()
            self.control = await SessionConnection.open(self.target, "control connection")
            for sql in self.spec.setup_blocks:
                await self._run_block(self.control, sql, "the permutation set-up SQL")
            for name, session in self.sessions.items():
                await self._open(name, session)
            for place in self.steps:
                await self._run_step(place)
            await self._settle(finishing=True)
            for name, live in self.live.items():
                if live.session.teardown:
                    what = f"the teardown of session {name}"
                    await self._run_block(live.connection, live.session.teardown, what, name, fail=False)
            await self._roll_back_open()
            if self.spec.teardown.strip():
                await self._run_block(self.control, self.spec.teardown, "the permutation teardown SQL", fail=False)
        finally:
            await self._close()
        return PermutationRun(
            sessions=dict(self.sessions),
            permutation=tuple(place.name for place in self.steps),
            outcomes=self.outcomes,
            timeline=self.timeline,
            transactions={name: live.transaction for name, live in self.live.items()},
            server_version=self.target.server_version,
            seconds=time.monotonic() - began,
        )

    # ------------------------------------------------------------------ set-up and clean-up

    async def _run_block(
        self, connection: SessionConnection, sql: str, what: str, session: str = "", *, fail: bool = True
    ) -> None:
        """Run a setup or teardown block as isolationtester does: rows of its last statement are shown.

        ``what`` names the block in messages (``the setup of session s1``);
        ``session`` is the session it runs on (none: the control connection,
        whose notices isolationtester does not show). A failing setup stops the
        permutation; a failing teardown is noted in the timeline.
        """
        result = await self._bounded(connection, sql, what)
        notices = connection.take_notices() if session else ()
        shown = tuple(result.results[-1:]) if result.error is None else ()
        if notices or any(r.returns_rows for r in shown):
            rows = tuple(r for r in shown if r.returns_rows)
            self.timeline.append(TimelineEntry(session, "", f"{what} output", EntryKind.OUTPUT, None, notices, rows))
        if result.error is None:
            return
        if fail:
            failed = result.sqlstate or "an error"
            raise SpecSetupError(f"{what[0].upper()}{what[1:]} failed with {failed}: {result.error}. Fix that SQL.")
        self.timeline.append(TimelineEntry(session, "", f"{what} failed: {result.error}", EntryKind.FAILED))

    async def _bounded(self, connection: SessionConnection, sql: str, what: str) -> Result:
        """Run SQL outside the steps (set-up, teardown, BEGIN, ROLLBACK), cancelled if it takes the step timeout."""
        try:
            return await asyncio.wait_for(connection.execute(sql, self._names()), self.step_timeout)
        except TimeoutError:
            assert self.observer is not None
            await self.observer.execute("SELECT pg_cancel_backend($1)", connection.pid)
            raise SpecSetupError(
                f"{what[0].upper()}{what[1:]} did not finish within {format_duration(self.step_timeout)} "
                "(a lock held outside the run, or a long query?); Stampede cancelled it."
            ) from None

    def _names(self) -> dict[int, str]:
        return {live.pid: name for name, live in self.live.items()}

    async def _open(self, name: str, session: Session) -> None:
        connection = await SessionConnection.open(self.target, name)
        live = _Live(session, connection, SessionTransaction(session))
        self.live[name] = live
        if session.isolation is not None:
            level = session.isolation.value.upper()
            sql = f"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL {level}"
            await self._bounded(connection, sql, f"the isolation level of session {name}")
        if session.setup:
            await self._run_block(connection, session.setup, f"the setup of session {name}", name)
        if session.isolation is not None and not connection.in_transaction:
            await self._bounded(connection, "BEGIN", f"the BEGIN of session {name}")
        live.transaction.begun(connection.in_transaction)

    async def _roll_back_open(self) -> None:
        for name, live in self.live.items():
            if not live.connection.closed and live.connection.in_transaction:
                await self._bounded(live.connection, "ROLLBACK", f"the ROLLBACK of session {name}")
                live.transaction.ended_by_stampede()
                self.timeline.append(
                    TimelineEntry(name, "", "Stampede rolled back the transaction left open", EntryKind.ROLLED_BACK)
                )

    async def _close(self) -> None:
        """Close every connection; a step still running (only after an error of the runner itself) is cut off."""
        connections = [live.connection for live in self.live.values()]
        if self.control is not None:
            connections.append(self.control)
        pids = [connection.pid for connection in connections]
        for connection in connections:
            await connection.close()
        tasks = [live.pending.task for live in self.live.values() if live.pending is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        await self._wait_for_exit(pids)
        if self.observer is not None and not self.observer.is_closed():
            try:
                await self.observer.close(timeout=CLOSE_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                self.observer.terminate()

    async def _wait_for_exit(self, pids: list[int]) -> None:
        """libpq closes without waiting for the backend to end: wait (bounded) until the server has let them go."""
        if self.observer is None or self.observer.is_closed() or not pids:
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if not await self.observer.fetchval(_STILL_THERE, pids):
                    return
                await asyncio.sleep(POLL_SECONDS)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
            return

    # ------------------------------------------------------------------ steps

    async def _run_step(self, place: PermutationStep) -> None:
        live = self.live[place.session]
        if live.pending is not None:
            await self._settle(need=live)
        outcome = StepOutcome(place.step, occurrence=place.label)
        self.outcomes[place.label] = outcome
        live.connection.take_notices()
        targets = {
            blocker.step: self.live[self.spec.steps[blocker.step].session].connection.received + blocker.notices
            for blocker in place.blockers
            if blocker.kind is BlockerKind.NOTICES
        }
        task = asyncio.get_running_loop().create_task(live.connection.execute(place.sql, self._names()))
        live.pending = _Pending(place, outcome, task, time.monotonic(), targets)
        self.last_issued = place.label
        if any(blocker.kind is BlockerKind.ONCE for blocker in place.blockers):
            # Shown waiting at once; as in isolationtester, it is looked at again after the next step.
            self._announce(live, "held back once by its (*) annotation")
            self.waiting.append(live)
        else:
            await self._settle(current=live)

    def _held(self, pending: _Pending) -> str | None:
        """Which annotation still holds the step's completion back, if one does."""
        for blocker in pending.place.blockers:
            if blocker.kind is BlockerKind.STEP:
                other = self.live[self.spec.steps[blocker.step].session].pending
                if other is not None and other.place.name == blocker.step:
                    return f"held back until {blocker.step} completes"
            elif blocker.kind is BlockerKind.NOTICES:
                session = self.live[self.spec.steps[blocker.step].session]
                if session.connection.received < pending.target_notices[blocker.step]:
                    return f"held back until {session.session.name} has {blocker.notices} more notices"
        return None

    async def _settle(self, current: _Live | None = None, need: _Live | None = None, finishing: bool = False) -> None:
        """Wait until every pending step has finished, or is blocked by a session of the run, or held back.

        ``current``: the session whose step was just issued; it is reported
        before the steps that were waiting. ``need``: that session's pending
        step must finish (its session has a step to run). ``finishing``:
        every pending step must finish. A step that can never resume is
        cancelled; one that hangs is cancelled after the step timeout.
        """
        while True:
            self._collect_finished(current, need)
            if current is not None and current.pending is None:
                current = None
            pending = [live for live in self.live.values() if live.pending is not None]
            if not pending:
                return
            blockers = await self._blockers(pending)
            now = time.monotonic()
            waiting: list[_Live] = []
            for live in pending:
                if self._must_wait_for(
                    live, blockers[live.session.name], now, live is current, live is need or finishing
                ):
                    waiting.append(live)
                if live is current and live in self.waiting:
                    current = None
            if not waiting:
                return
            plain = {name: found for name, (found, _) in blockers.items()}
            for live in waiting:
                await self._cancel_if_stuck_or_hung(live, plain, now, finishing)
            await asyncio.wait(
                [live.pending.task for live in waiting if live.pending is not None and not live.pending.task.done()]
                or [asyncio.ensure_future(asyncio.sleep(POLL_SECONDS))],
                timeout=POLL_SECONDS,
                return_when=asyncio.FIRST_COMPLETED,
            )

    def _must_wait_for(
        self, live: _Live, found: tuple[set[str], WaitKind], now: float, current: bool, needed: bool
    ) -> bool:
        """Whether to go on waiting for the session's pending step: it runs, or is blocked but needed.

        A step blocked by a session of the run, or held back by its annotation,
        is shown waiting (once); the step just issued then joins the waiting ones.
        """
        pending = live.pending
        assert pending is not None
        pending.blocked_now = bool(found[0])
        held = self._held(pending)
        if pending.task.done() and held is None:
            return True
        if not found[0] and held is None:
            return True
        if found[0]:
            self._mark_blocked(live, found, now)
        elif not pending.announced:
            self._announce(live, held or "")
        if current and live not in self.waiting:
            self.waiting.append(live)
        if needed:
            pending.needed_since = pending.needed_since or now
        return needed

    def _collect_finished(self, current: _Live | None, need: _Live | None = None) -> None:
        """Report finished steps in isolationtester's order: the step just issued, then the waiting ones in turn.

        A waiting step is reported only once every step that began waiting
        before it is reported or still blocked, as isolationtester looks at
        them one after the other. A step the next step waits for (``need``)
        is reported as soon as it is done: isolationtester waits for it first.
        """
        changed = True
        while changed:
            changed = False
            needed = need.pending if need is not None else None
            if need is not None and needed is not None and needed.task.done() and self._held(needed) is None:
                self._record(need)
                changed = True
            if current is not None and current.pending is not None:
                if not (current.pending.task.done() and self._held(current.pending) is None):
                    return  # the step just issued is not settled yet: it comes first
                self._record(current)
                changed = True
            for live in list(self.waiting):
                pending = live.pending
                if pending is None:
                    continue
                if pending.task.done() and self._held(pending) is None:
                    self._record(live)
                    changed = True
                elif not (pending.blocked_now or self._held(pending) is not None):
                    break  # isolationtester waits for this one before it looks at the next
            for live in self.live.values():  # a needed step that was never announced as waiting
                pending = live.pending
                unseen = pending is not None and live not in self.waiting and live is not current
                if unseen and pending is not None and pending.task.done() and self._held(pending) is None:
                    self._record(live)
                    changed = True

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
            if ready and not self.as_isolationtester and self._stuck(name, blockers, set()):
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

    def _mark_blocked(self, live: _Live, found: tuple[set[str], WaitKind], now: float) -> None:
        pending = live.pending
        assert pending is not None
        sessions, kind = found
        outcome = pending.outcome
        if outcome.blocked_ns is None:
            outcome.blocked_ns = time.monotonic_ns()
            outcome.waited_for = kind
        outcome.blocked_by = outcome.blocked_by + tuple(sorted(sessions - set(outcome.blocked_by)))
        pending.since = now
        if not pending.announced:
            self._announce(live, f"blocked ({outcome.waited})")

    def _announce(self, live: _Live, how: str) -> None:
        """Show the pending step as waiting, with the notices its session received before."""
        pending = live.pending
        assert pending is not None
        pending.announced = True
        if pending.outcome.blocked_ns is None:
            pending.outcome.blocked_ns = time.monotonic_ns()
        outcome = pending.outcome
        self.timeline.append(
            TimelineEntry(
                live.session.name,
                outcome.name,
                f"{outcome.name}: {short_sql(outcome.step.sql)} → {how}",
                EntryKind.BLOCKED,
                outcome,
                self._notices_of(live),
            )
        )

    def _notices_of(self, live: _Live) -> tuple[Notice, ...]:
        notices = live.connection.take_notices()
        if live.pending is not None:
            live.pending.outcome.notices.extend(notices)
        return notices

    async def _blockers(self, pending: list[_Live]) -> dict[str, tuple[set[str], WaitKind]]:
        """For each pending session, the sessions of the run that block it, and whether on a lock or a snapshot."""
        assert self.observer is not None
        by_pid = self._names()
        rows = await self.observer.fetch(_BLOCKERS, [live.pid for live in pending])
        found: dict[str, tuple[set[str], WaitKind]] = {}
        for row in rows:
            locks = {by_pid[pid] for pid in row["locks"] if pid in by_pid}
            snapshots = {by_pid[pid] for pid in row["snapshots"] if pid in by_pid}
            kind = WaitKind.LOCK if locks or not snapshots else WaitKind.SAFE_SNAPSHOT
            found[by_pid[row["pid"]]] = (locks | snapshots, kind)
        return {live.session.name: found.get(live.session.name, (set(), WaitKind.LOCK)) for live in pending}

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
                await live.connection.close()
                pending.task.cancel()
                await asyncio.wait([pending.task], timeout=CANCEL_GRACE)

    def _record(self, live: _Live) -> None:
        pending = live.pending
        assert pending is not None
        notices = self._notices_of(live)
        live.pending = None
        if live in self.waiting:
            self.waiting.remove(live)
        if pending.task.cancelled():
            result = Result(time.monotonic_ns(), error="the connection was cut off")
        else:
            result = pending.task.result()
        outcome = pending.outcome
        outcome.finished_ns = result.finished_ns
        outcome.results, outcome.status = result.results, result.status
        outcome.sqlstate, outcome.error = result.sqlstate, result.error
        live.transaction.after(outcome, live.connection.in_transaction)
        sql = outcome.step.sql
        if pending.announced:
            outcome.released_by = self.last_issued if self.last_issued != outcome.name else None
        if outcome.cancelled is not None:
            head = f"{outcome.name} never resumed" if outcome.blocked else f"{outcome.name}: {short_sql(sql)} → hung"
            text, kind = f"{head}: {outcome.cancelled} → {outcome.result()}", EntryKind.CANCELLED
        elif pending.announced and outcome.blocked_ns is not None:
            waited = format_duration(max(0, result.finished_ns - outcome.blocked_ns) / 1e9)
            released = f" (released by {outcome.released_by})" if outcome.released_by else ""
            text = f"{outcome.name} resumed after {waited}{released} → {outcome.result()}"
            kind = EntryKind.FAILED if outcome.error is not None else EntryKind.RESUMED
        else:
            text = f"{outcome.name}: {short_sql(sql)} → {outcome.result()}"
            kind = EntryKind.FAILED if outcome.error is not None else EntryKind.COMPLETED
        self.timeline.append(
            TimelineEntry(live.session.name, outcome.name, text, kind, outcome, notices, after_wait=pending.announced)
        )


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


async def run_spec(
    target: PostgresTarget,
    spec: InterleavingSpec,
    *,
    limit: int = DEFAULT_PERMUTATION_LIMIT,
    step_timeout: float = DEFAULT_STEP_TIMEOUT,
) -> list[PermutationRun]:
    """Run the permutations a spec file names, or (when it names none) every interleaving of its steps.

    As isolationtester does, a step blocked by sessions with nothing left to
    run is waited for (a ``lock_timeout`` or ``statement_timeout`` may end
    it), up to ``step_timeout``, rather than cancelled at once.
    """
    permutations = spec.permutations or spec.every_permutation(limit)
    return [await _Runner(target, spec, steps, step_timeout, as_isolationtester=True).run() for steps in permutations]
