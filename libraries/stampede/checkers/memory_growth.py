"""Memory growth of one sampled process: the RSS it left behind between the first and the last sample."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..resource_usage import ResourceSummary
from ..units import format_duration, format_size
from ..verdicts import Verdict


def check_memory_growth(summary: ResourceSummary, limit: float) -> Verdict:
    """Fail when a process's RSS grew by more than ``limit`` bytes between the first and the last sample."""
    if not limit >= 0:
        raise ConfigurationError(f"The memory growth limit must be 0 or more bytes, got {limit!r}.")
    growth = summary.rss_growth
    passed = growth <= limit
    span = (
        f"from {format_size(summary.rss_start)} to {format_size(summary.rss_end)}, peak {format_size(summary.rss_max)}"
        f", over {format_duration(summary.seconds)}"
    )
    gone = "" if summary.exited_after is None else f" (until it exited after {format_duration(summary.exited_after)})"
    grew = f"grew by {format_size(growth)}" if growth >= 0 else f"shrank by {format_size(-growth)}"
    if passed:
        message = f"Memory of {summary.name} {grew} ({span}){gone}, within the {format_size(limit)} allowed."
    else:
        message = (
            f"Memory of {summary.name} grew by {format_size(growth)} ({span}){gone}, "
            f"more than the {format_size(limit)} allowed, by {format_size(growth - limit)}."
        )
    return Verdict(
        f"{summary.name} memory growth",
        passed,
        f"at most {format_size(limit)}",
        format_size(growth),
        "" if passed else format_size(growth - limit),
        message,
        [
            {
                "process": f"{summary.name} (pid {summary.pid})",
                "rss at start": format_size(summary.rss_start),
                "rss peak": format_size(summary.rss_max),
                "rss at end": format_size(summary.rss_end),
                "growth": format_size(growth),
                "samples": summary.samples,
            }
        ],
        value=growth,
    )
