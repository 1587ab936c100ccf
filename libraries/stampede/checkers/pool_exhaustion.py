"""Pool exhaustion: every operation is served or refused with an acquire timeout, and how long acquires took."""

from __future__ import annotations

from ..history import History
from ..metrics import LatencySummary
from ..records.fields import ACQUIRE_TIMEOUT_ERROR
from ..units import format_duration
from ..verdicts import Verdict
from ._report import agent_list, capped, label, percent, plural


def check_graceful_degradation(history: History) -> Verdict:
    """Fail unless every operation was served or refused with an acquire timeout.

    Anything else (an error, an operation cut off by the launcher's own
    operation timeout because the acquire waited without a bound) is a pool that
    did not degrade gracefully under exhaustion.
    """
    total = len(history)
    expected = "every operation served or refused with an acquire timeout"
    if not total:
        return Verdict(
            "graceful degradation",
            True,
            expected,
            "0 of 0 operations",
            message="Nothing to check for graceful degradation: no operation was recorded.",
            inconclusive=True,
        )
    served = sum(op.ok for op in history)
    refused = sum(op.error == ACQUIRE_TIMEOUT_ERROR for op in history)
    others = [op for op in history if not op.ok and op.error != ACQUIRE_TIMEOUT_ERROR]
    measured = f"{served} served, {refused} refused, {len(others)} otherwise failed of {total}"
    if not others:
        message = (
            f"Pool exhaustion degraded gracefully: of {plural(total, 'operation')}, {served} were served and "
            f"{refused} refused with an acquire timeout ({percent(refused, total)}); none failed in any other way."
        )
        return Verdict("graceful degradation", True, expected, measured, message=message)
    groups: dict[tuple[str, str], list[int]] = {}
    for op in others:
        groups.setdefault((label(op.outcome), op.error or ""), []).append(op.agent)
    ranked = sorted(groups.items(), key=lambda item: len(item[1]), reverse=True)
    kinds = "; ".join(f"{len(agents)} {outcome}" + (f" ({code})" if code else "") for (outcome, code), agents in ranked)
    details = [
        {"outcome": outcome, "error code": code, "operations": len(agents), "agents": agent_list(agents)}
        for (outcome, code), agents in ranked
    ]
    message = (
        f"Pool exhaustion did not degrade gracefully: {len(others)} of {plural(total, 'operation')} "
        f"({percent(len(others), total)}) were neither served nor refused with an acquire timeout: {kinds}."
    )
    miss = plural(len(others), "operation") + " failed otherwise"
    return Verdict("graceful degradation", False, expected, measured, miss, message, capped(details))


def describe_acquires(history: History) -> Verdict:
    """Acquire-time percentiles and acquire timeouts (informational: always passes).

    The percentiles cover every acquire, refused ones included (their wait is
    the acquire timeout), so they are the waits agents actually had.
    """
    waits = LatencySummary.of(op.timings["acquire"] for op in history if op.timings and "acquire" in op.timings)
    refused = sum(op.error == ACQUIRE_TIMEOUT_ERROR for op in history)
    figures = ", ".join(f"p{pct:g} {format_duration(value)}" for pct, value in waits.percentiles.items())
    measured = f"{figures}, max {format_duration(waits.max)} over {plural(waits.count, 'acquire')}"
    message = (
        f"Connection acquire times: {measured}; {refused} of {plural(len(history), 'operation')} "
        f"({percent(refused, len(history))}) refused with an acquire timeout."
    )
    row = {
        "acquires": waits.count,
        "served": sum(op.ok for op in history),
        "acquire timeouts": refused,
        **{f"p{pct:g}": format_duration(value) for pct, value in waits.percentiles.items()},
        "max": format_duration(waits.max),
        "mean": format_duration(waits.mean),
    }
    return Verdict(
        "connection acquire",
        True,
        "acquire times (for information)",
        measured,
        message=message,
        details=[row],
        value=refused,
    )
