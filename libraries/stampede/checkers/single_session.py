"""A single active session per user: no two of a user's sessions active at the same instant.

A session's span runs from when the service opened it (its ready event) to the
end of the last operation that used it, as the WebSocket agent tool records in
``Operation.read["session"]``: a lower bound of how long it was active, so an
overlap found is real. Judging needs users with more than one agent (launch
more agents than users); a refused second session is counted by its code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ..history import History
from ..records.websocket import SESSION_KEY, WsFailure
from ..units import format_duration
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


@dataclass(frozen=True)
class SessionSpan:
    """When one of a user's sessions was known to be active (monotonic ns)."""

    user: str
    agent: int
    connection: int
    session_id: Any
    start_ns: int
    end_ns: int


def session_spans(history: History) -> list[SessionSpan]:
    """Each (agent, connection)'s session, from its opening to the end of its last operation."""
    spans: dict[tuple[int, int], SessionSpan] = {}
    for op in history:
        session = op.read.get(SESSION_KEY) if isinstance(op.read, dict) else None
        if not isinstance(session, dict) or session.get("since_ns") is None:
            continue
        key = (op.agent, int(session.get("connection", 1)))
        known = spans.get(key)
        end = max(op.end_ns, known.end_ns) if known else op.end_ns
        spans[key] = SessionSpan(op.user, op.agent, key[1], session.get("id"), int(session["since_ns"]), end)
    return sorted(spans.values(), key=lambda span: (span.user, span.start_ns))


def _overlaps(spans: list[SessionSpan]) -> list[tuple[SessionSpan, SessionSpan]]:
    return [
        (first, second)
        for index, first in enumerate(spans)
        for second in spans[index + 1 :]
        if (first.agent, first.connection) != (second.agent, second.connection)
        and second.start_ns < first.end_ns
        and first.start_ns < second.end_ns
    ]


def check_single_session(history: History) -> Verdict:
    """Fail when one user had two sessions active at once; report second sessions the service refused."""
    agents_of: dict[str, set[int]] = defaultdict(set)
    refusals: Counter[str] = Counter()
    for op in history:
        agents_of[op.user].add(op.agent)
        if op.error == WsFailure.REFUSED:
            read = op.read if isinstance(op.read, dict) else {}
            close = f"close {read['close_code']}" if read.get("close_code") else None
            refusals[str(read.get("code") or close or "no code")] += 1
    by_user: dict[str, list[SessionSpan]] = defaultdict(list)
    for span in session_spans(history):
        by_user[span.user].append(span)
    name = "single session per user"
    expected = "at most one active session per user at any instant"
    contested = [user for user, agents in agents_of.items() if len(agents) > 1]
    refused = ", ".join(f"{count} {code}" for code, count in refusals.most_common()) or "none"
    if not contested:
        return Verdict(
            name,
            True,
            expected,
            "no user tried a second session",
            message="Single session not judged: every user ran one agent, so none tried a second "
            "session; launch more agents than users.",
            inconclusive=True,
        )
    overlaps = [pair for user in contested for pair in _overlaps(by_user[user])]
    tried = f"{plural(len(contested), 'user')} ran several agents; refused sessions: {refused}"
    if not overlaps:
        return Verdict(
            name,
            True,
            expected,
            "0 users with overlapping sessions",
            message=f"At most one active session per user: {tried}; no two sessions of a user were active at once.",
            value=0.0,
        )
    rows = [
        {
            "user": first.user,
            "first session": first.session_id,
            "agent": first.agent,
            "second session": second.session_id,
            "second agent": second.agent,
            "overlap": format_duration((min(first.end_ns, second.end_ns) - max(first.start_ns, second.start_ns)) / 1e9),
        }
        for first, second in overlaps
    ]
    users = sorted({first.user for first, _ in overlaps})
    first_row = rows[0]
    return Verdict(
        name,
        False,
        expected,
        f"{len(users)} of {plural(len(contested), 'user')} with overlapping sessions",
        plural(len(users), "user"),
        f"Users held two sessions at once: {len(users)} of {plural(len(contested), 'user')} with several "
        f"agents had overlapping sessions (refused sessions: {refused}); {first_row['user']}'s sessions of "
        f"agents {first_row['agent']} and {first_row['second agent']} were both active for "
        f"{first_row['overlap']}{rows_note(len(rows))}.",
        capped(rows),
        value=float(len(users)),
    )
