"""What each step of a permutation did, and how each session's transaction ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ..errors import ConfigurationError
from ..units import format_duration
from .spec import Session, Step

SQL_SHOWN = 70

Row = tuple[str | None, ...]
"""A row as PostgreSQL's text output gives it: each value's text, or None for NULL."""


def value_text(value: str | None) -> str:
    """A column value as a test plan writes it: ``NULL``, ``10``, ``abc``."""
    return "NULL" if value is None else value


def row_text(row: Sequence[str | None]) -> str:
    """A row as its values separated by commas: ``1, 10``."""
    return ", ".join(value_text(value) for value in row)


def rows_text(rows: Sequence[Row]) -> str:
    """``no rows``, ``1 row: 1, 10``, ``2 rows: 1, 10 | 2, 20``."""
    if not rows:
        return "no rows"
    return f"{len(rows)} row{'' if len(rows) == 1 else 's'}: " + " | ".join(row_text(row) for row in rows)


def short_sql(sql: str) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= SQL_SHOWN else flat[: SQL_SHOWN - 1] + "…"


def _ns_seconds(ns: int) -> str:
    return format_duration(ns / 1e9)


@dataclass(frozen=True)
class ResultSet:
    """What one statement of a step returned: its columns and rows (as text), and its command tag."""

    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    status: str
    returns_rows: bool = True
    """False for a command that returns no rows (``UPDATE 1``, ``COMMIT``): only its tag counts."""


@dataclass(frozen=True)
class Notice:
    """A NOTICE, WARNING (or NOTIFY) a session received while a step ran: ``text`` as libpq formats it."""

    severity: str
    message: str
    text: str


class WaitKind(StrEnum):
    """What a blocked step waited for."""

    LOCK = "lock"
    SAFE_SNAPSHOT = "safe snapshot"


@dataclass
class StepOutcome:
    """One step's result: rows and command tag, or an error with its SQLSTATE; whether it blocked; when.

    ``occurrence`` tells apart the runs of a step a permutation names more
    than once (``w1``, ``w1#2``). ``released_by`` is the step whose run let a
    blocked step complete (``None`` while it did not block, or when the end
    of the permutation did).
    """

    step: Step
    occurrence: str = ""
    finished_ns: int | None = None
    results: list[ResultSet] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    status: str | None = None
    sqlstate: str | None = None
    error: str | None = None
    blocked_by: tuple[str, ...] = ()
    waited_for: WaitKind = WaitKind.LOCK
    blocked_ns: int | None = None
    released_by: str | None = None
    cancelled: str | None = None

    @property
    def name(self) -> str:
        return self.occurrence or self.step.name

    @property
    def rows(self) -> tuple[Row, ...]:
        """The rows of the step's last statement that returned rows."""
        returning = [result for result in self.results if result.returns_rows]
        return returning[-1].rows if returning else ()

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_by)

    @property
    def finished(self) -> bool:
        return self.finished_ns is not None

    @property
    def succeeded(self) -> bool:
        return self.finished and self.error is None

    @property
    def label(self) -> str:
        """``w2 (T2: UPDATE test SET value = 12 WHERE id = 1)``."""
        return f"{self.name} ({self.step.session}: {short_sql(self.step.sql)})"

    @property
    def waited(self) -> str:
        """``waiting for T1`` / ``waiting for T1 and T3`` / ``waiting for a safe snapshot (T1)``."""
        if self.waited_for is WaitKind.SAFE_SNAPSHOT:
            return f"waiting for a safe snapshot ({' and '.join(self.blocked_by)})"
        return "waiting for " + " and ".join(self.blocked_by)

    def failure(self) -> str:
        """The error as ``40001: could not serialize access …`` (empty when the step did not fail)."""
        if self.error is None:
            return ""
        return f"{self.sqlstate}: {self.error}" if self.sqlstate else self.error

    def result(self) -> str:
        """What the step gave back: ``UPDATE 1``, ``1 row: 10``, ``ERROR 40001: could not serialize …``."""
        if self.error is not None:
            return f"ERROR {self.failure()}"
        if self.status is None or self.status.startswith("SELECT"):
            shown = rows_text(self.rows)
        else:
            shown = f"{self.status}: {rows_text(self.rows)}" if self.rows else self.status
        if self.notices:
            shown += " (" + "; ".join(f"{notice.severity} {notice.message}" for notice in self.notices) + ")"
        return shown

    def story(self) -> str:
        """What happened to the step, in a sentence a failure message can quote."""
        if self.cancelled is not None:
            how = f"blocked {self.waited} and never resumed" if self.blocked else "hung"
            return f"{how}: {self.cancelled}"
        outcome = f"failed with {self.failure()}" if self.error is not None else f"succeeded with {self.result()}"
        if not self.blocked or self.finished_ns is None or self.blocked_ns is None:
            return f"ran without blocking and {outcome}"
        released = f" (released by {self.released_by})" if self.released_by else ""
        waited = _ns_seconds(max(0, self.finished_ns - self.blocked_ns))
        return f"blocked {self.waited} for {waited}{released}, then {outcome}"


