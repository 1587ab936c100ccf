"""Cross-user contamination: a message on one user's connection that carries another user's id or marker."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _foreign(message: ReceivedMessage, marker_owners: Mapping[str, str] | None) -> bool:
    if message.carries_other_user:
        return True
    if not message.carries_other_marker:
        return False
    # Another agent of the same user may send its own marker: that is no leak between users.
    return marker_owners is None or marker_owners.get(str(message.marker)) != message.user


def check_no_contamination(
    messages: Iterable[ReceivedMessage], *, marker_owners: Mapping[str, str] | None = None, left_out: int = 0
) -> Verdict:
    """Fail when a message received on a user's connection carries another user's id or another agent's marker.

    ``marker_owners`` (marker → user, as the tool keeps it) lets agents of one
    user share markers; without it every marker but the agent's own is foreign.
    ``left_out`` is how many messages the log dropped over its limit.
    """
    name = "no cross-user contamination"
    expected = "every message carries only the receiving user's id and marker"
    compared, connections, users, offending = 0, set(), set(), []
    for message in messages:
        if message.user_id is None and message.marker is None:
            continue
        compared += 1
        connections.add(message.stream)
        users.add(message.user)
        if _foreign(message, marker_owners):
            offending.append(message)
    unlogged = f"; {plural(left_out, 'message')} over the log's limit were not kept" if left_out else ""
    if not compared:
        return Verdict(
            name,
            True,
            expected,
            "no message with a user id or marker",
            message=f"Contamination not judged: no received message carried a user id or marker{unlogged}.",
            inconclusive=True,
        )
    if not offending:
        return Verdict(
            name,
            True,
            expected,
            f"0 of {compared} messages foreign",
            message=f"No cross-user contamination: {plural(compared, 'message')} on "
            f"{plural(len(connections), 'connection')} carried only their own user's id and "
            f"marker{unlogged}.",
            value=0.0,
        )
    received_from: dict[str, set[str]] = defaultdict(set)
    for message in offending:
        owner = str(message.user_id) if message.carries_other_user else (marker_owners or {}).get(str(message.marker))
        received_from[message.user].add(owner or f"marker {message.marker}")
    worst_user, senders = max(received_from.items(), key=lambda item: (len(item[1]), item[0]))
    shown = ", ".join(sorted(senders)[:5]) + (f" and {len(senders) - 5} more" if len(senders) > 5 else "")
    message_text = (
        f"Messages reached the wrong user: {len(offending)} of {plural(compared, 'message')} on "
        f"the connections of {len(received_from)} of {plural(len(users), 'user')} carried another user's id or "
        f"marker; {worst_user} received messages of {shown}{rows_note(len(offending))}{unlogged}."
    )
    rows = [{**m.describe(), "marker belongs to": (marker_owners or {}).get(str(m.marker), "")} for m in offending]
    return Verdict(
        name,
        False,
        expected,
        f"{len(offending)} of {compared} messages foreign",
        plural(len(offending), "foreign message"),
        message_text,
        capped(rows),
        value=float(len(offending)),
    )
