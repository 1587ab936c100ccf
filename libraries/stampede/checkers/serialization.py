"""Hidden serialization: work that should run in parallel but ran one at a time.

The average number of operations in flight is the total time of all operations
divided by the wall time they span (from the first start to the last end);
N agents working in parallel keep it near N, agents queued behind one global
lock keep it near 1. The peak (the most operations in flight at one instant) is
found by a sweep over starts and ends.

The check sees operations as they were timed: when a service queues requests
and the tool's operation includes the wait, queued operations count as in
flight. It catches serialization where the operation's time is execution time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigurationError
from ..history import History
from ..units import format_duration
from ..verdicts import Verdict
from ._report import plural


@dataclass(frozen=True)
class Concurrency:
    """How many operations were in flight: on average over the span, and at most at one instant."""

    operations: int
    agents: int
    busy_seconds: float
    """The operations' durations added up."""
    span_seconds: float
    """From the first operation's start to the last one's end."""
    max_in_flight: int
    clock_error_seconds: float = 0.0
    """The largest ε of the operations' clocks (workers'): the span is within ± twice this; each duration is exact."""

    @property
    def average(self) -> float:
        return self.busy_seconds / self.span_seconds if self.span_seconds > 0 else 0.0

    @property
    def average_bounds(self) -> tuple[float, float]:
        """The lowest and highest average the clocks' errors allow."""
        widest = self.span_seconds + 2 * self.clock_error_seconds
        narrowest = self.span_seconds - 2 * self.clock_error_seconds
        return self.busy_seconds / widest if widest > 0 else 0.0, (
            self.busy_seconds / narrowest if narrowest > 0 else float("inf")
        )


def measure_concurrency(history: History) -> Concurrency:
    intervals = [(op.start_ns, op.end_ns) for op in history]
    if not intervals:
        return Concurrency(0, 0, 0.0, 0.0, 0)
    span_ns = max(end for _, end in intervals) - min(start for start, _ in intervals)
    busy_ns = sum(end - start for start, end in intervals)
    error_ns = max(op.clock_error_ns for op in history)
    return Concurrency(
        len(intervals),
        len({op.agent for op in history}),
        busy_ns / 1e9,
        span_ns / 1e9,
        _max_in_flight(intervals),
        error_ns / 1e9,
    )


def _max_in_flight(intervals: Iterable[tuple[int, int]]) -> int:
    # At an equal instant an end sorts before a start: back-to-back operations do not overlap.
    events = sorted(event for start, end in intervals for event in ((start, 1), (end, -1)))
    in_flight = peak = 0
    for _, change in events:
        in_flight += change
        peak = max(peak, in_flight)
    return peak


def default_parallelism(agents: int) -> float:
    """What N agents should at least reach on average: a quarter of them, and never below 1.5."""
    return max(1.5, agents / 4)


def check_ran_in_parallel(history: History, *, at_least: float | None = None) -> Verdict:
    """Fail when fewer than ``at_least`` operations were in flight on average although several agents ran.

    ``at_least`` defaults to :func:`default_parallelism` of the agents in the history.
    """
    if at_least is not None and not at_least > 0:
        raise ConfigurationError(f"The expected parallelism must be above 0 operations in flight, got {at_least!r}.")
    found = measure_concurrency(history)
    name = "agents ran in parallel"
    if found.agents < 2 or found.span_seconds <= 0:
        why = "fewer than 2 agents recorded operations" if found.agents < 2 else "the operations took no time"
        return Verdict(
            name,
            True,
            "operations in flight",
            "nothing to measure",
            message=f"Parallelism not judged: {why}.",
            inconclusive=True,
        )
    bound = default_parallelism(found.agents) if at_least is None else at_least
    if bound > found.agents:
        raise ConfigurationError(
            f"The expected parallelism {bound:g} can never be reached: {found.agents} agents ran, "
            "each one operation at a time."
        )
    figures = (
        f"{found.agents} agents, average {found.average:.2f} operations in flight (max {found.max_in_flight}) "
        f"over {format_duration(found.span_seconds)}"
    )
    low, high = found.average_bounds
    if low < bound <= high:
        return Verdict(
            name,
            True,
            f"at least {bound:.2f} operations in flight on average",
            f"{low:.2f}–{high:.2f} in flight",
            message=f"Parallelism inconclusive: {figures}, between {low:.2f} and {high:.2f} within the workers' "
            f"clock errors (± {format_duration(found.clock_error_seconds)}); expected at least {bound:.2f}.",
            inconclusive=True,
            value=found.average,
        )
    passed = low >= bound
    if passed:
        message = f"Agents ran in parallel: {figures}; expected at least {bound:.2f}."
    else:
        lead = "Agents ran one at a time" if found.max_in_flight <= 1 else "Agents hardly ran in parallel"
        message = f"{lead}: {figures}; expected at least {bound:.2f}."
    details = [
        {
            "agents": found.agents,
            "operations": found.operations,
            "time in operations": format_duration(found.busy_seconds),
            "wall time": format_duration(found.span_seconds),
            "average in flight": f"{found.average:.2f}",
            "max in flight": found.max_in_flight,
        }
    ]
    return Verdict(
        name,
        passed,
        f"at least {bound:.2f} operations in flight on average",
        f"{found.average:.2f} in flight ({plural(found.max_in_flight, 'operation')} at most)",
        "" if passed else f"{bound - found.average:.2f} operations in flight",
        message,
        details,
        value=found.average,
    )


def check_work_overlapped(history: History, *, solo_seconds: float, at_least: float | None = None) -> Verdict:
    """Fail when operations that each take ``solo_seconds`` alone got through fewer than ``at_least`` at a time.

    For work a server queues while the client waits (a tool that blocks the
    server's event loop: every request is in flight, one runs), the operations'
    own intervals all overlap and :func:`check_ran_in_parallel` cannot tell.
    What shows it is throughput: the operations' known cost added up
    (``solo_seconds`` each) over the wall time they span is how many ran at
    once. ``at_least`` defaults to :func:`default_parallelism` of the agents.
    """
    if not solo_seconds > 0:
        raise ConfigurationError(f"solo_seconds must be longer than 0 s, got {solo_seconds!r}.")
    if at_least is not None and not at_least > 0:
        raise ConfigurationError(f"The expected parallelism must be above 0 operations at once, got {at_least!r}.")
    found = measure_concurrency(history)
    name = "slow work overlapped"
    done = [op for op in history if op.ok]
    if found.agents < 2 or found.span_seconds <= 0 or not done:
        why = "fewer than 2 agents recorded operations" if found.agents < 2 else "no operation succeeded"
        return Verdict(
            name,
            False,
            "operations at once",
            "nothing to measure",
            message=f"Overlap not judged: {why}.",
            inconclusive=True,
        )
    bound = default_parallelism(found.agents) if at_least is None else at_least
    at_once = len(done) * solo_seconds / found.span_seconds
    figures = (
        f"{plural(len(done), 'operation')} of {format_duration(solo_seconds)} each got through in "
        f"{format_duration(found.span_seconds)}: {at_once:.2f} at once ({found.agents} agents)"
    )
    passed = at_once >= bound
    lead = (
        "Slow work overlapped"
        if passed
        else "Slow work ran one at a time"
        if at_once < 1.5
        else "Slow work hardly overlapped"
    )
    return Verdict(
        name,
        passed,
        f"at least {bound:.2f} operations at once",
        f"{at_once:.2f} at once",
        "" if passed else f"{bound - at_once:.2f} operations at once",
        f"{lead}: {figures}; expected at least {bound:.2f}.",
        value=at_once,
    )
