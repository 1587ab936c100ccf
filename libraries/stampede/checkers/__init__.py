"""Checkers: each reads a history and returns a :class:`~stampede.verdicts.Verdict`.

A checker never raises on what it finds; it says what was expected, what was
measured and by how much it missed, and lists the offending operations (at most
``MAX_ROWS`` of them) in ``details``. When a history holds nothing a checker can
judge, the verdict is ``inconclusive``: not passed, and the keyword that asked
for it fails saying what was missing.
"""

from ._report import MAX_ROWS
from .conservation import check_conservation
from .fields_kept import check_fields_kept
from .lost_updates import check_lost_updates
from .outcomes import check_all_succeeded, check_retries_not_exhausted, classify_outcomes

__all__ = [
    "MAX_ROWS",
    "check_all_succeeded",
    "check_conservation",
    "check_fields_kept",
    "check_lost_updates",
    "check_retries_not_exhausted",
    "classify_outcomes",
]
