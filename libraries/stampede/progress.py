"""Live figures of a running launch, for a progress display: agents, operations, rate, errors.

Read from another thread while the launch runs on the engine loop: only counters
and appended operations are read, each new operation counted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .launcher import RunningLaunch
from .outcomes import Outcome

_ERRORS = frozenset({Outcome.ERROR, Outcome.TIMEOUT})


@dataclass(frozen=True)
class Progress:
    """Where a launch stands: its agents, operations so far, the recent rate and what went wrong."""

    agents: int
    started: int
    finished: int
    operations: int
    operations_per_second: float
    errors: int
    """Operations that ended in an error or a timeout, plus agents that could not start or stop."""
    conflicts: int
    """Operations that ended in a conflict, serialization failure or deadlock (expected under contention)."""
    elapsed: float

    def describe(self) -> str:
        return (
            f"{self.started}/{self.agents} agents started, {self.finished} finished"
            f" | {self.operations} ops, {self.operations_per_second:.0f} ops/s"
            f" | {self.errors} {'error' if self.errors == 1 else 'errors'}"
            f", {self.conflicts} {'conflict' if self.conflicts == 1 else 'conflicts'}"
            f" | {self.elapsed:.1f} s"
        )


class ProgressMeter:
    """Samples a running launch; the rate is over the time since the previous sample."""

    def __init__(self, running: RunningLaunch, clock: Callable[[], float] = time.monotonic) -> None:
        self._running = running
        self._clock = clock
        self._origin = self._last_time = clock()
        self._counted = 0
        self._errors = 0
        self._conflicts = 0

    def sample(self) -> Progress:
        outcomes = self._running.history.outcomes_from(self._counted)
        operations = self._counted + len(outcomes)
        for outcome in outcomes:
            self._errors += outcome in _ERRORS
            self._conflicts += outcome.is_concurrency_conflict
        now = self._clock()
        interval = now - self._last_time
        rate = (operations - self._counted) / interval if interval > 0 else 0.0
        self._counted, self._last_time = operations, now
        return Progress(
            agents=self._running.plan.agents,
            started=self._running.agents_started,
            finished=self._running.agents_finished,
            operations=operations,
            operations_per_second=rate,
            errors=self._errors + self._running.agents_failed,
            conflicts=self._conflicts,
            elapsed=now - self._origin,
        )
