"""Agent runs as the service executed them: hidden serialization judged from each run's first event.

A run's operation lasts from sending it to its done event, so a run queued
behind a global lock in the service counts as in flight while it waits (see
:mod:`stampede.checkers.serialization`). Timing each run from its first event
(``agent_started``: the service began it) to its done event measures execution,
and runs that only ran one at a time show.
"""

from __future__ import annotations

from dataclasses import replace

from ..history import History, Operation
from ..records.websocket import DONE_KEY, FIRST_EVENT_KEY
from ..verdicts import Verdict
from .serialization import check_ran_in_parallel


def executed_runs(history: History) -> History:
    """The successful runs, each from when its first event arrived to when its done event did."""
    runs = []
    for op in history:
        read = op.read if isinstance(op.read, dict) else {}
        if op.ok and read.get(FIRST_EVENT_KEY) is not None and read.get(DONE_KEY) is not None:
            runs.append(
                Operation(
                    op.agent, op.user, op.op, op.iteration, int(read[FIRST_EVENT_KEY]), int(read[DONE_KEY]), op.outcome
                )
            )
    return History(runs)


def check_runs_in_parallel(history: History, *, at_least: float | None = None) -> Verdict:
    """:func:`check_ran_in_parallel` over :func:`executed_runs`: fails when the service ran agents one at a time."""
    verdict = check_ran_in_parallel(executed_runs(history), at_least=at_least)
    note = " (runs timed from their first event, so time queued before the service began them does not count)"
    return replace(verdict, name="agent runs ran in parallel", message=verdict.message.removesuffix(".") + note + ".")
