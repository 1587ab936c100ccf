"""Checks of MCP tool calls: each answer belongs to its own request, one user's notes never reach another,
and the sessions a server was told to end are gone.

They read :class:`~stampede.records.mcp.McpCall` records (a launch's, or hand-made ones).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from ..records.mcp import McpCall
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _echoed(call: McpCall, nonce_field: str) -> Any:
    """The nonce the answer carries: its structured content's ``nonce_field``, else None."""
    if isinstance(call.structured, Mapping):
        return call.structured.get(nonce_field)
    return None


def check_own_answers(calls: Sequence[McpCall], *, nonce_field: str = "nonce") -> Verdict:
    """Fail when a call's answer carries another call's nonce (or none): an answer delivered to the wrong request.

    Each call sends a fresh nonce its tool echoes (in the structured content's
    ``nonce_field``, or anywhere in its text content). Calls without a result
    are not judged; no answered call at all is inconclusive.
    """
    name = "MCP answers match their requests"
    answered = [call for call in calls if call.answered]
    if not answered:
        return Verdict(
            name,
            False,
            "every answer carries its own request's nonce",
            "no call was answered",
            message=f"Nothing judged: none of {plural(len(calls), 'call')} got a result.",
            inconclusive=True,
        )
    owners = {call.nonce: call for call in calls}
    wrong: list[dict[str, Any]] = []
    for call in answered:
        echoed = _echoed(call, nonce_field)
        if echoed == call.nonce or (echoed is None and call.nonce in call.returned_text()):
            continue
        other = owners.get(str(echoed)) if echoed is not None else None
        wrong.append(
            {
                "agent": call.agent,
                "session": call.session,
                "request id": call.request_id,
                "sent nonce": call.nonce,
                "answer's nonce": echoed,
                "answer belongs to": (
                    f"agent {other.agent}, request {other.request_id}" if other is not None else "no call of the launch"
                ),
            }
        )
    if not wrong:
        return Verdict(
            name,
            True,
            "every answer carries its own request's nonce",
            f"{plural(len(answered), 'answer')}, all their own",
            message=f"Every one of {plural(len(answered), 'answered call')} got its own answer.",
            value=0,
        )
    crossed = sum(1 for row in wrong if row["answer's nonce"] in owners)
    return Verdict(
        name,
        False,
        "every answer carries its own request's nonce",
        f"{len(wrong)} of {len(answered)} answers were not their request's",
        f"{plural(len(wrong), 'answer')}",
        f"{plural(len(wrong), 'call')} of {len(answered)} got an answer that is not theirs ({crossed} carry the nonce "
        f"of another call of the launch: answers were delivered to the wrong request){rows_note(len(wrong))}.",
        capped(wrong),
        value=len(wrong),
    )


def check_users_isolated(
    calls: Sequence[McpCall], marker_owners: Mapping[str, str], *, nonce_field: str = "nonce"
) -> Verdict:
    """Fail when what a tool returned to one user carries a marker another user's call wrote.

    ``marker_owners`` maps each call's marker to its user (the tool keeps it).
    An answer that carries another call's nonce is left to
    :func:`check_own_answers` (it was delivered to the wrong request, whatever
    state the server keeps); calls without a result are not judged. No answer
    judged is inconclusive.
    """
    name = "MCP tool state stays with its user"
    answered = [call for call in calls if call.answered]
    own = [call for call in answered if _echoed(call, nonce_field) in (None, call.nonce)]
    crossed = len(answered) - len(own)
    left_to = (
        f" ({plural(crossed, 'answer')} carrying another call's nonce left to the answer check)" if crossed else ""
    )
    if not own or not marker_owners:
        return Verdict(
            name,
            False,
            "no user reads another user's markers",
            "no call was answered",
            message=f"Nothing judged: none of {plural(len(calls), 'call')} got a result of its own{left_to}.",
            inconclusive=True,
        )
    markers = re.compile(
        "|".join(re.escape(marker) for marker in sorted(marker_owners, key=len, reverse=True)) + r"(?!\d)"
    )
    leaks: list[dict[str, Any]] = []
    for call in own:
        foreign = sorted({m for m in markers.findall(call.returned_text()) if marker_owners[m] != call.user})
        if foreign:
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            leaks.append(
                {
                    "agent": call.agent,
                    "user": call.user,
                    "request id": call.request_id,
                    "foreign markers": ", ".join(foreign[:5]) + more,
                    "their users": ", ".join(sorted({marker_owners[m] for m in foreign})),
                }
            )
    if not leaks:
        return Verdict(
            name,
            True,
            "no user reads another user's markers",
            f"{plural(len(own), 'answer')}, none with another user's marker",
            message=f"No answer of {plural(len(own), 'answered call')} carried another user's marker{left_to}.",
            value=0,
        )
    return Verdict(
        name,
        False,
        "no user reads another user's markers",
        f"{len(leaks)} of {len(own)} answers carry another user's markers",
        plural(len(leaks), "answer"),
        f"{plural(len(leaks), 'answer')} of {len(own)} returned markers written by other users: the tool's state "
        f"is shared between users{rows_note(len(leaks))}{left_to}.",
        capped(leaks),
        value=len(leaks),
    )


