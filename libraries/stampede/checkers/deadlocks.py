"""Deadlocks: detected as 40P01, resolved within a bound, victims recovered, credits conserved across accounts.

An attempt that ended in a deadlock is one detected deadlock: PostgreSQL aborts
exactly one transaction (the victim) per cycle it finds. The history counts them
in ``retry_causes`` (victims that were retried) and in the final outcome (victims
that were not). How long each took to resolve comes from the tool, in
``read["deadlock_waits_ns"]`` (see :mod:`stampede.workloads.transfers`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..history import History, Operation
from ..metrics import percentile
from ..outcomes import Outcome
from ..records.fields import DEADLOCK_WAITS
from ..units import format_duration, parse_duration
from ..verdicts import Verdict
from ._report import capped, label, percent, plural, rows_note

DEADLOCK_SQLSTATE = "40P01"


def deadlocks_met(op: Operation) -> int:
    """How many of ``op``'s attempts a deadlock ended (retried ones and the final one)."""
    return op.retry_causes.count(Outcome.DEADLOCK) + (op.outcome is Outcome.DEADLOCK)


def count_deadlocks(history: History) -> int:
    """Deadlocks detected in the whole history: one per attempt that ended in 40P01."""
    return sum(deadlocks_met(op) for op in history)


def resolution_waits_ns(history: History) -> list[int]:
    """Every recorded deadlock's resolution time, in ns, sorted."""
    waits: list[int] = []
    for op in history:
        if isinstance(op.read, Mapping):
            waits.extend(int(wait) for wait in op.read.get(DEADLOCK_WAITS, ()))
    return sorted(waits)


def _attempts(history: History) -> int:
    return sum(op.attempts for op in history)


def check_deadlocks_detected(history: History, *, noun: str = "transfer") -> Verdict:
    """Every attempt that did not commit ended in a detected deadlock (40P01), never as a timeout or another error.

    A deadlock PostgreSQL failed to break in time ends as the launcher's operation
    timeout; a ``lock_timeout`` shorter than ``deadlock_timeout`` turns deadlocks
    into lock-not-available conflicts (55P03). Both fail this check. With no
    deadlock at all the verdict is inconclusive: detection was not exercised.
    """
    deadlocks = count_deadlocks(history)
    work = plural(len(history), noun)
    otherwise: Counter[str] = Counter()
    details: list[dict[str, Any]] = []
    for op in history:
        for cause in op.retry_causes:
            if cause is not Outcome.DEADLOCK:
                otherwise[f"{_ended_as(cause)}, retried"] += 1
                details.append(_attempt_row(op, cause, "(retried: not kept)"))
        if op.outcome not in (Outcome.OK, Outcome.DEADLOCK):
            otherwise[_ended_as(op.outcome, op.error)] += 1
            details.append(_attempt_row(op, op.outcome, op.error or ""))
    total = sum(otherwise.values())
    expected = f"every deadlock ends in {DEADLOCK_SQLSTATE}"
    measured = f"{plural(deadlocks, 'deadlock')} detected, {total} attempts ended otherwise"
    detected = f"{deadlocks} detected (SQLSTATE {DEADLOCK_SQLSTATE}) in {work}"
    if not otherwise:
        if not deadlocks:
            return Verdict(
                "deadlocks detected",
                True,
                expected,
                measured,
                message=(
                    f"No deadlock occurred in {work}, so deadlock detection was not exercised: nothing to check. "
                    "Opposite lock orders with a think time between the two locks provoke deadlocks."
                ),
                inconclusive=True,
                value=0,
            )
        message = (
            f"Deadlocks: {detected} ({percent(deadlocks, _attempts(history))} of attempts); "
            "every other attempt committed."
        )
        return Verdict("deadlocks detected", True, expected, measured, message=message, value=deadlocks)
    ended = "; ".join(f"{count} {how}" for how, count in otherwise.most_common())
    message = (
        f"Not every deadlock surfaced as {DEADLOCK_SQLSTATE}: {detected}, but {plural(total, 'attempt')} neither "
        f"committed nor ended in {DEADLOCK_SQLSTATE}: {ended}. A deadlock PostgreSQL does not break first ends "
        "this way: a lock_timeout shorter than deadlock_timeout cuts the wait short, an operation timeout "
        f"shorter than deadlock_timeout gives up on it{rows_note(len(details))}."
    )
    miss = f"{plural(total, 'attempt')} ended otherwise"
    return Verdict("deadlocks detected", False, expected, measured, miss, message, capped(details), value=deadlocks)


def _ended_as(outcome: Outcome, code: str | None = None) -> str:
    """How an attempt ended, as a reader says it; a conflict in a lock wait can only be 55P03."""
    if outcome is Outcome.CONFLICT:
        return f"ended in lock not available ({code or '55P03'})"
    return f"ended in {label(outcome)}" + (f" ({code})" if code else "")


