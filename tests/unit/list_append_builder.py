"""Small list-append histories written by hand, the way Adya's and Elle's definitions describe them."""

from __future__ import annotations

from itertools import count
from typing import Any

from stampede.checkers.list_append import Analysis, analyse
from stampede.history import Operation
from stampede.outcomes import Outcome

OUTCOMES = {
    "ok": (Outcome.OK, None),
    "failed": (Outcome.SERIALIZATION_FAILURE, "40001"),
    "unknown": (Outcome.TIMEOUT, "operation_timeout"),
}


def a(key: Any, value: Any) -> list[Any]:
    """Append ``value`` to ``key``."""
    return ["append", key, value]


def r(key: Any, *values: Any) -> list[Any]:
    """Read ``key`` as the list ``values``."""
    return ["r", key, list(values)]


def t(*ops: list[Any], agent: int | None = None, outcome: str = "ok", at: tuple[int, int] | None = None) -> Operation:
    """One transaction. By default each runs on an agent of its own and all overlap in time, so only data
    dependencies order them; ``agent`` and ``at`` (start, end in ns) add process and real-time order."""
    status, error = OUTCOMES[outcome]
    start, end = at or (0, 1_000_000)
    return Operation(agent or next(_agents), "u", "list append", 0, start, end, status, error=error, written=list(ops))


_agents = count(1000)


def check(*transactions: Operation) -> Analysis:
    return analyse(list(transactions))


def names(analysis: Analysis) -> set[str]:
    return {anomaly.name for anomaly in analysis.anomalies}
