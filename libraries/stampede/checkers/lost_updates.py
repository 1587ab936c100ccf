"""Lost updates: two successful writers that read the same version of the same thing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..history import History, Operation
from ..verdicts import Verdict
from ._report import agent_list, capped, plural, rows_note


def check_lost_updates(history: History, *, subject: str = "account", version: str = "balance") -> Verdict:
    """Count successful operations that built on a version another successful one also read.

    Each operation records what it read, e.g. ``read={"account": 1, "balance": 1000}``.
    When k successful operations read the same ``version`` of the same ``subject``,
    at most one of their writes survived: k - 1 updates were lost. The version must
    never come back for a subject (a version column, or a balance that only goes
    down), or a legitimate re-read would be counted.

    Operations whose ``read`` lacks either key cannot be checked and are left out.
    When none can be checked the verdict is inconclusive (not passed).
    """
    successful = history.successful()
    groups: dict[tuple[Any, Any], list[Operation]] = {}
    for op in successful:
        read = op.read
        if isinstance(read, Mapping) and subject in read and version in read:
            groups.setdefault((read[subject], read[version]), []).append(op)
    checkable = sum(len(ops) for ops in groups.values())
    if not checkable:
        return Verdict(
            "lost updates",
            True,
            "0 lost updates",
            "0 of 0 checkable operations",
            message=(
                f"Nothing to check for lost updates: no successful operation recorded which {subject} and "
                f"which {version} it read ({plural(len(successful), 'successful operation')} in all), so lost "
                "updates can be neither confirmed nor ruled out."
            ),
            inconclusive=True,
            value=0,
        )
    collisions = sorted(
        ((key, ops) for key, ops in groups.items() if len(ops) > 1), key=lambda item: len(item[1]), reverse=True
    )
    lost = sum(len(ops) - 1 for _, ops in collisions)
    measured = plural(lost, "lost update")
    if not lost:
        return Verdict(
            "lost updates",
            True,
            "0 lost updates",
            measured,
            message=(
                f"No lost updates: expected 0, found 0 among {plural(checkable, 'successful operation')} "
                f"that recorded what they read; no two read the same {version} of the same {subject}."
            ),
            value=0,
        )
    details = [
        {
            subject: key[0],
            f"{version} read": key[1],
            "writers": len(ops),
            "lost updates": len(ops) - 1,
            "agents": agent_list(op.agent for op in ops),
        }
        for key, ops in collisions
    ]
    message = (
        f"Lost updates: expected 0, found {lost}. {plural(len(collisions), 'time', 'times')} two or more agents "
        f"read the same {version} of the same {subject} and all of them wrote successfully, so each write "
        f"overwrote another: {lost} of {checkable} successful updates were lost{rows_note(len(details))}."
    )
    return Verdict("lost updates", False, "0 lost updates", measured, measured, message, capped(details), value=lost)