class TransactionState(StrEnum):
    """Where a session's latest transaction stands."""

    NONE = "no transaction"
    OPEN = "open"
    FAILED = "failed"
    COMMITTED = "committed"
    ROLLED_BACK = "rolled back"


@dataclass
class SessionTransaction:
    """A session's latest transaction: its state, and how it came to be."""

    session: Session
    state: TransactionState = TransactionState.OPEN
    note: str = ""
    failed_at: StepOutcome | None = None

    def after(self, outcome: StepOutcome, in_transaction: bool) -> None:
        """Update the state for a finished step; ``in_transaction`` is the connection's state after it."""
        if outcome.error is not None:
            if not in_transaction and self.state in (TransactionState.OPEN, TransactionState.FAILED):
                self.state = TransactionState.ROLLED_BACK
                self.note = f"{outcome.name} failed with {outcome.failure()}, which ended the transaction"
            elif in_transaction and self.state is not TransactionState.FAILED:
                self.state, self.failed_at = TransactionState.FAILED, outcome
                self.note = f"failed at {outcome.name} with {outcome.failure()}"
            return
        tag = (outcome.status or "").split(" ")[0]
        if tag == "COMMIT":
            self.state, self.note = TransactionState.COMMITTED, f"at {outcome.name}"
        elif tag == "ROLLBACK":
            self.state = TransactionState.ROLLED_BACK
            if outcome.step.sql.split()[0].upper() in ("ROLLBACK", "ABORT"):
                self.note = f"at {outcome.name}"
            else:
                self.note = f"{outcome.name} ({short_sql(outcome.step.sql)}) answered ROLLBACK"
            if self.failed_at is not None:
                self.note += f": the transaction had failed at {self.failed_at.name} ({self.failed_at.failure()})"
        elif tag in ("BEGIN", "START"):
            self.state, self.note, self.failed_at = TransactionState.OPEN, "", None

    def begun(self, in_transaction: bool) -> None:
        """The session's setup ran: its transaction is open if the setup (or Stampede's BEGIN) began one."""
        self.state = TransactionState.OPEN if in_transaction else TransactionState.NONE

    def ended_by_stampede(self) -> None:
        """The permutation ended with this transaction still open, or failed: Stampede rolled it back."""
        if self.state is TransactionState.FAILED:
            self.note += "; Stampede rolled it back at the end"
        else:
            self.note = "left open by the permutation; Stampede rolled it back at the end"
        self.state = TransactionState.ROLLED_BACK

    def summary(self) -> str:
        return f"{self.state.value} ({self.note})" if self.note else self.state.value


class EntryKind(StrEnum):
    """What a timeline entry says happened."""

    BLOCKED = "blocked"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    OUTPUT = "output"
    ROLLED_BACK = "rolled back"


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline: something that happened on ``session``, in the order it was seen.

    ``kind`` says what: a step blocked, resumed, completed, failed, was
    cancelled; a setup or teardown gave rows (``output``); Stampede rolled
    back what the permutation left open. ``notices`` arrived just before it.
    ``after_wait``: the step had been shown blocked (or held by an annotation).
    """

    session: str
    step: str
    text: str
    kind: EntryKind
    outcome: StepOutcome | None = None
    notices: tuple[Notice, ...] = ()
    results: tuple[ResultSet, ...] = ()
    after_wait: bool = False


@dataclass
class PermutationRun:
    """One permutation run against a real server: every step's outcome and the timeline they happened in."""

    sessions: dict[str, Session]
    permutation: tuple[str, ...]
    outcomes: dict[str, StepOutcome]
    timeline: list[TimelineEntry]
    transactions: dict[str, SessionTransaction]
    server_version: str
    seconds: float = 0.0

    @property
    def label(self) -> str:
        return " ".join(self.permutation)

    def outcome(self, step: str) -> StepOutcome:
        try:
            return self.outcomes[step]
        except KeyError:
            raise ConfigurationError(
                f"Step {step!r} did not run in permutation {self.label!r}: name one of its steps "
                f"({', '.join(self.outcomes)}; a step run again is named with #2, #3)."
            ) from None

    def transaction(self, session: str) -> SessionTransaction:
        try:
            return self.transactions[session]
        except KeyError:
            raise ConfigurationError(
                f"Session {session!r} is not part of permutation {self.label!r} (sessions: {', '.join(self.sessions)})."
            ) from None

    def __str__(self) -> str:
        return f"permutation {self.label!r}"
