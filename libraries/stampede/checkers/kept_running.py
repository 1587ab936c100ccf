"""Whether a sampled process kept running until sampling stopped (it did not crash, get killed or run out of memory)."""

from __future__ import annotations

from ..resource_usage import ResourceSummary
from ..units import format_duration, format_size
from ..verdicts import Verdict


def check_stayed_up(summary: ResourceSummary) -> Verdict:
    """Fail when the process went away while it was being sampled (crashed, was killed, ran out of memory)."""
    name = f"{summary.name} kept running"
    if summary.exited_after is None:
        message = f"{summary.name.capitalize()} (pid {summary.pid}) ran throughout {format_duration(summary.seconds)}."
        return Verdict(name, True, "running throughout", "running", message=message)
    after = format_duration(summary.exited_after)
    message = (
        f"{summary.name.capitalize()} (pid {summary.pid}) went away {after} into sampling; "
        f"its last sample showed {format_size(summary.rss_end)} resident."
    )
    return Verdict(name, False, "running throughout", f"gone after {after}", "the process exited", message)
