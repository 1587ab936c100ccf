"""Small wording helpers shared by the checkers, so every verdict reads the same way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..outcomes import Outcome

MAX_ROWS = 20
"""The most rows a verdict's details table holds; the message says when rows were left out."""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 operation``, ``3 operations`` (``nouns`` for irregular plurals)."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def percent(part: int, whole: int) -> str:
    """``part`` as a share of ``whole``, e.g. ``2.4%`` (``0.0%`` of nothing)."""
    return f"{part / whole * 100:.1f}%" if whole else "0.0%"


def label(outcome: Outcome) -> str:
    """An outcome as a reader says it: ``serialization failure``."""
    return outcome.value.replace("_", " ")


def capped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return rows[:MAX_ROWS]


def rows_note(total: int) -> str:
    """`` (the table shows the first 20 of 45)`` when rows were left out, else nothing."""
    return f" (the table shows the first {MAX_ROWS} of {total})" if total > MAX_ROWS else ""


def agent_list(agents: Iterable[int], limit: int = 10) -> str:
    """Sorted distinct agent ids, ``3, 7, 9``, shortened to ``limit`` ids and a count of the rest."""
    ids = sorted(set(agents))
    shown = ", ".join(str(agent) for agent in ids[:limit])
    return shown if len(ids) <= limit else f"{shown} and {len(ids) - limit} more"
