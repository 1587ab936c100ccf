"""Assertions on a permutation's outcomes, step by step, with messages that tell what the step really did."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import ConfigurationError
from .evidence import normalize_row, rows_shown
from .outcome import PermutationRun, TransactionState, WaitKind, row_text, rows_text

_SQLSTATE = re.compile(r"[0-9A-Z]{5}")


class OutcomeMismatch(AssertionError):
    """A step or a session did not do what the test expected."""

    ROBOT_SUPPRESS_NAME = True


def step_should_block(run: PermutationRun, step: str) -> None:
    outcome = run.outcome(step)
    if not outcome.blocked:
        raise OutcomeMismatch(f"Step {outcome.label} did not block: it {outcome.story()}.")


def step_should_not_block(run: PermutationRun, step: str) -> None:
    outcome = run.outcome(step)
    if outcome.blocked:
        raise OutcomeMismatch(f"Step {outcome.label} blocked: it {outcome.story()}.")


def step_should_succeed(run: PermutationRun, step: str, status: str | None = None) -> None:
    outcome = run.outcome(step)
    if not outcome.succeeded:
        raise OutcomeMismatch(f"Step {outcome.label} did not succeed: it {outcome.story()}.")
    if status is not None and " ".join(status.split()) != outcome.status:
        raise OutcomeMismatch(f"Step {outcome.label} succeeded with {outcome.status}, expected {status}.")


def step_should_fail_with(run: PermutationRun, step: str, sqlstate: str, message: str | None = None) -> None:
    code = sqlstate.strip().upper()
    if not _SQLSTATE.fullmatch(code):
        raise ConfigurationError(
            f"{sqlstate!r} is not a SQLSTATE: give the five-character code, e.g. 40001 (serialization failure), "
            "40P01 (deadlock), 55P03 (lock not available), 25P02 (transaction aborted)."
        )
    outcome = run.outcome(step)
    if outcome.sqlstate != code:
        raise OutcomeMismatch(f"Step {outcome.label} did not fail with {code}: it {outcome.story()}.")
    if message is not None and " ".join(message.split()) != " ".join((outcome.error or "").split()):
        raise OutcomeMismatch(
            f"Step {outcome.label} failed with {code} but the message was {outcome.error!r}, expected {message!r}."
        )


def step_should_send_notices(run: PermutationRun, step: str, messages: Sequence[str]) -> None:
    """The step's session received exactly these NOTICE/WARNING messages (primary text) while it ran, in order."""
    outcome = run.outcome(step)
    got = [notice.message for notice in outcome.notices if notice.severity != "NOTIFY"]
    want = [" ".join(message.split()) for message in messages]
    if [" ".join(message.split()) for message in got] != want:
        shown = "; ".join(f"{notice.severity} {notice.message}" for notice in outcome.notices) or "none"
        raise OutcomeMismatch(f"Step {outcome.label} sent the notices {shown}, expected {'; '.join(want) or 'none'}.")


def step_should_be_released_by(run: PermutationRun, step: str, releaser: str) -> None:
    """The step blocked and completed while ``releaser`` ran: that step let it go on."""
    outcome = run.outcome(step)
    run.outcome(releaser)
    if not outcome.finished or outcome.released_by is None:
        raise OutcomeMismatch(f"Step {outcome.label} was not released by another step: it {outcome.story()}.")
    if outcome.released_by != releaser:
        raise OutcomeMismatch(
            f"Step {outcome.label} was released by {outcome.released_by}, not by {releaser}: it {outcome.story()}."
        )


def step_should_return(run: PermutationRun, step: str, rows: Sequence[str]) -> None:
    outcome = run.outcome(step)
    expected = [normalize_row(row) for row in rows]
    if not outcome.succeeded:
        raise OutcomeMismatch(
            f"Step {outcome.label} returned no rows to compare with {rows_shown(expected)}: it {outcome.story()}."
        )
    actual = [row_text(row) for row in outcome.rows]
    if actual != expected:
        raise OutcomeMismatch(
            f"Step {outcome.label} returned {rows_text(outcome.rows)}, expected {rows_shown(expected)}."
        )


def session_should_commit(run: PermutationRun, session: str) -> None:
    transaction = run.transaction(session)
    if transaction.state is not TransactionState.COMMITTED:
        raise OutcomeMismatch(f"Session {session} did not commit: its transaction {transaction.summary()}.")


def session_should_roll_back(run: PermutationRun, session: str) -> None:
    transaction = run.transaction(session)
    if transaction.state is not TransactionState.ROLLED_BACK:
        raise OutcomeMismatch(f"Session {session} did not roll back: its transaction {transaction.summary()}.")


def step_should_wait_for_a_safe_snapshot(run: PermutationRun, step: str) -> None:
    """The step blocked waiting for a safe snapshot (a serializable READ ONLY DEFERRABLE transaction), not a lock."""
    outcome = run.outcome(step)
    if not outcome.blocked or outcome.waited_for is not WaitKind.SAFE_SNAPSHOT:
        raise OutcomeMismatch(f"Step {outcome.label} did not wait for a safe snapshot: it {outcome.story()}.")


def timeline_should_show(run: PermutationRun, entries: Sequence[str]) -> None:
    """The steps' timeline entries are exactly ``entries``, each ``step kind`` (``w2 blocked``), in order."""
    got = [f"{entry.step} {entry.kind.value}" for entry in run.timeline if entry.step]
    want = [" ".join(entry.split()) for entry in entries]
    if got != want:
        raise OutcomeMismatch(f"The timeline of {run} shows {', '.join(got)}; expected {', '.join(want)}.")
