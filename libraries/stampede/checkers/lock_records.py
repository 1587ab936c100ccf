"""Lock attempts as the lock tool recorded them, and the windows the lock checkers reason about.

Every time here comes from one monotonic clock in one process. Each event is
known only within its invoke→reply span, so each window is taken on its safe
side: it starts at the acquire's REPLY (the holder surely has the lock by then)
and ends at the release's INVOKE (the holder surely still acted on the lock
until then). See :mod:`stampede.checkers.mutual_exclusion` for the reasoning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..history import History
from ..units import format_duration


@dataclass(frozen=True, eq=False)
class LockAttempt:
    """One acquire → work → release by one agent (times in monotonic ns); each attempt is its own (by identity)."""

    agent: int
    user: str
    key: str
    lock: str
    token: str
    acquired: bool
    acquire_invoke: int
    acquire_reply: int
    fence: int | None = None
    lease_ns: int | None = None
    granted_try: int | None = None
    release_invoke: int | None = None
    release_answer: str | None = None
    stalled: bool = False
    read: dict[str, Any] | None = None
    write: dict[str, Any] | None = None

    @property
    def held(self) -> tuple[int, int]:
        """When the holder surely held the lock in its own eyes: acquire reply to release invoke."""
        end = self.release_invoke if self.release_invoke is not None else self.acquire_reply
        return self.acquire_reply, max(end, self.acquire_reply)

    @property
    def lease_end(self) -> int | None:
        """The earliest the lease can have run out: the granted try's invoke plus the lease."""
        if self.lease_ns is None:
            return None
        return (self.granted_try if self.granted_try is not None else self.acquire_invoke) + self.lease_ns

    @property
    def promised(self) -> tuple[int, int]:
        """When the lock itself surely kept it for this holder: :attr:`held`, cut at the earliest lease end."""
        start, end = self.held
        lease_end = self.lease_end
        return start, end if lease_end is None else max(start, min(end, lease_end))

    @property
    def surely_expired_at(self) -> int | None:
        """By when the lease had surely run out: the acquire reply (the latest possible grant) plus the lease."""
        return None if self.lease_ns is None else self.acquire_reply + self.lease_ns


def lock_attempts(history: History | Iterable[Any]) -> list[LockAttempt]:
    """The lock tool's attempts in ``history``; operations cut off before recording anything are left out."""
    attempts = []
    for op in history:
        written = op.written
        if not isinstance(written, dict) or "acquire" not in written or "key" not in written:
            continue
        release = written.get("release") or (None, None)
        attempts.append(
            LockAttempt(
                agent=op.agent,
                user=op.user,
                key=str(written["key"]),
                lock=str(written.get("lock", "")),
                token=str(written.get("token", "")),
                acquired=bool(written.get("acquired")),
                acquire_invoke=int(written["acquire"][0]),
                acquire_reply=int(written["acquire"][1]),
                fence=written.get("fence"),
                lease_ns=written.get("lease_ns"),
                granted_try=written.get("granted_try_ns"),
                release_invoke=release[0],
                release_answer=written.get("release_answer"),
                stalled=bool(written.get("stalled")),
                read=op.read if isinstance(op.read, dict) else None,
                write=written.get("write"),
            )
        )
    return attempts


class Clock:
    """Shows monotonic ns as milliseconds since the first acquire of a launch, so intervals read at a glance."""

    def __init__(self, attempts: Iterable[LockAttempt]) -> None:
        self.origin = min((attempt.acquire_invoke for attempt in attempts), default=0)

    def at(self, ns: int) -> str:
        return f"{(ns - self.origin) / 1e6:.1f} ms"

    def span(self, window: tuple[int, int]) -> str:
        start, end = window
        return f"{(start - self.origin) / 1e6:.1f}–{(end - self.origin) / 1e6:.1f} ms"


def lease_text(lease_ns: int | None) -> str:
    return "no lease" if lease_ns is None else f"{format_duration(lease_ns / 1e9)} lease"


def lock_names(attempts: Iterable[LockAttempt]) -> str:
    """``lock 'guard'``, or ``locks of 5 keys`` when a launch used several."""
    keys = sorted({attempt.key for attempt in attempts})
    return f"lock {keys[0]!r}" if len(keys) == 1 else f"locks of {len(keys)} keys"
