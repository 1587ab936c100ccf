"""How a launch is shown in log.html: one table a stakeholder can read."""

from __future__ import annotations

from stampede.metrics import LatencySummary, LaunchSummary
from stampede.outcomes import Outcome
from stampede.units import format_duration

from .html import table
from .runtime import LaunchRecord


def launch_table(record: LaunchRecord) -> str:
    result, summary = record.result, record.summary
    m = summary.metrics
    rows: list[tuple[str, str]] = [
        ("tool", ", ".join(f"{k}: {v}" for k, v in result.tool_settings.items())),
        ("load", result.plan.describe()),
        (
            "operations",
            f"{m['operations']:.0f} in {format_duration(result.wall_seconds)} ({m['throughput']:.1f} operations/s)",
        ),
        ("success rate", f"{m['success_rate'] * 100:.2f}%"),
        ("conflict rate", f"{m['conflict_rate'] * 100:.2f}% of {m['attempts']:.0f} attempts"),
        ("retries", f"{m['retries']:.0f} (retries exhausted: {m['retries_exhausted']:.0f})"),
        ("outcomes", _outcomes(summary)),
        (
            "latency",
            f"{_percentiles(summary.latency)} over {summary.latency.count} successful operations"
            if summary.latency.count
            else "none: no operation succeeded",
        ),
        ("latency, all operations", f"{_percentiles(summary.all_latency)} (all_p99 and so on)"),
        (
            "event-loop lag",
            f"p50 {format_duration(summary.loop_lag.percentiles[50.0])}, "
            f"p99 {format_duration(summary.loop_lag.percentiles[99.0])}, "
            f"max {format_duration(summary.loop_lag.max)} ({result.loop} loop; "
            "lag inflates every latency above)",
        ),
        ("history", str(record.history_file)),
    ]
    for phase, timing in summary.timings.items():
        if not timing.count:
            rows.insert(-2, (f"{phase} time", "no operation timed it"))
            continue
        rows.insert(-2, (f"{phase} time", f"{_percentiles(timing)} over {timing.count} operations"))
    if summary.error_codes:
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(summary.error_codes.items()))
        rows.insert(7, ("errors by code", codes))
    if result.timed_out:
        cut_off = f"unfinished agents {result.unfinished_agents}, hung agents {result.hung_agents}"
        rows.append(("launch timeout", cut_off))
    return table(["", ""], rows, f"Launch {record.number}: {result.tool}")


def _outcomes(summary: LaunchSummary) -> str:
    counts = summary.counts
    parts = []
    for outcome in Outcome:
        final, retried = counts.final[outcome], counts.retried[outcome]
        if final or retried:
            parts.append(f"{outcome.value}: {final}" + (f" (+{retried} retried)" if retried else ""))
    return ", ".join(parts)


def _percentiles(latency: LatencySummary) -> str:
    shown = ", ".join(f"p{p:g} {format_duration(v)}" for p, v in latency.percentiles.items())
    return f"{shown}, max {format_duration(latency.max)}, mean {format_duration(latency.mean)}"
