"""Mutual exclusion of lock holders, judged from the history alone.

What the history knows. Each acquire and each release is known only within its
invoke→reply span: the lock granted at some instant between the acquire's
invoke and its reply, and let go at some instant between the release's invoke
and its reply, or, for a lease lock, when the lease ran out if that came first.
All times come from one monotonic clock in one process.

Two windows per hold, each taken on its safe side
(:class:`~stampede.checkers.lock_records.LockAttempt`):

- *held*, from the acquire's reply (the holder surely has the lock) to the
  release's invoke (the holder surely still acts on it). Two holders whose held
  windows overlap both worked as holder at the same instant: their work was not
  mutually excluded, whatever the lock believed.
- *promised*, the held window cut at the granted try's invoke plus the lease:
  a lease cannot have started before the request that won it left the client,
  so until then a correct lock cannot have let go on its own. Two holders whose
  promised windows overlap were inside their leases together: the lock granted
  itself twice, and it is broken.

Why an overlap found is real (the reasoning of Jepsen's Knossos, for a lock): a
history fits a correct lock if SOME choice of grant and let-go instants within
their spans keeps every two holds apart. For two holds that is impossible
exactly when each one's latest possible grant (its acquire reply) comes before
the other's earliest possible let-go (its release invoke, or its lease end),
which is exactly when the safe-side windows above overlap. Windows that do not
overlap fit a correct lock, including a hand-over in which the release and the
next acquire were in flight together.

The measurement error. The spans are already paid for by taking each window on
its safe side; what is left is the clock underneath. The lock server counts a
lease on its own clock, in whole milliseconds for Redis (``PX``), and the
timestamps are taken in the event loop, not on the wire. An overlap no longer
than ``tolerance`` (1 ms unless given) could be that alone: it is reported as
inconclusive, neither a pass nor a violation. A longer one is a violation,
shown with both intervals.

Each overlap of held windows is given its cause: *granted twice* when the
promised windows overlap too, else *outlived its lease*: the earlier holder
worked past its lease, the lock let it go as a lease lock must, and the next
holder got in while the first still thought it held the lock. The lock kept
its promise there; the holder's assumption broke, and its release answers
"not owned" (:func:`check_leases_outlived`). Only fencing makes such a holder
harmless (:mod:`stampede.checkers.fencing`; Kleppmann, "How to do distributed
locking", 2016).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..history import History
from ..units import format_duration
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .lock_records import (
    Clock,
    LockAttempt,
    account_for_errors,
    lease_text,
    lock_attempts,
    lock_names,
    with_lease_warning,
)

DEFAULT_TOLERANCE_NS = 1_000_000
GRANTED_TWICE = "granted twice"
OUTLIVED_LEASE = "outlived its lease"

Window = Callable[[LockAttempt], tuple[int, int]]


def held(attempt: LockAttempt) -> tuple[int, int]:
    return attempt.held


def promised(attempt: LockAttempt) -> tuple[int, int]:
    return attempt.promised


@dataclass(frozen=True)
class Overlap:
    """Two holds of one lock key whose windows overlap from ``start_ns`` to ``end_ns``."""

    first: LockAttempt
    second: LockAttempt
    start_ns: int
    end_ns: int

    @property
    def amount_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(frozen=True)
class Overlaps:
    """The overlaps of one kind of window, split at the tolerance."""

    holds: list[LockAttempt]
    violations: list[Overlap]
    inconclusive: list[Overlap]
    tolerance_ns: int


def find_overlaps(
    attempts: Iterable[LockAttempt], window: Window, tolerance_ns: int = DEFAULT_TOLERANCE_NS
) -> Overlaps:
    """Every pair of holds of the same key whose ``window`` overlaps, longer than the pair's tolerance or not.

    A pair's tolerance is ``tolerance_ns`` plus both holds' clock errors ε
    (holds timed on different workers' clocks): an overlap within it may be
    the clocks alone, and is inconclusive.
    """
    holds = [attempt for attempt in attempts if attempt.acquired]
    by_key: dict[str, list[LockAttempt]] = defaultdict(list)
    for hold in holds:
        by_key[hold.key].append(hold)
    found: list[Overlap] = []
    for key_holds in by_key.values():
        active: list[LockAttempt] = []
        for hold in sorted(key_holds, key=window):
            start, end = window(hold)
            active = [other for other in active if window(other)[1] > start]
            found.extend(
                Overlap(other, hold, start, min(end, window(other)[1]))
                for other in active
                if min(end, window(other)[1]) > start
            )
            active.append(hold)
    found.sort(key=lambda overlap: overlap.start_ns)
    return Overlaps(
        holds,
        [o for o in found if o.amount_ns > _tolerance(o, tolerance_ns)],
        [o for o in found if o.amount_ns <= _tolerance(o, tolerance_ns)],
        tolerance_ns,
    )


def _tolerance(overlap: Overlap, tolerance_ns: int) -> int:
    return tolerance_ns + overlap.first.clock_error_ns + overlap.second.clock_error_ns


def cause_of(overlap: Overlap, tolerance_ns: int) -> str:
    """Whether the lock let both in within their leases (granted twice) or a holder worked past its lease.

    Both within the pair's tolerance (with its clocks' errors), as the overlap itself is judged.
    """
    first, second = overlap.first.promised, overlap.second.promised
    within_leases = min(first[1], second[1]) - max(first[0], second[0])
    return GRANTED_TWICE if within_leases > _tolerance(overlap, tolerance_ns) else OUTLIVED_LEASE


def check_holders_never_overlap(
    history: History, tolerance_ns: int = DEFAULT_TOLERANCE_NS, *, errors_allowed: bool = False
) -> Verdict:
    """No two holders acted on the lock at once: their held windows never overlap beyond ``tolerance_ns``.

    Like every lock check, fails naming the lock calls that raised unless ``errors_allowed``.
    """
    attempts = lock_attempts(history)
    found = find_overlaps(attempts, held, tolerance_ns)
    verdict = _verdict("holders never overlap", "no two holders at once", found, attempts, held, _holder_wording)
    return account_for_errors(with_lease_warning(verdict, attempts), attempts, errors_allowed)


def check_never_granted_twice(
    history: History, tolerance_ns: int = DEFAULT_TOLERANCE_NS, *, errors_allowed: bool = False
) -> Verdict:
    """The lock never let a second holder in while the first was inside its lease and had not released."""
    attempts = lock_attempts(history)
    found = find_overlaps(attempts, promised, tolerance_ns)
    verdict = _verdict(
        "lock never granted twice", "no second grant inside a holder's lease", found, attempts, promised, _grant_wording
    )
    return account_for_errors(with_lease_warning(verdict, attempts), attempts, errors_allowed)


def check_single_active_session(
    history: History, tolerance_ns: int = DEFAULT_TOLERANCE_NS, *, errors_allowed: bool = False
) -> Verdict:
    """At most one session per user active at any instant: no two of a user's held windows overlap.

    A session is a hold of the user's lock (the tool's ``per user`` scope): active
    from the registration's reply to the start of its ending.
    """
    attempts = lock_attempts(history)
    verdict = _judge_sessions(attempts, tolerance_ns)
    return account_for_errors(with_lease_warning(verdict, attempts), attempts, errors_allowed)


def _judge_sessions(attempts: list[LockAttempt], tolerance_ns: int) -> Verdict:
    name, expected = "one active session per user", "at most one active session per user at any instant"
    agents_of: dict[str, set[int]] = defaultdict(set)
    for attempt in attempts:
        agents_of[attempt.user].add(attempt.agent)
    contested = sorted(user for user, agents in agents_of.items() if len(agents) > 1)
    sessions = [attempt for attempt in attempts if attempt.acquired and attempt.user in contested]
    if not sessions:
        return Verdict(
            name,
            True,
            expected,
            "no user had two agents",
            message="Single active session not judged: no user ran two agents that started sessions, so "
            "none could have two at once; launch more agents than users (users=…).",
            inconclusive=True,
            value=0.0,
        )
    found = find_overlaps(sessions, held, tolerance_ns)
    clock = Clock(attempts)
    tried = f"{plural(len(sessions), 'session')} of {plural(len(contested), 'user')} who ran several agents"
    if found.violations:
        users = sorted({o.first.user for o in found.violations})
        worst = max(_most_at_once(found.holds, user) for user in users)
        first = found.violations[0]
        rows = [_row(o, clock, "user", o.first.user, tolerance_ns) for o in found.violations]
        message = (
            f"Users had two sessions active at once: {len(users)} of {plural(len(contested), 'user')} "
            f"({', '.join(users[:5])}{' …' if len(users) > 5 else ''}), up to {worst} sessions of one user at "
            f"once; {first.first.user}'s sessions of agents {first.first.agent} "
            f"({clock.span(first.first.held)}) and {first.second.agent} ({clock.span(first.second.held)}) were both "
            f"active for {format_duration(first.amount_ns / 1e9)}{rows_note(len(rows))}."
        )
        return Verdict(
            name,
            False,
            expected,
            f"{len(users)} users with overlapping sessions",
            plural(len(found.violations), "overlap"),
            message,
            capped(rows),
            value=float(len(users)),
        )
    if found.inconclusive:
        return _inconclusive(name, expected, found, clock, "sessions of one user")
    return Verdict(
        name,
        True,
        expected,
        "0 users with overlapping sessions",
        message=f"At most one active session per user: {tried}; no user ever had two sessions active at once.",
        value=0.0,
    )


@dataclass(frozen=True)
class _Wording:
    violation: Callable[[Overlaps, Clock, list[dict[str, Any]]], str]
    passed: Callable[[Overlaps, list[LockAttempt]], str]
    what: str


def _verdict(
    name: str, expected: str, found: Overlaps, attempts: list[LockAttempt], window: Window, wording: _Wording
) -> Verdict:
    holds = found.holds
    clock = Clock(attempts)
    if len(holds) < 2:
        return Verdict(
            name,
            True,
            expected,
            plural(len(holds), "hold"),
            message=f"Nothing to judge for {name}: {plural(len(holds), 'agent')} got the lock "
            f"in {plural(len(attempts), 'attempt')}; two holds at least are needed.",
            inconclusive=True,
            value=0.0,
        )
    if found.violations:
        rows = [_row(o, clock, "lock", o.first.key, found.tolerance_ns) for o in found.violations]
        return Verdict(
            name,
            False,
            expected,
            f"{plural(len(found.violations), 'overlap')}",
            plural(len(found.violations), "overlap"),
            wording.violation(found, clock, rows),
            capped(rows),
            value=float(len(found.violations)),
        )
    if found.inconclusive:
        return _inconclusive(name, expected, found, clock, wording.what)
    gap = _closest_hand_over(holds, window)
    message = wording.passed(found, attempts)
    if gap is not None:
        message += f" The closest hand-over left {format_duration(gap / 1e9)} between one holder and the next."
    return Verdict(name, True, expected, "0 overlaps", message=message, value=0.0)


def _holder_violation(found: Overlaps, clock: Clock, rows: list[dict[str, Any]]) -> str:
    causes: dict[str, int] = defaultdict(int)
    for overlap in found.violations:
        causes[cause_of(overlap, found.tolerance_ns)] += 1
    parts = []
    if causes[GRANTED_TWICE]:
        parts.append(f"{causes[GRANTED_TWICE]} inside both holders' leases: the lock was granted twice")
    if causes[OUTLIVED_LEASE]:
        parts.append(
            f"{causes[OUTLIVED_LEASE]} after the earlier holder's lease could have run out: it outlived its lease"
        )
    first = found.violations[0]
    times = plural(len(found.violations), "time")
    return (
        f"Holders overlapped: {times} two agents held {lock_names(found.holds)} at once ({'; '.join(parts)}). "
        f"First: {_pair(first, clock)}{rows_note(len(rows))}."
    )


def _grant_violation(found: Overlaps, clock: Clock, rows: list[dict[str, Any]]) -> str:
    first = found.violations[0]
    times = plural(len(found.violations), "time")
    return (
        f"Lock granted twice: {times} {lock_names(found.holds)} let a second agent in while the holder was inside "
        "its lease and had not released. First: "
        f"{_pair(first, clock, promised)}{rows_note(len(rows))}."
    )


def _pair(overlap: Overlap, clock: Clock, window: Window = held) -> str:
    first, second = overlap.first, overlap.second
    lease_end, lease_ns = first.lease_end, first.lease_ns
    lease = (
        ""
        if lease_end is None or lease_ns is None
        else f" ({lease_text(lease_ns)} from {clock.at(lease_end - lease_ns)})"
    )
    return (
        f"agent {first.agent} held it {clock.span(window(first))}{lease} and agent {second.agent} "
        f"{clock.span(window(second))}, both at once for {format_duration(overlap.amount_ns / 1e9)}"
    )


def _holder_passed(found: Overlaps, attempts: list[LockAttempt]) -> str:
    holds = found.holds
    gave_up = sum(1 for attempt in attempts if not attempt.acquired and attempt.acquire_error is None)
    waited = f"; {plural(gave_up, 'attempt')} gave up waiting" if gave_up else ""
    return (
        f"No two holders at once: {plural(len(holds), 'hold')} of {lock_names(holds)} by "
        f"{plural(len({h.agent for h in holds}), 'agent')}, one after another{waited}."
    )


def _grant_passed(found: Overlaps, attempts: list[LockAttempt]) -> str:
    holds = found.holds
    outlived = [h for h in holds if (end := h.surely_expired_at) is not None and h.held[1] > end]
    message = (
        f"The lock never granted itself twice: {plural(len(holds), 'grant')} of {lock_names(holds)}, each "
        "given only after the previous holder released or its lease ran out."
    )
    if outlived:
        message += (
            f" {len(outlived)} of the holders worked past their {lease_text(outlived[0].lease_ns)}, and the "
            "lock let the next one in only once it had run out."
        )
    return message


_holder_wording = _Wording(_holder_violation, _holder_passed, "holders")
_grant_wording = _Wording(_grant_violation, _grant_passed, "grants")


def _inconclusive(name: str, expected: str, found: Overlaps, clock: Clock, what: str) -> Verdict:
    largest = max(found.inconclusive, key=lambda overlap: overlap.amount_ns)
    widest = max(_tolerance(overlap, found.tolerance_ns) for overlap in found.inconclusive)
    tolerance = format_duration(widest / 1e9)
    clocks = " with the workers' clock errors" if widest > found.tolerance_ns else ""
    rows = [_row(o, clock, "lock", o.first.key, found.tolerance_ns) for o in found.inconclusive]
    message = (
        f"Inconclusive: {plural(len(found.inconclusive), 'overlap')} of {what}, none longer than the measurement "
        f"error{clocks} ({tolerance}); the largest, {_pair(largest, clock)}, could come from the clocks alone, "
        f"so the history neither proves nor rules out two at once{rows_note(len(rows))}."
    )
    return Verdict(
        name,
        True,
        expected,
        f"{plural(len(found.inconclusive), 'overlap')} within {tolerance}",
        message=message,
        details=capped(rows),
        inconclusive=True,
        value=0.0,
    )


def _row(overlap: Overlap, clock: Clock, label: str, value: str, tolerance_ns: int) -> dict[str, Any]:
    first, second = overlap.first, overlap.second
    return {
        label: value,
        "first holder": f"agent {first.agent}, held {clock.span(first.held)}, {lease_text(first.lease_ns)}",
        "second holder": f"agent {second.agent}, held {clock.span(second.held)}",
        "both at once": format_duration(overlap.amount_ns / 1e9),
        "cause": cause_of(overlap, tolerance_ns),
        "releases answered": f"{first.release_answer}, {second.release_answer}",
    }


def _closest_hand_over(holds: Sequence[LockAttempt], window: Window) -> int | None:
    gaps: list[int] = []
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for hold in holds:
        by_key[hold.key].append(window(hold))
    for windows in by_key.values():
        windows.sort()
        gaps.extend(later[0] - earlier[1] for earlier, later in pairwise(windows))
    return min(gaps) if gaps else None


def _most_at_once(holds: Iterable[LockAttempt], user: str) -> int:
    # At one instant an end (-1) sorts before a start (+1): a hand-over is not two at once.
    events = sorted(event for hold in holds if hold.user == user for event in ((hold.held[0], 1), (hold.held[1], -1)))
    most = active = 0
    for _, change in events:
        active += change
        most = max(most, active)
    return most
