"""What an injected fault visibly did to a launch: how long progress stalled, how much latency it added."""

from __future__ import annotations

import itertools

from ..history import History
from ..units import format_duration
from ..verdicts import Verdict


def longest_gap_without_success(history: History) -> tuple[int, int, int]:
    """The longest stretch of the launch in which no operation succeeded: (length, from, to), in monotonic ns.

    The launch spans from its first operation's start to its last operation's end.
    """
    if not len(history):
        return 0, 0, 0
    first = min(op.start_ns for op in history)
    last = max(op.end_ns for op in history)
    points = [first, *sorted(op.end_ns for op in history if op.ok), last]
    start, end = max(itertools.pairwise(points), key=lambda gap: gap[1] - gap[0])
    return end - start, start, end


def check_stall(history: History, fault: str, start_ns: int, end_ns: int, tolerance: float) -> Verdict:
    """Progress stopped for about as long as ``fault`` lasted (within ``tolerance`` s), around it, and resumed after.

    Passes when the longest stretch without a successful operation overlaps the
    fault, differs from its length by at most ``tolerance``, and some operation
    succeeded after the fault ended.
    """
    length = (end_ns - start_ns) / 1e9
    gap_ns, gap_start, gap_end = longest_gap_without_success(history)
    gap = gap_ns / 1e9
    resumed = [op.end_ns for op in history if op.ok and op.end_ns > end_ns]
    expected = f"about {format_duration(length)} (± {format_duration(tolerance)}), then progress"
    measured = (
        f"no success for {format_duration(gap)}, from {_offset(gap_start, start_ns)} the {fault} began "
        f"to {_offset(gap_end, end_ns)} it ended"
    )
    problems = []
    if not (gap_start <= end_ns and gap_end >= start_ns):
        problems.append(f"the longest stall ({format_duration(gap)}) was not during the {fault}")
    elif abs(gap - length) > tolerance:
        off = format_duration(abs(gap - length))
        problems.append(f"it lasted {format_duration(gap)}, {off} off the {fault}'s length")
    if not resumed:
        problems.append(f"no operation succeeded after the {fault} ended")
    back = ""
    if resumed:
        back = f"; operations succeeded again {format_duration((min(resumed) - end_ns) / 1e9)} after it ended"
    details = [
        {
            "fault": fault,
            "fault length": format_duration(length),
            "longest stall": format_duration(gap),
            "stall began": _offset(gap_start, start_ns) + " the fault",
            "stall ended": _offset(gap_end, end_ns) + " the fault ended",
            "first success after": format_duration((min(resumed) - end_ns) / 1e9) if resumed else "none",
        }
    ]
    if problems:
        message = f"Progress did not stall just for the {format_duration(length)} {fault}: " + "; ".join(problems)
        message += f" ({measured})."
    else:
        message = f"Progress stalled for {format_duration(gap)} during the {format_duration(length)} {fault}{back}."
    return Verdict(
        f"stall during {fault}", not problems, expected, measured, "; ".join(problems), message, details, value=gap
    )


def check_added_latency(baseline_p50: float, faulted_p50: float, added: float, tolerance: float) -> Verdict:
    """The median latency rose by ``added`` seconds, give or take ``tolerance``."""
    rise = faulted_p50 - baseline_p50
    expected = f"p50 up by {format_duration(added)} (± {format_duration(tolerance)})"
    measured = f"p50 from {format_duration(baseline_p50)} to {format_duration(faulted_p50)}: up by {_signed(rise)}"
    passed = abs(rise - added) <= tolerance
    miss = "" if passed else f"off by {format_duration(abs(rise - added))}"
    message = (
        f"Added latency {'shows' if passed else 'does not show'} in the median: expected it {expected[4:]}, "
        f"measured {measured[4:]}" + ("." if passed else f", {miss}.")
    )
    details = [
        {
            "baseline p50": format_duration(baseline_p50),
            "p50 with the fault": format_duration(faulted_p50),
            "rise": _signed(rise),
            "injected": format_duration(added),
        }
    ]
    return Verdict("added latency", passed, expected, measured, miss, message, details, value=rise)


def _offset(moment_ns: int, reference_ns: int) -> str:
    delta = (moment_ns - reference_ns) / 1e9
    return f"{format_duration(abs(delta))} {'after' if delta >= 0 else 'before'}"


def _signed(seconds: float) -> str:
    return format_duration(seconds) if seconds >= 0 else f"-{format_duration(-seconds)}"