def _attempt_row(op: Operation, outcome: Outcome, code: str) -> dict[str, Any]:
    return {"agent": op.agent, "iteration": op.iteration, "outcome": label(outcome), "error code": code}


def check_no_deadlocks(history: History, *, noun: str = "transfer") -> Verdict:
    """Fail when any attempt ended in a deadlock (for work that locks in one global order)."""
    deadlocks = count_deadlocks(history)
    work = plural(len(history), noun)
    if not history:
        return Verdict(
            "no deadlocks",
            True,
            "0 deadlocks",
            "0 operations",
            message="Nothing to check for deadlocks: no operation was recorded.",
            inconclusive=True,
            value=0,
        )
    measured = f"{plural(deadlocks, 'deadlock')} in {work}"
    if not deadlocks:
        return Verdict("no deadlocks", True, "0 deadlocks", measured, message=f"No deadlock in {work}.", value=0)
    victims = [op for op in history if deadlocks_met(op)]
    details = [
        {
            "agent": op.agent,
            "iteration": op.iteration,
            "deadlocks": deadlocks_met(op),
            "final outcome": label(op.outcome),
        }
        for op in victims
    ]
    message = (
        f"Deadlocks occurred: expected 0, found {deadlocks} (SQLSTATE {DEADLOCK_SQLSTATE}) in {work}, met by "
        f"{plural(len(victims), noun)}; some transactions still lock rows in different orders{rows_note(len(details))}."
    )
    return Verdict("no deadlocks", False, "0 deadlocks", measured, measured, message, capped(details), value=deadlocks)


def check_forward_progress(history: History, *, noun: str = "transfer") -> Verdict:
    """Every operation eventually completed: deadlock victims retried until they committed, none gave up or failed."""
    total = len(history)
    expected = f"{total} of {total} {noun}s completed"
    if not total:
        return Verdict(
            "forward progress",
            True,
            expected,
            f"0 of 0 {noun}s",
            message=f"Nothing to check for forward progress: no {noun} was recorded.",
            inconclusive=True,
        )
    unfinished = [op for op in history if not op.ok]
    completed = total - len(unfinished)
    measured = f"{completed} of {total} {noun}s completed"
    victims = [op for op in history if op.ok and deadlocks_met(op)]
    if not unfinished:
        recovered = (
            f"{plural(len(victims), 'deadlock victim')} met {plural(sum(map(deadlocks_met, victims)), 'deadlock')}, "
            f"retried ({plural(sum(op.retries for op in victims), 'retry', 'retries')}) and completed"
            if victims
            else "none was a deadlock victim"
        )
        message = f"Forward progress: all {plural(total, noun)} completed; {recovered}."
        return Verdict("forward progress", True, expected, measured, message=message)
    reasons: Counter[str] = Counter(_why_unfinished(op) for op in unfinished)
    details = [
        {
            "agent": op.agent,
            "iteration": op.iteration,
            "outcome": label(op.outcome),
            "error code": op.error or "",
            "retries": op.retries,
            "why": _why_unfinished(op),
        }
        for op in unfinished
    ]
    why = "; ".join(f"{count} {reason}" for reason, count in reasons.most_common())
    message = (
        f"Forward progress failed: {completed} of {plural(total, noun)} completed, {len(unfinished)} did not "
        f"({percent(len(unfinished), total)}): {why}. A deadlock victim's transaction is rolled back; only a retry "
        f"completes its work{rows_note(len(details))}."
    )
    miss = f"{plural(len(unfinished), noun)} not completed"
    return Verdict("forward progress", False, expected, measured, miss, message, capped(details))


def _why_unfinished(op: Operation) -> str:
    code = f" ({op.error})" if op.error else ""
    if op.exhausted:
        return f"gave up after {op.retries} retries, still failing with {label(op.outcome)}{code}"
    if op.outcome.is_concurrency_conflict:
        return f"ended in a {label(op.outcome)}{code} and were not retried"
    return f"failed with {label(op.outcome)}{code}"


