"""Fencing and the data a lock protects, judged from what the shared resource answered.

A lease lock cannot stop a holder that paused past its lease from coming back
and writing: only the resource can (Kleppmann, "How to do distributed
locking", 2016). Each access the lock tool made to the resource
(:mod:`stampede.locks.resource`) is recorded with its fencing number, the
highest number the resource had seen before it, whether it was accepted, and,
for an accepted write, the order in which the resource applied it. So, from
the history alone:

- an access is *stale* when its number is below the highest one the resource
  had already seen: a newer holder got the lock in the meantime;
- fencing holds when no stale access was accepted, no current one refused, and
  the numbers of accepted writes only rose in the order they were applied;
- the protected data is right when the counter equals the number of writes it
  accepted: every holder read, added one and wrote back, so a write made while
  another holder worked on the same counter loses an increment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..history import History
from ..records.snapshots import ResourceState
from ..verdicts import Verdict
from ._report import agent_list, capped, plural, rows_note
from .lock_records import Clock, LockAttempt, account_for_errors, lock_attempts, lock_names


@dataclass(frozen=True)
class FencedAccess:
    """One read or write of the resource that carried a fencing number."""

    attempt: LockAttempt
    kind: str
    fence: int
    accepted: bool
    highest_before: int | None
    serial: int | None
    value: int | None
    invoke_ns: int

    @property
    def stale(self) -> bool:
        return self.highest_before is not None and self.fence < self.highest_before


def fenced_accesses(attempts: list[LockAttempt]) -> list[FencedAccess]:
    found = []
    for attempt in attempts:
        for kind, access in (("read", attempt.read), ("write", attempt.write)):
            if access is None or access.get("fence") is None:
                continue
            found.append(
                FencedAccess(
                    attempt,
                    kind,
                    int(access["fence"]),
                    bool(access["accepted"]),
                    access.get("highest_before"),
                    access.get("serial"),
                    access.get("value"),
                    int(access["at"][0]),
                )
            )
    return found


def check_fencing(history: History, fencing: bool, *, errors_allowed: bool = False) -> Verdict:
    """Fencing numbers seen by the resource only rose: every stale access refused, every current one taken."""
    attempts = lock_attempts(history)
    return account_for_errors(_judge_fencing(attempts, fencing), attempts, errors_allowed)


def _judge_fencing(attempts: list[LockAttempt], fencing: bool) -> Verdict:
    accesses = fenced_accesses(attempts)
    name, expected = "fencing holds", "stale fencing numbers refused; accepted writes' numbers only rise"
    if not accesses:
        lock = attempts[0].lock if attempts else "the"
        return Verdict(
            name,
            True,
            expected,
            "no fencing numbers",
            message=f"Fencing not judged: the {lock} lock issued no fencing numbers, so the resource had "
            "none to check. Use a lock that issues them (stampede redis, advisory session, "
            "advisory transaction, for update).",
            inconclusive=True,
            value=0.0,
        )
    stale = [access for access in accesses if access.stale]
    taken_stale = [access for access in stale if access.accepted]
    refused_current = [access for access in accesses if not access.accepted and not access.stale]
    backwards = _backward_steps(accesses)
    writes = [access for access in accesses if access.kind == "write" and access.accepted]
    clock = Clock(attempts)
    if taken_stale or refused_current or backwards:
        parts = []
        if taken_stale:
            first = taken_stale[0]
            parts.append(
                f"{plural(len(taken_stale), 'stale access', 'stale accesses')} accepted: a fencing number "
                f"below the highest the resource had seen (first: agent {first.attempt.agent}'s {first.kind} "
                f"with fence {first.fence} at {clock.at(first.invoke_ns)}, after the resource had seen "
                f"{first.highest_before})"
            )
        if backwards:
            parts.append(
                f"the numbers of accepted writes went backwards {plural(len(backwards), 'time')} in the "
                "order the resource applied them"
            )
        if refused_current:
            parts.append(
                f"{plural(len(refused_current), 'current access', 'current accesses')} refused (agents "
                f"{agent_list(a.attempt.agent for a in refused_current)})"
            )
        off = " Fencing is off: the resource takes every write." if not fencing else ""
        rows = [
            _row(access, clock)
            for access in sorted({*taken_stale, *refused_current}, key=lambda access: access.invoke_ns)
        ]
        message = f"Fencing did not hold: {'; '.join(parts)}{rows_note(len(rows))}.{off}"
        return Verdict(
            name,
            False,
            expected,
            f"{len(taken_stale)} stale accepted",
            plural(len(taken_stale) + len(refused_current), "access", "accesses"),
            message,
            capped(rows),
            value=float(len(taken_stale)),
        )
    refused = [access for access in stale if not access.accepted]
    fences = [access.fence for access in writes]
    rose = f"from {min(fences)} to {max(fences)}" if fences else "(no write accepted)"
    if refused:
        by_kind = ", ".join(
            f"{sum(1 for a in refused if a.kind == kind)} at their {kind}"
            for kind in ("read", "write")
            if any(a.kind == kind for a in refused)
        )
        refusals = (
            f"the resource refused {plural(len({a.attempt for a in refused}), 'holder')} that came back with "
            f"a stale number ({by_kind})"
        )
    else:
        refusals = "no holder came back with a stale number, so none needed refusing"
    message = (
        f"Fencing held: the fencing numbers of {plural(len(writes), 'accepted write')} to "
        f"the resource of {lock_names(attempts)} only rose, {rose}; {refusals}."
    )
    return Verdict(
        name,
        True,
        expected,
        f"0 stale accepted, {len(refused)} refused",
        message=message,
        details=capped([_row(access, clock) for access in refused]),
        value=0.0,
    )


def _backward_steps(accesses: list[FencedAccess]) -> list[tuple[FencedAccess, FencedAccess]]:
    by_key: dict[str, list[FencedAccess]] = defaultdict(list)
    for access in accesses:
        if access.kind == "write" and access.accepted and access.serial is not None:
            by_key[access.attempt.key].append(access)
    steps: list[tuple[FencedAccess, FencedAccess]] = []
    for writes in by_key.values():
        writes.sort(key=lambda access: access.serial or 0)
        steps.extend((before, after) for before, after in pairwise(writes) if after.fence < before.fence)
    return steps


def _row(access: FencedAccess, clock: Clock) -> dict[str, Any]:
    return {
        "agent": access.attempt.agent,
        "access": access.kind,
        "at": clock.at(access.invoke_ns),
        "fence": access.fence,
        "highest seen before": access.highest_before,
        "answer": "accepted" if access.accepted else "refused",
        "release answered": access.attempt.release_answer,
    }


def check_protected_data(
    history: History, states: Mapping[str, ResourceState], *, errors_allowed: bool = False
) -> Verdict:
    """The resource's counter equals the writes it accepted: no increment lost to two holders at once."""
    attempts = lock_attempts(history)
    return account_for_errors(_judge_protected_data(attempts, states), attempts, errors_allowed)


