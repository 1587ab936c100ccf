"""When a fault that stalls traffic was in force, so a check can line the history up against it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultWindow:
    """A partition or a Redis pause, from start to end in monotonic ns (the history's clock)."""

    fault: str
    start_ns: int
    end_ns: int
