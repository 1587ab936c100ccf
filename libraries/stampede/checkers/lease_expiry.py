"""Leases outlived: a holder still working, or releasing, after its lease had surely run out.

A release that answers "not owned" found the lock gone or someone else's; a
release after the lease surely ran out that still answered "released" deleted a
lock that was no longer the holder's.
"""

from __future__ import annotations

from ..history import History
from ..units import format_duration
from ..verdicts import Verdict
from ._report import agent_list, capped, plural, rows_note
from .lock_records import (
    NOT_OWNED,
    RAISED,
    Clock,
    LockAttempt,
    account_for_errors,
    lease_text,
    lock_attempts,
    with_lease_warning,
)
from .mutual_exclusion import DEFAULT_TOLERANCE_NS


def check_leases_outlived(
    history: History, tolerance_ns: int = DEFAULT_TOLERANCE_NS, *, errors_allowed: bool = False
) -> Verdict:
    """No holder outlived its lease: no release answered "not owned", none came after the lease surely ran out.

    A release after the lease surely ran out (acquire reply + lease, plus
    ``tolerance_ns`` for the server's clock) that still answered "released"
    deleted a lock that was no longer the holder's: the broken lock's plain ``DEL``.
    A release that raised answered nothing: it is not judged here, and fails
    the check unless ``errors_allowed`` (:func:`~.lock_records.account_for_errors`).
    """
    attempts = lock_attempts(history)
    verdict = _judge_leases(attempts, tolerance_ns)
    return account_for_errors(with_lease_warning(verdict, attempts), attempts, errors_allowed)


def _judge_leases(attempts: list[LockAttempt], tolerance_ns: int) -> Verdict:
    holds = [attempt for attempt in attempts if attempt.acquired and attempt.release_answer in ("released", NOT_OWNED)]
    name, expected = "no holder outlived its lease", "every release finds the lock still the holder's"
    not_owned = [hold for hold in holds if hold.release_answer == NOT_OWNED]
    late = [hold for hold in holds if (end := hold.surely_expired_at) is not None and hold.held[1] > end + tolerance_ns]
    released_late = [hold for hold in late if hold.release_answer == "released"]
    if not holds:
        return Verdict(
            name,
            True,
            expected,
            "0 releases",
            message="Nothing to judge: no release of the lock answered.",
            inconclusive=True,
            value=0.0,
        )
    if not not_owned and not late:
        return Verdict(
            name,
            True,
            expected,
            f"0 of {plural(len(holds), 'release')} not owned",
            message=_within_leases(attempts, holds),
            value=0.0,
        )
    clock = Clock(attempts)
    parts = []
    if late:
        longest = max(hold.held[1] - hold.held[0] for hold in late)
        parts.append(
            f"{len(late)} of {plural(len(holds), 'holder')} were still working when their "
            f"{lease_text(late[0].lease_ns)} had surely run out (held up to {format_duration(longest / 1e9)})"
        )
    if not_owned:
        parts.append(f'{plural(len(not_owned), "release")} answered "not owned"')
    if released_late:
        parts.append(
            f"{plural(len(released_late), 'release')} after the lease had surely run out answered "
            '"released": it deleted a lock that was no longer the holder\'s'
        )
    shown = sorted({*not_owned, *late}, key=lambda hold: hold.acquire_reply)
    rows = [
        {
            "agent": hold.agent,
            "fence": hold.fence,
            "held": clock.span(hold.held),
            "for": format_duration((hold.held[1] - hold.held[0]) / 1e9),
            "lease": lease_text(hold.lease_ns),
            "stalled": "yes" if hold.stalled else "",
            "release answered": hold.release_answer,
        }
        for hold in shown
    ]
    message = (
        f"Holders outlived their leases: {'; '.join(parts)} (agents "
        f"{agent_list(hold.agent for hold in shown)}){rows_note(len(rows))}."
    )
    return Verdict(
        name,
        False,
        expected,
        f"{len(not_owned)} of {plural(len(holds), 'release')} not owned",
        plural(len(shown), "holder"),
        message,
        capped(rows),
        value=float(len(not_owned)),
    )


def _within_leases(attempts: list[LockAttempt], holds: list[LockAttempt]) -> str:
    if any(attempt.release_answer == RAISED for attempt in attempts):
        # Those holders' releases answered nothing: whether they finished within their leases is unknown.
        return f"Each release that answered found the lock still the holder's: {plural(len(holds), 'release')}."
    return f'Every holder finished within its lease: {plural(len(holds), "release")}, each answered "released".'