def check_deadlock_resolution(
    history: History,
    bound: float,
    *,
    deadlock_timeout: str | None = None,
    timeout_source: str = "server",
    pct: float = 95.0,
) -> Verdict:
    """The ``pct`` percentile of deadlock resolution times is within ``bound`` seconds; the slowest is reported.

    ``deadlock_timeout`` (as ``SHOW`` renders it) goes into the message: no
    deadlock resolves sooner than it, so a bound below it cannot hold.
    """
    waits = resolution_waits_ns(history)
    deadlocks = count_deadlocks(history)
    name = f"p{pct:g}"
    expected = f"{name} ≤ {format_duration(bound)}"
    timeout_note = f"{timeout_source} deadlock_timeout {deadlock_timeout}" if deadlock_timeout else ""
    if not waits:
        reason = (
            f"{plural(deadlocks, 'deadlock')} occurred but none recorded how long it took to resolve"
            if deadlocks
            else f"no deadlock occurred in {plural(len(history), 'operation')}"
        )
        return Verdict(
            "deadlock resolution",
            True,
            expected,
            "0 resolution times",
            message=f"No deadlock resolution time to judge: {reason}.",
            inconclusive=True,
        )
    judged = percentile(waits, pct) / 1e9
    slowest = waits[-1] / 1e9
    over = sum(wait / 1e9 > bound for wait in waits)
    recorded = f"{len(waits)} of {deadlocks} deadlocks" if len(waits) != deadlocks else plural(len(waits), "deadlock")
    figures = (
        f"p50 {format_duration(percentile(waits, 50) / 1e9)}, max {format_duration(slowest)} over {recorded}; "
        f"{over} of {len(waits)} took longer than {format_duration(bound)}"
        + (f"; {timeout_note}" if timeout_note else "")
    )
    measured = f"{name} {format_duration(judged)}, max {format_duration(slowest)}"
    details = [
        {
            "deadlocks": len(waits),
            "p50": format_duration(percentile(waits, 50) / 1e9),
            "p95": format_duration(percentile(waits, 95) / 1e9),
            "p99": format_duration(percentile(waits, 99) / 1e9),
            "max": format_duration(slowest),
            "over the bound": over,
            "deadlock_timeout": deadlock_timeout or "",
        }
    ]
    if judged <= bound:
        message = f"Deadlock resolution: {name} {format_duration(judged)} ≤ {format_duration(bound)} ({figures})."
        return Verdict("deadlock resolution", True, expected, measured, "", message, details, value=judged)
    message = (
        f"Deadlocks resolved too slowly: {name} {format_duration(judged)} > {format_duration(bound)}, "
        f"{format_duration(judged - bound)} over the bound ({figures})."
    )
    if deadlock_timeout and parse_duration(deadlock_timeout, what="deadlock_timeout") >= bound:
        message += (
            f" PostgreSQL looks for a deadlock only once a lock wait has lasted deadlock_timeout ({deadlock_timeout}), "
            f"so none can be resolved within {format_duration(bound)}: set deadlock_timeout below the bound."
        )
    miss = f"{format_duration(judged - bound)} over"
    return Verdict("deadlock resolution", False, expected, measured, miss, message, details, value=judged)


def check_transfers_conserved(
    initial: Mapping[int, int], final: Mapping[int, int], history: History, *, unit: str = "credits"
) -> Verdict:
    """The accounts hold what they held at the start in total, and each holds what the successful transfers left it.

    Each successful transfer records ``written={"from": a, "to": b, "amount": n}``.
    A total that changed means credits were created or destroyed; a right total
    with a wrong account means a transfer reported as done was not applied (or a
    failed one took effect) on both sides.
    """
    expected_balances = dict(initial)
    moved = 0
    transfers = 0
    for op in history.successful():
        written = op.written
        if isinstance(written, Mapping) and {"from", "to", "amount"} <= written.keys():
            expected_balances[written["from"]] = expected_balances.get(written["from"], 0) - written["amount"]
            expected_balances[written["to"]] = expected_balances.get(written["to"], 0) + written["amount"]
            moved += written["amount"]
            transfers += 1
    start, now = sum(initial.values()), sum(final.values())
    accounts = plural(len(initial), "account")
    expected = f"{start} {unit} in {accounts}"
    measured = f"{now} {unit}"
    wrong = [
        {
            "account": account,
            "at the start": initial.get(account, 0),
            "expected": expected_balances.get(account, 0),
            "found": final.get(account, 0),
            "difference": final.get(account, 0) - expected_balances.get(account, 0),
        }
        for account in sorted(set(expected_balances) | set(final))
        if final.get(account, 0) != expected_balances.get(account, 0)
    ]
    transfers_done = f"{plural(transfers, 'successful transfer')} ({moved} {unit} moved)"
    if start == now and not wrong:
        message = (
            f"{unit.capitalize()} conserved: {accounts} hold {now} {unit} in total, as at the start, and each "
            f"holds what the {transfers_done} left it."
        )
        return Verdict("credits conserved", True, expected, measured, message=message)
    if start != now:
        change = now - start
        message = (
            f"{unit.capitalize()} not conserved: {accounts} held {start} {unit} at the start and hold {now} now: "
            f"{abs(change)} {unit} {'appeared' if change > 0 else 'disappeared'} that no transfer accounts for "
            f"(transfers only move {unit}; the {transfers} successful ones moved {moved})"
        )
        miss = f"{abs(change)} {unit} too {'many' if change > 0 else 'few'}"
    else:
        message = (
            f"{unit.capitalize()} conserved in total ({now}), but {len(wrong)} of {accounts} "
            f"{'does' if len(wrong) == 1 else 'do'} not hold what the {transfers_done} left them: a transfer "
            "reported as done was not applied, a failed one took effect, or something else wrote to them"
        )
        miss = f"{plural(len(wrong), 'account')} off"
    message += f"{rows_note(len(wrong))}."
    return Verdict("credits conserved", False, expected, measured, miss, message, capped(wrong))