def check_sessions_reaped(deleted: int, kept: int, *, allowed: int = 0) -> Verdict:
    """Fail when the server still keeps state for more than ``allowed`` sessions after ``deleted`` were ended.

    ``kept`` is what the server says it tracks after the sessions' DELETEs.
    No deleted session is inconclusive.
    """
    name = "MCP sessions reaped after DELETE"
    expected = f"at most {plural(allowed, 'session')} kept"
    if deleted <= 0:
        return Verdict(
            name,
            False,
            expected,
            "no session was deleted",
            message="Nothing judged: no session was deleted.",
            inconclusive=True,
        )
    held = kept <= allowed
    bound = f" (at most {allowed} allowed)" if allowed else ""
    message = f"The server keeps state for {plural(kept, 'session')} after {deleted} were deleted" + (
        f"{bound}." if held else f": {kept - allowed} never reaped{bound}."
    )
    return Verdict(
        name,
        held,
        expected,
        f"{plural(kept, 'session')} kept after {deleted} deleted",
        "" if held else plural(kept - allowed, "session"),
        message,
        value=kept,
    )


PROGRESS = "notifications/progress"


def check_progress(calls: Sequence[McpCall]) -> Verdict:
    """Fail when a call's stream carried progress for another request, or progress that went backwards.

    The tool sends each call's marker as its ``progressToken``; each
    ``notifications/progress`` on the call's stream must carry that token, and
    its ``progress`` must rise from one notification to the next. No progress
    notification at all is inconclusive (the tool reports none, or the server
    sends none).
    """
    name = "MCP progress is monotonic and scoped to its request"
    expected = "each call's progress carries its token and rises"
    judged = [(call, [n for n in call.notifications if n.method == PROGRESS]) for call in calls]
    judged = [(call, notes) for call, notes in judged if notes]
    if not judged:
        return Verdict(
            name,
            False,
            expected,
            "no progress notification",
            message=f"Nothing judged: none of {plural(len(calls), 'call')} got a progress notification.",
            inconclusive=True,
        )
    wrong: list[dict[str, Any]] = []
    for call, notes in judged:
        params = [n.params if isinstance(n.params, Mapping) else {} for n in notes]
        foreign = [p.get("progressToken") for p in params if p.get("progressToken") != call.marker]
        values = [p.get("progress") for p in params if p.get("progressToken") == call.marker]
        backwards = [
            f"{before} → {after}"
            for before, after in pairwise(values)
            if not (isinstance(before, int | float) and isinstance(after, int | float) and after > before)
        ]
        if foreign or backwards:
            wrong.append(
                {
                    "agent": call.agent,
                    "request id": call.request_id,
                    "its token": call.marker,
                    "other tokens": ", ".join(map(str, foreign[:3])),
                    "not rising": ", ".join(backwards[:3]),
                }
            )
    total = sum(len(notes) for _, notes in judged)
    if not wrong:
        return Verdict(
            name,
            True,
            expected,
            f"{plural(total, 'notification')} on {plural(len(judged), 'call')}, all in order",
            message=f"All {plural(total, 'progress notification')} on {plural(len(judged), 'call')} carried their "
            "own token and rose.",
            value=0,
        )
    return Verdict(
        name,
        False,
        expected,
        f"{len(wrong)} of {len(judged)} calls with progress out of scope or order",
        plural(len(wrong), "call"),
        f"{plural(len(wrong), 'call')} of {len(judged)} got progress for another request or progress that did not "
        f"rise{rows_note(len(wrong))}.",
        capped(wrong),
        value=len(wrong),
    )


def check_no_late_answers(calls: Sequence[McpCall]) -> Verdict:
    """Fail when a cancelled call got a response after its cancel: the server went on with a cancelled call.

    Judges the calls the tool cancelled and then listened to (``notifications/cancelled`` sent, the
    call's stream kept open a moment); a 2025-era server may end that stream with the cancellation
    error, which is no answer. No call judged is inconclusive (nothing was cancelled, or the stateless
    era over HTTP, where closing the stream is the cancel and nothing can arrive after it).
    """
    name = "Cancelled MCP calls get no late answer"
    expected = "no response after a call's cancel"
    judged = [call for call in calls if call.cancelled_ns is not None and call.late_watch]
    if not judged:
        return Verdict(
            name,
            False,
            expected,
            "no cancelled call listened to",
            message=f"Nothing judged: none of {plural(len(calls), 'call')} was cancelled and then listened to "
            "(set cancel_after; in the stateless era over HTTP the cancel closes the stream, so nothing can arrive).",
            inconclusive=True,
        )
    late = [call for call in judged if call.late_answer is not None]
    if not late:
        return Verdict(
            name,
            True,
            expected,
            f"{plural(len(judged), 'cancelled call')}, none answered after its cancel",
            message=f"None of {plural(len(judged), 'cancelled call')} was answered after its cancel.",
            value=0,
        )
    rows = [
        {
            "agent": call.agent,
            "session": call.session,
            "request id": call.request_id,
            "answered after the cancel": f"{((call.late_ns or 0) - (call.cancelled_ns or 0)) / 1e6:.0f} ms",
            "answer": _answer_text(call.late_answer),
        }
        for call in late
    ]
    return Verdict(
        name,
        False,
        expected,
        f"{len(late)} of {len(judged)} cancelled calls answered later",
        plural(len(late), "call"),
        f"{plural(len(late), 'cancelled call')} of {len(judged)} got a response after the cancel: the server went "
        f"on with calls it was told to stop{rows_note(len(late))}.",
        capped(rows),
        value=len(late),
    )


def _answer_text(message: Any) -> str:
    """What a late response said: its result's structured content or text, or its error, in at most 120 characters."""
    if not isinstance(message, Mapping):
        return repr(message)[:120]
    result = message.get("result")
    if isinstance(result, Mapping):
        return repr(result.get("structuredContent") or result.get("content"))[:120]
    return f"error {message.get('error')!r}"[:120]
