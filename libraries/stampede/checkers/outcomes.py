"""How operations ended: a breakdown of outcomes and error codes, exhausted retries, all succeeded."""

from __future__ import annotations

from collections import Counter

from ..history import History
from ..metrics import OutcomeCounts
from ..outcomes import Outcome
from ..verdicts import Verdict
from ._report import agent_list, capped, label, percent, plural, rows_note


def classify_outcomes(history: History) -> Verdict:
    """Count attempts per outcome and final operations per error code (informational: always passes).

    An operation that was retried made several attempts; the outcome of each
    retried attempt is known, its error code is not, so error-code rows count
    final attempts only.
    """
    counts = OutcomeCounts.of(history)
    outcome_rows: list[dict[str, object]] = []
    for outcome in Outcome:
        attempts = counts.attempts_ending(outcome)
        if attempts:
            outcome_rows.append(
                {
                    "outcome": label(outcome),
                    "error code": "",
                    "final": counts.final[outcome],
                    "retried": counts.retried[outcome],
                    "attempts": attempts,
                    "share of attempts": percent(attempts, counts.attempts),
                }
            )
    codes = Counter((op.outcome, op.error) for op in history if op.error is not None)
    code_rows: list[dict[str, object]] = [
        {
            "outcome": label(outcome),
            "error code": code,
            "final": final,
            "retried": "",
            "attempts": final,
            "share of attempts": percent(final, counts.attempts),
        }
        for (outcome, code), final in codes.most_common()
    ]
    rows = outcome_rows + code_rows
    summary = ", ".join(f"{row['outcome']} {row['attempts']} ({row['share of attempts']})" for row in outcome_rows)
    measured = f"{plural(counts.operations, 'operation')} in {plural(counts.attempts, 'attempt')}"
    retries = counts.attempts - counts.operations
    message = f"Outcomes of {measured} ({plural(retries, 'retry', 'retries')})" + (
        f": {summary}{rows_note(len(rows))}." if summary else "."
    )
    return Verdict("outcomes", True, "a count of outcomes (for information)", measured, "", message, capped(rows))


def check_retries_not_exhausted(history: History) -> Verdict:
    """Fail when an operation gave up because it met conflicts on every attempt it was allowed."""
    exhausted = [op for op in history if op.exhausted]
    total = len(history)
    expected = "0 operations out of retries"
    if not total:
        return Verdict(
            "retries not exhausted",
            True,
            expected,
            "0 of 0 operations",
            message="Nothing to check for exhausted retries: no operation was recorded.",
            inconclusive=True,
        )
    measured = f"{len(exhausted)} of {plural(total, 'operation')} out of retries"
    if not exhausted:
        message = f"No operation ran out of retries: all {plural(total, 'operation')} finished within their retries."
        return Verdict("retries not exhausted", True, expected, measured, message=message)
    retries = sorted({op.retries for op in exhausted})
    after = f"{retries[0]}" if len(retries) == 1 else f"{retries[0]} to {retries[-1]}"
    last = ", ".join(f"{n} {name}" for name, n in Counter(label(op.outcome) for op in exhausted).most_common())
    details = [
        {
            "agent": op.agent,
            "user": op.user,
            "operation": op.op,
            "iteration": op.iteration,
            "retries": op.retries,
            "last outcome": label(op.outcome),
            "error code": op.error or "",
        }
        for op in exhausted
    ]
    message = (
        f"Retries ran out: expected every operation to finish within its retries, but "
        f"{len(exhausted)} of {plural(total, 'operation')} ({percent(len(exhausted), total)}) gave up after "
        f"{after} retries, still failing ({last}){rows_note(len(details))}."
    )
    miss = plural(len(exhausted), "operation") + " out of retries"
    return Verdict("retries not exhausted", False, expected, measured, miss, message, capped(details))


def check_all_succeeded(history: History) -> Verdict:
    """Fail when any operation did not end ``ok``; the table groups failures by outcome and error code."""
    total = len(history)
    expected = f"{total} of {total} operations succeeded"
    if not total:
        return Verdict(
            "all succeeded",
            True,
            expected,
            "0 of 0 operations succeeded",
            message="Nothing to check: no operation was recorded, so none could succeed or fail.",
            inconclusive=True,
        )
    failed = [op for op in history if not op.ok]
    measured = f"{total - len(failed)} of {total} operations succeeded"
    if not failed:
        return Verdict("all succeeded", True, expected, measured, message=f"All {total} operations succeeded.")
    groups: dict[tuple[Outcome, str], list[int]] = {}
    for op in failed:
        groups.setdefault((op.outcome, op.error or ""), []).append(op.agent)
    ranked = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)
    details = [
        {
            "outcome": label(outcome),
            "error code": code,
            "operations": len(agents),
            "share of operations": percent(len(agents), total),
            "agents": agent_list(agents),
        }
        for (outcome, code), agents in ranked
    ]
    kinds = "; ".join(
        f"{len(agents)} {label(outcome)}" + (f" ({code})" if code else "") for (outcome, code), agents in ranked[:5]
    )
    more = f"; and {len(ranked) - 5} other kinds" if len(ranked) > 5 else ""
    message = (
        f"Not every operation succeeded: expected {total} of {total}, {total - len(failed)} succeeded and "
        f"{len(failed)} did not ({percent(len(failed), total)}): {kinds}{more}{rows_note(len(details))}."
    )
    miss = f"{plural(len(failed), 'operation')} failed"
    return Verdict("all succeeded", False, expected, measured, miss, message, capped(details))
