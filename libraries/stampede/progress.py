"""Live figures of a running launch, for a progress display: agents, operations, rate, errors.

A launch's counts so far are a :class:`Tally`; tallies add up, so a launch on
workers shows the sum of its shards' (see :mod:`stampede.worker_progress`).
A :class:`LaunchTally` reads one from another thread while the launch runs on
the engine loop: only counters and appended operations are read, each new
operation counted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Protocol

from .launcher import RunningLaunch
from .outcomes import Outcome

_ERRORS = frozenset({Outcome.ERROR, Outcome.TIMEOUT})


@dataclass(frozen=True)
class Tally:
    """What a launch, or one shard of it, has done so far (each count as in :class:`Progress`): they add up."""

    started: int = 0
    finished: int = 0
    operations: int = 0
    errors: int = 0
    conflicts: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other), strict=True)))


class ProgressSource(Protocol):
    """Where a progress display reads a launch's agents and its tally so far."""

    @property
    def agents(self) -> int: ...

    def tally(self) -> Tally: ...


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


class LaunchTally:
    """The tally of a launch running in this process (a :class:`ProgressSource`)."""

    def __init__(self, running: RunningLaunch) -> None:
        self._running = running
        self._counted = 0
        self._errors = 0
        self._conflicts = 0

    @property
    def agents(self) -> int:
        return self._running.plan.agents

    def tally(self) -> Tally:
        outcomes = self._running.history.outcomes_from(self._counted)
        self._counted += len(outcomes)
        for outcome in outcomes:
            self._errors += outcome in _ERRORS
            self._conflicts += outcome.is_concurrency_conflict
        return Tally(
            started=self._running.agents_started,
            finished=self._running.agents_finished,
            operations=self._counted,
            errors=self._errors + self._running.agents_failed,
            conflicts=self._conflicts,
        )


class ProgressMeter:
    """Samples a launch's progress from its source; the rate is over the time since the previous sample."""

    def __init__(self, source: ProgressSource, clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._clock = clock
        self._origin = self._last_time = clock()
        self._operations = 0

    def sample(self) -> Progress:
        tally = self._source.tally()
        now = self._clock()
        interval = now - self._last_time
        rate = (tally.operations - self._operations) / interval if interval > 0 else 0.0
        self._operations, self._last_time = tally.operations, now
        return Progress(
            agents=self._source.agents,
            started=tally.started,
            finished=tally.finished,
            operations=tally.operations,
            operations_per_second=rate,
            errors=tally.errors,
            conflicts=tally.conflicts,
            elapsed=now - self._origin,
        )