def _judge_protected_data(attempts: list[LockAttempt], states: Mapping[str, ResourceState]) -> Verdict:
    name, expected = "protected data stays right", "counter = accepted writes"
    accepted = sum(state.writes for state in states.values())
    if not accepted:
        return Verdict(
            name,
            True,
            expected,
            "0 writes",
            message="Nothing to judge: the resource accepted no write.",
            inconclusive=True,
            value=0.0,
        )
    value = sum(state.value for state in states.values())
    lost = accepted - value
    refused = sum(1 for attempt in attempts if attempt.write is not None and not attempt.write.get("accepted"))
    refused_note = f"; {plural(refused, 'stale write')} refused" if refused else ""
    if lost == 0:
        return Verdict(
            name,
            True,
            expected,
            f"counter {value}, {accepted} writes",
            message=f"The protected data is right: the counter guarded by {lock_names(attempts)} stands at "
            f"{value} after {plural(accepted, 'accepted write')}{refused_note}.",
            value=0.0,
        )
    clock = Clock(attempts)
    overwriting = _overwriting_writes(attempts)
    rows = [
        {
            "agent": attempt.agent,
            "fence": attempt.fence,
            "read": _value_read(attempt),
            "wrote": attempt.write["value"],
            "as write no.": attempt.write.get("serial"),
            "increments overwritten": missed,
            "at": clock.at(attempt.write["at"][0]),
            "stalled": "yes" if attempt.stalled else "",
            "release answered": attempt.release_answer,
        }
        for attempt, missed in overwriting
        if attempt.write is not None
    ]
    example = ""
    if overwriting:
        first, missed = overwriting[0]
        example = (
            f"; e.g. agent {first.agent} read {_value_read(first)} and wrote it "
            f"back plus one over {plural(missed, 'increment')} made while it worked"
        )
    message = (
        f"Protected data went wrong: the counter guarded by {lock_names(attempts)} stands at {value} after "
        f"{plural(accepted, 'accepted write')}: {plural(lost, 'increment')} lost to holders working at "
        f"once{example}{refused_note}{rows_note(len(rows))}."
    )
    return Verdict(
        name,
        False,
        expected,
        f"counter {value}, {accepted} writes",
        plural(lost, "lost increment"),
        message,
        capped(rows),
        value=float(lost),
    )


def _overwriting_writes(attempts: list[LockAttempt]) -> list[tuple[LockAttempt, int]]:
    """Accepted writes that overwrote increments, each with how many: in the order the resource applied them.

    Each holder writes back the value it read plus one, so a write that does not
    add one to the write before it read before that write landed, and wiped it out.
    """
    by_key: dict[str, list[LockAttempt]] = defaultdict(list)
    for attempt in attempts:
        if attempt.write is not None and attempt.write.get("accepted") and attempt.write.get("serial") is not None:
            by_key[attempt.key].append(attempt)
    found = []
    for writes in by_key.values():
        counter = 0
        for attempt in sorted(writes, key=lambda attempt: attempt.write["serial"] if attempt.write else 0):
            assert attempt.write is not None
            value = int(attempt.write["value"])
            if value != counter + 1:
                found.append((attempt, counter + 1 - value))
            counter = value
    return found


def _value_read(attempt: LockAttempt) -> int | None:
    return attempt.read.get("value") if attempt.read else None
