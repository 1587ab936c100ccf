"""Lock attempts as the lock tool recorded them, and the windows the lock checkers reason about.

Every time here comes from one monotonic clock in one process. Each event is
known only within its invoke→reply span, so each window is taken on its safe
side: it starts at the acquire's REPLY (the holder surely has the lock by then)
and ends at the release's INVOKE (the holder surely still acted on the lock
until then). See :mod:`stampede.checkers.mutual_exclusion` for the reasoning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ..history import History
from ..units import format_duration
from ..verdicts import Verdict
from ._report import capped, plural

RAISED = "raised"
NOT_OWNED = "not owned"
ERRORS_ALLOWED = "errors_allowed=True"


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
    acquire_error: str | None = None
    release_error: str | None = None
    clock_error_ns: int = 0
    """ε of the operation's clock on the launch's timeline (a worker's): its times are within ± this."""

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
                acquire_error=written.get("acquire_error"),
                release_error=written.get("release_error"),
                clock_error_ns=getattr(op, "clock_error_ns", 0),
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


@dataclass(frozen=True)
class LockErrors:
    """The attempts whose acquire or release raised, out of all attempts and all releases."""

    attempts: list[LockAttempt]
    acquires: list[LockAttempt]
    releases: list[LockAttempt]

    def __bool__(self) -> bool:
        return bool(self.acquires or self.releases)

    @property
    def release_count(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.release_answer is not None)

    def text(self) -> str:
        """``70 of 80 acquires raised ConnectionError: … (70×); 23 of 24 releases raised …``."""
        parts = []
        if self.acquires:
            parts.append(
                f"{len(self.acquires)} of {plural(len(self.attempts), 'acquire')} raised "
                f"{_errors_seen(a.acquire_error for a in self.acquires)}"
            )
        if self.releases:
            parts.append(
                f"{len(self.releases)} of {plural(self.release_count, 'release')} raised "
                f"{_errors_seen(a.release_error for a in self.releases)}"
            )
        return "; ".join(parts)

    def rows(self) -> list[dict[str, Any]]:
        return capped(
            [
                {
                    "agent": attempt.agent,
                    "step": "acquire" if attempt.acquire_error else "release",
                    "raised": attempt.acquire_error or attempt.release_error,
                }
                for attempt in sorted({*self.acquires, *self.releases}, key=lambda a: a.acquire_invoke)
            ]
        )


def lock_errors(attempts: list[LockAttempt]) -> LockErrors:
    return LockErrors(
        attempts,
        [attempt for attempt in attempts if attempt.acquire_error is not None],
        [attempt for attempt in attempts if attempt.release_answer == RAISED],
    )


def _errors_seen(texts: Iterable[str | None]) -> str:
    counts = Counter(text or "an exception" for text in texts)
    shown = [f"'{text}' ({count}×)" for text, count in counts.most_common(3)]
    more = f" and {plural(len(counts) - 3, 'other error')}" if len(counts) > 3 else ""
    return ", ".join(shown) + more


def account_for_errors(verdict: Verdict, attempts: list[LockAttempt], errors_allowed: bool) -> Verdict:
    """``verdict``, failed when lock attempts raised (naming them) unless the test allows errors explicitly.

    A check judges only the attempts that did not raise; without this, 70
    acquires that raised would leave an overlap check passing on the 10 that
    remained. With ``errors_allowed`` the verdict stands, and says what it left out.
    """
    errors = lock_errors(attempts)
    if not errors:
        return verdict
    if errors_allowed:
        return replace(
            verdict, message=f"{verdict.message} Not judged, as errors are allowed: {errors.text()}.".lstrip()
        )
    return Verdict(
        verdict.name,
        False,
        verdict.expected,
        verdict.measured,
        plural(len(errors.acquires) + len(errors.releases), "lock call") + " raised",
        f"Lock attempts raised: {errors.text()}. The check judges only what did not raise, so these are a "
        f"failure: fix the lock or its adapter, or allow them with {ERRORS_ALLOWED}. On the rest: "
        f"{verdict.message}",
        errors.rows(),
        value=verdict.value,
    )


def undeclared_lease(attempts: Iterable[LockAttempt]) -> str:
    """Why releases answered "not owned" though no lease was declared, else ``''``."""
    lost = sum(1 for attempt in attempts if attempt.lease_ns is None and attempt.release_answer == NOT_OWNED)
    if not lost:
        return ""
    return (
        f'The lock has a lease Stampede was not told of: {plural(lost, "release")} answered "not owned" though the '
        "tool declares no lease, so a hold the lock ended on its own counts as held until its release, and the "
        "next holder as let in while it was. Declare the lock's lease with Define Lock Tool lease=…."
    )


def with_lease_warning(verdict: Verdict, attempts: list[LockAttempt]) -> Verdict:
    """A failed ``verdict`` led by :func:`undeclared_lease`'s warning, which may be its real cause."""
    warning = undeclared_lease(attempts)
    if not warning or verdict.passed:
        return verdict
    return replace(verdict, message=f"{warning} Judged without it: {verdict.message}")
