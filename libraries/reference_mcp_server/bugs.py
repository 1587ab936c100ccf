"""Seeded bugs of the reference MCP server: one switch per check, all off by default."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Bug(StrEnum):
    """A seeded defect the server can be started with (``--bugs lost_update,crossed_replies``)."""

    LOST_UPDATE = "lost_update"
    CROSSED_REPLIES = "crossed_replies"
    BLOCKING_SLEEP = "blocking_sleep"
    IGNORE_CANCEL = "ignore_cancel"
    NEVER_REAP = "never_reap"
    SESSION_KEYED_NOTES = "session_keyed_notes"

    @property
    def description(self) -> str:
        """What the defect does, in a sentence a reader of a report understands."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Bug.LOST_UPDATE: "deduct reads the balance, pauses, then writes balance - amount (no lock), so concurrent "
    "calls of one user overwrite each other's deduction",
    Bug.CROSSED_REPLIES: "tool results wait in one map keyed by the JSON-RPC id alone, so two sessions using the "
    "same id at once can each get the other's result",
    Bug.BLOCKING_SLEEP: "the sleep tool calls time.sleep, blocking the event loop, so concurrent calls run one "
    "after another",
    Bug.IGNORE_CANCEL: "notifications/cancelled is dropped before the SDK sees it and the sleep tool's work is "
    "shielded from a closed stream, so a cancelled call still charges (and, in the session era, is answered late)",
    Bug.NEVER_REAP: "a session's state (a 256 KiB buffer) is kept after its DELETE",
    Bug.SESSION_KEYED_NOTES: "notes are kept under the Mcp-Session-Id header instead of the user, so in the "
    "stateless era, which sends no such header, every user shares one list of notes",
}


def parse_bugs(value: str | Iterable[str] | None) -> frozenset[Bug]:
    """The bugs named in ``value`` (comma-separated, ``none`` for none); ValueError naming the known ones."""
    names = value.split(",") if isinstance(value, str) else list(value or ())
    bugs = set()
    for raw in names:
        name = raw.strip().lower().replace("-", "_")
        if name in ("", "none"):
            continue
        try:
            bugs.add(Bug(name))
        except ValueError:
            raise ValueError(
                f"Unknown bug {raw.strip()!r}: the server knows {', '.join(b.value for b in Bug)}"
            ) from None
    return frozenset(bugs)
