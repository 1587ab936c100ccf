"""Atomicity across services: every distributed operation applied everywhere or nowhere.

Three checks, each a pure function of the history and the state read back:

- :func:`check_all_or_nothing` (two-phase commit): each operation's row is
  committed on every participant or on none; a success is applied; a logged
  commit decision is applied.
- :func:`check_none_in_doubt`: no prepared transaction is left waiting for a
  decision that will never come.
- :func:`check_sagas`: each saga completed every step or had every completed
  step compensated.

Operations name themselves in ``written``: ``{"batch", "op", "fault"}`` for two-phase
commit, ``{"batch", "saga", "failed_step", "compensated"}`` for sagas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..history import History, Operation
from ..records.snapshots import AtomicityState, SagaState
from ..verdicts import Verdict
from ._report import capped, plural, rows_note

SAGA_STEPS = ("reserve credits", "record booking", "issue ticket")


def _written(op: Operation, key: str) -> Any:
    return op.written.get(key) if isinstance(op.written, Mapping) else None


def launch_batch(history: History) -> str | None:
    """The batch a launch's operations wrote under, or None when none recorded one."""
    return next((batch for op in history if (batch := _written(op, "batch"))), None)


def _by_id(history: History, key: str) -> dict[str, Operation]:
    return {name: op for op in history if (name := _written(op, key))}


def _nothing_to_check(name: str, expected: str, what: str) -> Verdict:
    return Verdict(
        name,
        True,
        expected,
        "0 operations",
        message=f"Nothing to check for {what}: the launch recorded no operation that names itself.",
        inconclusive=True,
        value=0,
    )


def _faults_note(operations: Mapping[str, Operation]) -> str:
    faults = Counter(fault for op in operations.values() if (fault := _written(op, "fault")) not in (None, "none"))
    shown = ", ".join(f"{count} {fault!r}" for fault, count in faults.most_common())
    return f" Injected faults: {shown}." if shown else " No fault was injected."


def check_all_or_nothing(history: History, state: AtomicityState) -> Verdict:
    """Fail on an operation committed on some participants but not all, or a success or decision applied nowhere."""
    operations = _by_id(history, "op")
    names = list(state.applied)
    everywhere = " and ".join(names)
    nowhere = "neither" if len(names) == 2 else "none"
    ids = set(operations).union(*state.applied.values(), state.decided or ())
    if not ids:
        return _nothing_to_check("all or nothing", "0 partial operations", "all-or-nothing commits")
    shapes: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    for op_id in sorted(ids):
        on = [name for name in names if op_id in state.applied[name]]
        op = operations.get(op_id)
        decided = state.decided is not None and op_id in state.decided
        if len(on) == len(names):
            shapes["all"] += 1
            continue
        if on:
            problem = f"partial: on {' and '.join(on)} only"
        elif op is not None and op.ok:
            problem = "reported success, applied nowhere"
        elif decided:
            problem = "commit decision logged, applied nowhere"
        else:
            shapes["none"] += 1
            continue
        shapes[problem] += 1
        problems.append(
            {
                "operation": op_id,
                "agent": op.agent if op else "",
                "outcome": op.outcome.value if op else "(not in the history)",
                "error": (op.error or "") if op else "",
                "fault": _written(op, "fault") if op else "",
                "applied on": ", ".join(on) or "nowhere",
                "decision logged": "" if state.decided is None else ("yes" if decided else "no"),
                "problem": problem,
            }
        )
    total = len(ids)
    split = f"{shapes['all']} applied on {everywhere}, {shapes['none']} on {nowhere}"
    partial = sum(count for shape, count in shapes.items() if shape.startswith("partial"))
    measured = f"{partial} partial of {plural(total, 'operation')}"
    if not problems:
        message = (
            f"All or nothing held for {plural(total, 'operation')} across {everywhere}: {split}; "
            f"no partial state.{_faults_note(operations)}"
        )
        return Verdict("all or nothing", True, "0 partial operations", measured, message=message, value=0)
    kinds = "; ".join(f"{count} {shape}" for shape, count in sorted(shapes.items()) if shape not in ("all", "none"))
    message = (
        f"Not all or nothing: {len(problems)} of {plural(total, 'operation')} broke atomicity "
        f"({kinds}); {split}{rows_note(len(problems))}.{_faults_note(operations)}"
    )
    return Verdict(
        "all or nothing",
        False,
        "0 partial operations",
        measured,
        plural(len(problems), "broken operation"),
        message,
        capped(problems),
        value=len(problems),
    )


