"""How a launch is shown in log.html: one table a stakeholder can read."""

from __future__ import annotations

from stampede.launcher import WorkersStart
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
    if result.workers_start is not None:
        rows.insert(-1, ("start on workers", _workers_start(result.workers_start)))
    if result.timed_out:
        cut_off = f"unfinished agents {result.unfinished_agents}, hung agents {result.hung_agents}"
        rows.append(("launch timeout", cut_off))
    return table(["", ""], rows, f"Launch {record.number}: {result.tool}")


def _workers_start(start: WorkersStart) -> str:
    def spread(value: int | None) -> str:
        return "none (not every shard started)" if value is None else format_duration(value / 1e9)

    return (
        f"gate spread {spread(start.gate_spread_ns)}, first-operation spread {spread(start.first_operation_spread_ns)}"
        f" (each within ± {format_duration(2 * start.clock_error_ns / 1e9)}); worker clocks: "
        + "; ".join(f"shard {number} {clock}" for number, clock in enumerate(start.clocks, start=1))
    )


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
