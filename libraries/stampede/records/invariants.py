"""What an SQL invariant's sampling recorded: the value its query returned, and when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InvariantSample:
    """One answer of the invariant query."""

    value: Any
    at_ns: int | None = None
    """When the query was sent, in ns since the launch started; None for a query not tied to a launch."""
    during: bool = False
    """Whether the launch was still running when the query was sent (False: after it ended, or no launch)."""