def check_none_in_doubt(history: History, state: AtomicityState) -> Verdict:
    """Fail while any prepared transaction of the launch still waits in ``pg_prepared_xacts``."""
    operations = _by_id(history, "op")
    if not operations:
        return _nothing_to_check("none in doubt", "0 prepared transactions", "transactions left in doubt")
    expected = "0 prepared transactions"
    left = len(state.in_doubt)
    measured = f"{plural(left, 'prepared transaction')} in doubt"
    if not left:
        message = (
            f"No prepared transaction left in doubt: none of the {plural(len(operations), 'operation')} has a "
            f"transaction still in pg_prepared_xacts.{_faults_note(operations)}"
        )
        return Verdict("none in doubt", True, expected, measured, message=message, value=0)
    owners = {gid.rpartition("-")[0] for gid in state.in_doubt}
    details = [{"gid": gid} for gid in state.in_doubt]
    message = (
        f"Prepared transactions left in doubt: {plural(left, 'prepared transaction')} of "
        f"{plural(len(owners), 'operation')} still in pg_prepared_xacts{rows_note(left)}, holding their locks "
        "and keeping their rows out of sight until resolved. After a coordinator crash, recovery must commit "
        f"those whose decision was logged and roll back the rest.{_faults_note(operations)}"
    )
    return Verdict("none in doubt", False, expected, measured, measured, message, capped(details), value=left)


def check_sagas(history: History, state: SagaState) -> Verdict:
    """Fail on a saga that left some steps applied and others not, or that reported success without every step."""
    sagas = _by_id(history, "saga")
    ids = set(sagas).union(state.reserved, state.released, state.booked, state.ticketed)
    if not ids:
        return _nothing_to_check("no partial saga", "0 partial sagas", "partial sagas")
    left_by_step = {"reserve credits": state.reserved, "record booking": state.booked, "issue ticket": state.ticketed}
    completed = undone = 0
    partial: Counter[str] = Counter()
    problems: list[dict[str, Any]] = []
    for saga_id in sorted(ids):
        left = [step for step in SAGA_STEPS if saga_id in left_by_step[step]]
        op = sagas.get(saga_id)
        if len(left) == len(SAGA_STEPS):
            completed += 1
            continue
        if not left and not (op is not None and op.ok):
            undone += 1
            continue
        problem = f"{' + '.join(left)} left applied" if left else "reported success, no step applied"
        partial[problem] += 1
        problems.append(
            {
                "saga": saga_id,
                "agent": op.agent if op else "",
                "outcome": op.outcome.value if op else "(not in the history)",
                "failed step": (_written(op, "failed_step") or "") if op else "",
                "compensated": ", ".join(_written(op, "compensated") or ()) if op else "",
                "problem": problem,
            }
        )
    compensations = Counter(step for op in sagas.values() for step in _written(op, "compensated") or ())
    failed = Counter(step for op in sagas.values() if (step := _written(op, "failed_step")))
    ran = ", ".join(f"{count} {step}" for step, count in compensations.most_common()) or "none"
    story = (
        f"{completed} completed, {undone} undone; {plural(sum(failed.values()), 'saga')} failed "
        f"({', '.join(f'{count} at {step}' for step, count in failed.most_common()) or 'none'}), "
        f"{plural(sum(compensations.values()), 'compensating step')} ran ({ran})"
    )
    measured = f"{len(problems)} partial of {plural(len(ids), 'saga')}"
    if not problems:
        message = f"No saga left partial state: of {plural(len(ids), 'saga')} {story}."
        return Verdict("no partial saga", True, "0 partial sagas", measured, message=message, value=0)
    kinds = "; ".join(f"{count} with {problem}" for problem, count in partial.most_common())
    message = (
        f"Partial sagas: {len(problems)} of {plural(len(ids), 'saga')} ended neither complete nor compensated "
        f"({kinds}); {story}{rows_note(len(problems))}."
    )
    return Verdict(
        "no partial saga",
        False,
        "0 partial sagas",
        measured,
        plural(len(problems), "partial saga"),
        message,
        capped(problems),
        value=len(problems),
    )
