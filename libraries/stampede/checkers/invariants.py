"""SQL invariants: every sample of the query returned what it must (true, or the expected value)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records.invariants import InvariantSample
from ..units import format_duration
from ..verdicts import Verdict
from ._report import MAX_ROWS, capped, plural, rows_note

NAME = "invariant"


def shown(value: Any) -> str:
    """A query's value as SQL would print it: ``true``, ``NULL``, ``1000``."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def holds(value: Any, expected: Any) -> bool:
    """Whether ``value`` is ``expected``: true is only ``true`` (not 1), and NULL never holds."""
    if value is None:
        return False
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    return bool(value == expected)


def _when(sample: InvariantSample) -> str:
    if sample.at_ns is None:
        return "now"
    at = format_duration(max(sample.at_ns, 0) / 1e9)
    return f"{at} into the launch" if sample.during else f"{at} after the launch started, once it had ended"


def check_invariant(
    samples: Sequence[InvariantSample], *, query: str, expected: Any, during: bool = False, every: float | None = None
) -> Verdict:
    """Fail on the first sample that broke the invariant; with nothing sampled while the launch ran, inconclusive.

    ``during`` says the samples were taken while a launch ran (every ``every``
    s) plus once after it: then at least one must have been taken during it.
    """
    wanted = shown(expected)
    ran = [sample for sample in samples if sample.during]
    if not samples or (during and not ran):
        why = (
            "the launch ended before the first sample could be taken during it: launch for longer or sample more "
            "often (every=)"
            if during
            else "the query was never run"
        )
        return Verdict(
            NAME,
            True,
            wanted,
            "nothing sampled",
            message=f"Invariant not judged: {why}. Query: {query}",
            inconclusive=True,
        )
    broken = [(number, sample) for number, sample in enumerate(samples, 1) if not holds(sample.value, expected)]
    rows = [
        {
            "sample": number,
            "taken": _when(sample),
            "value": shown(sample.value),
            "held": "yes" if holds(sample.value, expected) else "NO",
        }
        for number, sample in enumerate(samples, 1)
    ]
    if not broken:
        where = (
            f" {plural(len(ran), 'sample')} every {format_duration(every or 0)} during the launch and "
            f"{plural(len(samples) - len(ran), 'sample')} after it;"
            if during
            else ""
        )
        message = f"Invariant held in {plural(len(samples), 'sample')}:{where} {query} returned {wanted}."
        measured = f"{wanted} in {plural(len(samples), 'sample')}"
        return Verdict(NAME, True, wanted, measured, message=message, details=capped(rows), value=0)
    number, first = broken[0]
    shown_rows = rows if len(rows) <= MAX_ROWS else [rows[n - 1] for n, _ in broken]
    message = (
        f"Invariant broken: {query} returned {shown(first.value)} {_when(first)} (sample {number} of "
        f"{len(samples)}); expected {wanted}. {len(broken)} of {plural(len(samples), 'sample')} broke it"
        f"{rows_note(len(shown_rows))}."
    )
    measured = f"{shown(first.value)} in {len(broken)} of {plural(len(samples), 'sample')}"
    return Verdict(
        NAME, False, wanted, measured, f"{len(broken)} broken", message, capped(shown_rows), value=len(broken)
    )
