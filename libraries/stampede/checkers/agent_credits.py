"""Agent credits: each user's balance is what the session started with, minus the cost of every completed run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping

from ..records.websocket import ReceivedMessage
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


def completed_runs(messages: Iterable[ReceivedMessage], done_events: Iterable[str]) -> Counter[str]:
    """Runs per user whose done event reached that user's own agent (leaked events do not count)."""
    done = set(done_events)
    runs: Counter[str] = Counter()
    for message in messages:
        if message.mine and message.type in done:
            runs[message.user] += 1
    return runs


def starting_credits(messages: Iterable[ReceivedMessage], ready_event: str, field: str = "credits") -> dict[str, int]:
    """Each user's credits as the service reported them when the user's session started (its first one)."""
    credits: dict[str, int] = {}
    for message in messages:
        user = message.user
        if message.type != ready_event or message.user_id != user or user in credits:
            continue
        try:
            value = json.loads(message.raw).get(field)
        except (ValueError, AttributeError):
            continue
        if isinstance(value, int):
            credits[user] = value
    return credits


def check_agent_credits(
    balances: Mapping[str, int],
    runs: Mapping[str, int],
    *,
    starting: Mapping[str, int],
    cost: int,
    left_out: int = 0,
) -> Verdict:
    """Every user's balance must be its starting credits minus ``cost`` per completed run; more left: lost updates."""
    name = "agent credits add up"
    expected_text = f"each user's balance = credits at session start - {cost} × completed runs"
    if left_out:
        message = (
            f"Agent credits not judged: {left_out} received messages were left out of the log, so the "
            "completed runs cannot be counted; raise the tool's max_messages."
        )
        return Verdict(name, False, expected_text, "runs not countable", message=message, inconclusive=True)
    if not runs:
        message = "Agent credits not judged: no run completed, so no deduction can be checked."
        return Verdict(name, False, expected_text, "no completed run", message=message, inconclusive=True)
    unknown = sorted(set(runs) - set(starting))
    if unknown:
        message = (
            f"Agent credits not judged: the service did not report the starting credits of "
            f"{plural(len(unknown), 'user')} ({', '.join(unknown[:5])}) when their sessions started."
        )
        return Verdict(name, False, expected_text, "starting credits unknown", message=message, inconclusive=True)
    rows = []
    for user in sorted(runs):
        expected = starting[user] - cost * runs[user]
        found = balances.get(user)
        if found != expected:
            rows.append(
                {
                    "user": user,
                    "completed runs": runs[user],
                    "expected balance": expected,
                    "balance": found,
                    "difference": None if found is None else found - expected,
                }
            )
    users = len(runs)
    total = sum(runs.values())
    if not rows:
        return Verdict(
            name,
            True,
            expected_text,
            f"{users} of {users} users right",
            value=0.0,
            message=f"Agent credits add up: {plural(users, 'user')}, {plural(total, 'completed run')}, "
            f"every balance its starting credits minus {cost} per run.",
        )
    lost = sum(difference for row in rows if isinstance(difference := row["difference"], int) and difference > 0)
    first = rows[0]
    message = (
        f"Agent credits do not add up: {len(rows)} of {plural(users, 'user')} hold other balances than "
        f"their {plural(total, 'completed run')} leave; {lost} credits were never deducted (lost updates on "
        f"concurrent runs). First: {first['user']} ran {first['completed runs']} and holds "
        f"{first['balance']}, expected {first['expected balance']}{rows_note(len(rows))}."
    )
    return Verdict(
        name,
        False,
        expected_text,
        f"{len(rows)} of {users} users wrong",
        f"{lost} credits not deducted",
        message,
        capped(rows),
        value=float(len(rows)),
    )
