"""What one HTTP agent operation reports: the run's progress as it is followed, its timings and its OpResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..agents import AgentContext, OpResult
from ..outcomes import Outcome
from ..records.threads import HttpFailure, RunAttempt, RunStatus

_OUTCOMES = {
    RunStatus.SUCCESS: (Outcome.OK, None),
    RunStatus.INTERRUPTED: (Outcome.CONFLICT, "interrupted"),
    RunStatus.ROLLED_BACK: (Outcome.CONFLICT, "rolled_back"),
    RunStatus.FAILED: (Outcome.ERROR, "run_failed"),
}
_FAILURE_OUTCOMES = {HttpFailure.REFUSED: Outcome.CONFLICT, HttpFailure.TIMEOUT: Outcome.TIMEOUT}
_HOPELESS = (HttpFailure.UNAUTHORIZED, HttpFailure.BAD_EVENT)
"""Failures of a configuration that cannot work: the agent stops trying."""


@dataclass
class RunProgress:
    """One run as it is followed: its attempt, its leg (resumes + 1), its last event id, what it saw."""

    attempt: RunAttempt
    agent: AgentContext
    values: dict[str, Any] = field(default_factory=dict)
    leg: int = 1
    last_id: str | None = None
    events: int = 0
    foreign: int = 0
    types: list[str] = field(default_factory=list)
    cut_ns: int | None = None
    resume_ns: int = 0
    """Time from each cut to the first event after it, summed."""
    cancel: int | str | None = None
    """What the service answered the cancel request (its status, or why there was none)."""


def timings(progress: RunProgress, *, streamed: bool) -> dict[str, int]:
    """The operation's ``first_event``, ``started``, ``run`` and ``resume`` times (ns), those it has."""
    attempt, found = progress.attempt, {}
    for phase, at in (("first_event", attempt.first_event_ns), ("started", attempt.started_ns)):
        if at is not None and streamed:
            found[phase] = at - attempt.request_ns
    if attempt.end_ns is not None and not attempt.refused:
        found["run"] = attempt.end_ns - attempt.request_ns
    if progress.resume_ns:
        found["resume"] = progress.resume_ns
    return found


def op_result(progress: RunProgress, timed: dict[str, int]) -> OpResult:
    """The operation's outcome (from its failure, else from how its run ended), ``read`` and ``written``."""
    attempt = progress.attempt
    if attempt.failure is not None:
        outcome = _FAILURE_OUTCOMES.get(attempt.failure, Outcome.ERROR)
        error: str | None = attempt.failure.value
        if attempt.failure in _HOPELESS:
            progress.agent.finished = True
    else:
        assert attempt.outcome is not None, "a run without failure has ended"
        outcome, error = _OUTCOMES.get(attempt.outcome) or (Outcome.ERROR, attempt.outcome.value)
    read = {
        "run_id": attempt.run_id,
        "status": attempt.status,
        "events": progress.events,
        "types": progress.types,
        "messages": len(attempt.messages),
        "outcome": attempt.outcome.value if attempt.outcome else None,
        "foreign": progress.foreign,
        "legs": progress.leg,
    }
    if attempt.detail is not None:
        read["detail"] = attempt.detail
    if progress.cancel is not None:
        read["cancel"] = progress.cancel
    written = {"marker": attempt.marker, "thread": attempt.thread, "policy": attempt.policy.value}
    return OpResult(outcome, error=error, read=read, written=written, timings=timed or None)
