"""Fairness between agents: Jain's index over the work each agent got done.

Jain's index J = (Σx)² / (n·Σx²) is 1 when every agent did the same work and
1/n when one agent did all of it. It is gentle on a few starved agents (k of n
agents with nothing and the rest equal gives (n-k)/n), so the verdict names the
least served agents and how many got nothing; pick the bound with that in mind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

from ..errors import ConfigurationError
from ..history import History, Operation
from ..units import format_duration
from ..verdicts import Verdict
from ._report import capped, plural, rows_note


class WorkMeasure(Enum):
    """What counts as an agent's work: its successful operations, or the time they took."""

    OPERATIONS = "operations"
    SERVICE_TIME = "service time"

    def of(self, op: Operation) -> float:
        return 1.0 if self is WorkMeasure.OPERATIONS else (op.end_ns - op.start_ns) / 1e9

    def show(self, work: float) -> str:
        return plural(int(work), "operation") if self is WorkMeasure.OPERATIONS else format_duration(work)


def jain_index(work: Sequence[float]) -> float:
    """(Σx)² / (n·Σx²): 1.0 when all equal, 1/n when one has everything."""
    squares = sum(x * x for x in work)
    if not work or squares == 0:
        raise ValueError("Jain's index needs at least one non-zero value")
    return sum(work) ** 2 / (len(work) * squares)


def check_fairness(
    history: History,
    *,
    at_least: float = 0.8,
    measure: WorkMeasure = WorkMeasure.OPERATIONS,
    agents: Iterable[int] = (),
) -> Verdict:
    """Fail when Jain's index over the agents' successful work is below ``at_least``.

    ``agents`` are the ids that ran (the launcher numbers them 1..N), so an agent
    that never got to record an operation counts as served nothing; agents seen
    in the history count too.
    """
    if not 0 < at_least <= 1:
        raise ConfigurationError(f"The fairness bound must be above 0 and at most 1, got {at_least!r}.")
    work = dict.fromkeys(agents, 0.0)
    for op in history:
        work.setdefault(op.agent, 0.0)
        if op.ok:
            work[op.agent] += measure.of(op)
    name = "fairness between agents"
    expected = f"Jain's index at least {at_least:.2f}"
    if len(work) >= 2 and at_least <= 1 / len(work):
        raise ConfigurationError(
            f"With {len(work)} agents Jain's index is never below {1 / len(work):.2f}, so a bound of {at_least} "
            "can never fail; raise it."
        )
    if len(work) < 2 or not any(work.values()):
        why = "fewer than 2 agents ran" if len(work) < 2 else f"none of the {len(work)} agents completed an operation"
        message = f"Fairness not judged: {why}."
        return Verdict(name, True, expected, "nothing to compare", message=message, inconclusive=True)
    index = jain_index(list(work.values()))
    ranked = sorted(work.items(), key=lambda item: (item[1], item[0]))
    (least, least_work), (most, most_work) = ranked[0], ranked[-1]
    starved = sum(1 for value in work.values() if value == 0)
    total = sum(work.values())
    spread = (
        f"most served: agent {most} with {measure.show(most_work)}, "
        f"least served: agent {least} with {measure.show(least_work)}"
        + (f" ({plural(starved, 'agent')} completed none)" if starved else "")
    )
    basis = f"Jain's fairness index {index:.2f} over {len(work)} agents' {measure.value}"
    passed = index >= at_least
    if passed:
        message = f"Agents were served fairly: {basis}, at least {at_least:.2f}; {spread}{rows_note(len(ranked))}."
    else:
        message = (
            f"Agents were not served fairly: {basis} (1.00 = all equal), expected at least {at_least:.2f}; "
            f"{spread}{rows_note(len(ranked))}."
        )
    rows = [
        {"agent": agent, measure.value: measure.show(value), "share": f"{value / total * 100:.1f}%"}
        for agent, value in ranked
    ]
    return Verdict(
        name,
        passed,
        expected,
        f"{index:.2f}",
        "" if passed else f"{at_least - index:.2f}",
        message,
        capped(rows),
        value=index,
    )
