"""Duplicate ids: a run id or session id the service handed out to more than one run or session."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def _owners(messages: list[ReceivedMessage]) -> dict[tuple[str, Any], set[tuple[Any, ...]]]:
    """(kind, id) → who used it: a run id by (agent, request), a session id by (agent, session)."""
    owners: dict[tuple[str, Any], set[tuple[Any, ...]]] = defaultdict(set)
    for message in messages:
        if not message.mine:
            continue  # a message leaked to another user is contamination, not a second owner
        if message.run_id is not None:
            owners[("run id", str(message.run_id))].add((message.agent, message.user, message.request))
        if message.session_id is not None:
            owners[("session id", str(message.session_id))].add((message.agent, message.user, message.connection))
    return owners


def check_unique_ids(messages: Iterable[ReceivedMessage], *, left_out: int = 0) -> Verdict:
    """Fail when one run id came back for two runs (two users, or two requests) or one session id for two sessions.

    A run is told apart by its agent and request id (when the protocol has
    one), a session by its agent and connection number; a resumed session
    keeps its id.
    """
    owners = _owners(list(messages))
    name = "ids unique"
    expected = "every run id and session id used once"
    counts = {kind: sum(1 for (k, _) in owners if k == kind) for kind in ("run id", "session id")}
    seen = " and ".join(plural(count, kind) for kind, count in counts.items() if count)
    unlogged = f"; {plural(left_out, 'message')} over the log's limit were not kept" if left_out else ""
    if not owners:
        return Verdict(
            name,
            True,
            expected,
            "no ids",
            message=f"Ids not judged: no received message carried a run id or session id{unlogged}.",
            inconclusive=True,
        )
    shared = sorted(
        ((kind, value, users) for (kind, value), users in owners.items() if len(users) > 1),
        key=lambda item: (-len(item[2]), item[0], item[1]),
    )
    if not shared:
        return Verdict(
            name,
            True,
            expected,
            f"0 of {seen} shared",
            message=f"Ids were unique: {seen}, each used by one run or session{unlogged}.",
            value=0.0,
        )
    rows = [
        {
            "id": value,
            "kind": kind,
            "used by": plural(len(users), "run" if kind == "run id" else "session"),
            "users": ", ".join(sorted({str(user) for _, user, _ in users})[:10]),
            "agents": ", ".join(str(agent) for agent in sorted({agent for agent, _, _ in users})[:10]),
        }
        for kind, value, users in shared
    ]
    kind, value, users = shared[0]
    distinct_users = sorted({str(user) for _, user, _ in users})
    worst = (
        f"{kind} {value!r} came back for {plural(len(users), 'run' if kind == 'run id' else 'session')} of "
        f"{plural(len(distinct_users), 'user')} ({', '.join(distinct_users[:5])}"
        f"{' and more' if len(distinct_users) > 5 else ''})"
    )
    shared_of = " and ".join(
        f"{sum(1 for k, _, _ in shared if k == kind)} of {plural(count, kind)}"
        for kind, count in counts.items()
        if count
    )
    return Verdict(
        name,
        False,
        expected,
        f"{shared_of} shared",
        plural(len(shared), "shared id"),
        f"Ids were not unique: {shared_of} were shared; {worst}{rows_note(len(rows))}{unlogged}.",
        capped(rows),
        value=float(len(shared)),
    )
