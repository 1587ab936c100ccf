"""Per-user isolation of threads: every request a check made for another user's thread was refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..records.threads import ForeignAccess
from ..verdicts import Verdict
from ._report import capped, plural, rows_note
from .thread_runs import ok_status


def _row(access: ForeignAccess) -> dict[str, object]:
    return {
        "user": access.user,
        "thread": access.thread,
        "owner": access.owner,
        "request": access.request,
        "HTTP status": access.status,
        "detail": access.detail or "",
    }


def check_foreign_access_refused(accesses: Sequence[ForeignAccess]) -> Verdict:
    """Fail when the service answered a user's request for another user's thread with a success status.

    A request that got no answer, or an error that is no refusal, is neither:
    it is named, and judged only when others were answered.
    """
    name = "other users' threads refused"
    expected = "every request for another user's thread refused"
    served = [access for access in accesses if not access.refused and ok_status(access.status)]
    unjudged = [access for access in accesses if not access.refused and not ok_status(access.status)]
    refused = [access for access in accesses if access.refused]
    judged = len(served) + len(refused)
    note = ""
    if unjudged:
        first = unjudged[0]
        answer = f"status {first.status}" if first.status is not None else "no answer"
        note = (
            f"; {plural(len(unjudged), 'request')} neither refused nor served were not judged (first, {first.user}'s "
            f"{first.request} of thread {first.thread}: {answer}{', ' + first.detail if first.detail else ''})"
        )
    if not judged:
        what = "no request for another user's thread was made" if not accesses else "none was answered"
        return Verdict(
            name,
            True,
            expected,
            "no answered request",
            message=f"Thread isolation not judged: {what} (it takes two users with threads){note}.",
            inconclusive=True,
        )
    users = len({access.user for access in accesses})
    statuses = Counter(str(access.status) for access in refused)
    answers = ", ".join(f"{status} ×{count}" for status, count in sorted(statuses.items()))
    measured = f"{len(served)} of {judged} served"
    if not served:
        return Verdict(
            name,
            True,
            expected,
            measured,
            message=f"Other users' threads were refused: all {plural(judged, 'request')} by "
            f"{plural(users, 'user')} for threads of others were refused ({answers}){note}.",
            value=0.0,
        )
    first = served[0]
    readers = len({access.user for access in served})
    return Verdict(
        name,
        False,
        expected,
        measured,
        plural(len(served), "request"),
        f"Users reached other users' threads: {len(served)} of {plural(judged, 'request')} "
        f"{'was' if len(served) == 1 else 'were'} served, by "
        f"{readers} of {plural(users, 'user')}; first: {first.user}'s {first.request} of thread {first.thread} "
        f"(owner {first.owner}) was answered {first.status}{rows_note(len(served))}{note}.",
        capped([_row(access) for access in served]),
        value=float(len(served)),
    )
