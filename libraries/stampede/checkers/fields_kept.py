"""No field update lost: every field of a JSON document keeps its last successful write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..history import History, Operation
from ..verdicts import Verdict
from ._report import capped, plural, rows_note

MISSING = "(missing)"
_ABSENT = object()


def check_fields_kept(history: History, final_document: Mapping[str, Any]) -> Verdict:
    """Check that ``final_document`` holds, for each field, the value of its last successful write.

    Each successful operation records ``written={"config": id, "version": v,
    "field": "agent_3", "value": ...}``; the last write of a field is the one that
    ended last. The history should cover one document. Operations without a
    ``field`` and a ``value`` are left out; when none is left the verdict is
    inconclusive (not passed).
    """
    last: dict[Any, Operation] = {}
    for op in history.successful():
        written = op.written
        if isinstance(written, Mapping) and "field" in written and "value" in written:
            earlier = last.get(written["field"])
            if earlier is None or op.end_ns >= earlier.end_ns:
                last[written["field"]] = op
    if not last:
        return Verdict(
            "fields kept",
            True,
            "every field keeps its last successful write",
            "0 of 0 fields checkable",
            message=(
                "Nothing to check for lost field updates: no successful operation recorded which field it "
                "wrote and the value, so lost field updates can be neither confirmed nor ruled out."
            ),
            inconclusive=True,
        )
    details = []
    missing = 0
    for field in sorted(last, key=str):
        op = last[field]
        found = final_document.get(field, _ABSENT)
        if found is _ABSENT or found != op.written["value"]:
            missing += found is _ABSENT
            details.append(
                {
                    "field": field,
                    "expected value": op.written["value"],
                    "found value": MISSING if found is _ABSENT else found,
                    "writer agent": op.agent,
                }
            )
    total = len(last)
    kept = total - len(details)
    expected = f"{total} of {total} fields kept"
    measured = f"{kept} of {total} fields kept"
    if not details:
        message = f"No field update lost: {total} of {total} fields hold the value of their last successful write."
        return Verdict("fields kept", True, expected, measured, message=message)
    message = (
        f"Field updates were lost: expected {total} of {total} fields to hold the value of their last "
        f"successful write, but {len(details)} {'does' if len(details) == 1 else 'do'} not ({missing} missing, "
        f"{len(details) - missing} with "
        f"another value): {plural(len(details), 'field update')} lost{rows_note(len(details))}."
    )
    miss = plural(len(details), "field update") + " lost"
    return Verdict("fields kept", False, expected, measured, miss, message, capped(details))
