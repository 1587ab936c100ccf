"""The charts of a launch (latency, throughput, errors, busy agents) and of a resource sampling (CPU, RSS)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from stampede.checkers._report import plural
from stampede.history import History
from stampede.resource_usage import ResourceRecording
from stampede.timeseries import latency_curve, time_series
from stampede.units import format_duration

from .charts import Chart, Series, line_chart

_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"))
_NINES = ((50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9"), (99.99, "p99.99"), (99.999, "p99.999"))


def time_unit(largest_seconds: float) -> tuple[float, str]:
    """The unit latencies up to ``largest_seconds`` read best in: (seconds per unit, its name)."""
    return next(((scale, name) for scale, name in _TIME_UNITS if largest_seconds >= scale), _TIME_UNITS[-1])


def launch_charts(history: History, label: str) -> list[Chart]:
    """Latency over time, latency distribution, throughput and errors over time, active agents over time."""
    series = time_series(history)
    if not series.buckets:
        return []
    width = format_duration(series.width)
    starts = [bucket.start for bucket in series.buckets]
    scale, unit = time_unit(max((b.p99 or 0.0) for b in series.buckets))

    def latencies(pct: str) -> Series:
        values = [getattr(bucket, pct) for bucket in series.buckets]
        return Series(pct, [(t, v / scale if v is not None else None) for t, v in zip(starts, values, strict=True)])

    curve = latency_curve(history.latencies_ns())
    curve_scale, curve_unit = time_unit(curve[-1][1])
    # The slowest operation sits where the 1-in-n tail ends, not at "infinitely many nines".
    slowest = math.log10(len(history)) if len(history) > 1 else 1.0

    def x(pct: float) -> float:
        return min(_nines(pct), slowest)

    nines = [(0.0, "min"), *((x(pct), name) for pct, name in _NINES if _nines(pct) < slowest - 0.15), (slowest, "max")]
    return [
        line_chart(
            f"{label}: latency over time (per {width})",
            [latencies("p50"), latencies("p95"), latencies("p99")],
            "seconds since the launch began",
            f"latency ({unit})",
        ),
        line_chart(
            f"{label}: latency distribution ({plural(len(history), 'operation')})",
            [Series("latency", [(x(pct), value / curve_scale) for pct, value in curve])],
            "percentile of operations (tail stretched)",
            f"latency ({curve_unit})",
            x_ticks=nines,
        ),
        line_chart(
            f"{label}: throughput and errors (per {width})",
            [
                Series("completed", [(b.start, b.throughput) for b in series.buckets]),
                Series("not ok", [(b.start, b.error_rate) for b in series.buckets]),
            ],
            "seconds since the launch began",
            "operations per second",
        ),
        line_chart(
            f"{label}: active agents (per {width})",
            [Series("agents with an operation in flight", [(b.start, b.active_agents) for b in series.buckets])],
            "seconds since the launch began",
            "agents",
        ),
    ]


def _nines(pct: float) -> float:
    """Position of a percentile on the "nines" scale: p0 at 0, p90 at 1, p99 at 2, p99.9 at 3."""
    return -math.log10(max(1e-9, 1.0 - pct / 100.0))


def resource_charts(recording: ResourceRecording) -> list[Chart]:
    """CPU and RSS over time of every sampled process (harness, target)."""
    traces = [trace for trace in recording.traces.values() if trace.samples]
    if not traces:
        return []
    origin = min(trace.samples[0].t_ns for trace in traces)

    def seconds(t_ns: int) -> float:
        return (t_ns - origin) / 1e9

    cpu = [Series(f"{t.name} (pid {t.pid})", [(seconds(s.t_ns), s.cpu_percent) for s in t.samples[1:]]) for t in traces]
    rss = [Series(f"{t.name} (pid {t.pid})", [(seconds(s.t_ns), s.rss / 1e6) for s in t.samples]) for t in traces]
    every = format_duration(recording.interval)
    return [
        line_chart(f"CPU (sampled every {every})", cpu, "seconds since sampling began", "CPU (% of one core)"),
        line_chart(f"Memory, RSS (sampled every {every})", rss, "seconds since sampling began", "RSS (MB)"),
    ]


def inline_html(charts: Sequence[Chart]) -> str:
    """Charts side by side as inline SVG, wrapping to the width of the log."""
    cells = "".join(f"<div style='display:inline-block;margin:4px'>{chart.svg}</div>" for chart in charts)
    return f"<div>{cells}</div>"
