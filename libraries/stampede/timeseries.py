"""A launch over time: latency percentiles, throughput, errors and busy agents per time bucket.

Built from the history alone (start/end monotonic ns and outcome of each
operation), so what a chart shows is what the checkers judged. Buckets are one
second wide for runs of a minute or so; shorter runs get narrower buckets (a
0.3 s launch in one 1 s bucket would be a single dot) and longer runs wider
ones (so a chart keeps at most ``MAX_BUCKETS`` points). Rates are always per
second, whatever the bucket width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .history import History, Operation
from .metrics import percentile

MAX_BUCKETS = 120
_ROUND_WIDTHS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
MIN_BUCKETS = 20
"""A launch too short for this many 1 s buckets gets narrower ones (down to 10 ms)."""


@dataclass(frozen=True)
class Bucket:
    """What happened in ``[start, start + width)`` seconds after the launch's first operation began."""

    start: float
    width: float
    completed: int
    """Operations that ended in the bucket."""
    errors: int
    """Of those, the ones whose final outcome was not ok."""
    p50: float | None
    p95: float | None
    p99: float | None
    """Latency percentiles (seconds) of the operations that ended in the bucket; None when none did."""
    active_agents: int
    """Agents with an operation in flight at some time during the bucket."""

    @property
    def throughput(self) -> float:
        """Operations completed per second."""
        return self.completed / self.width

    @property
    def error_rate(self) -> float:
        """Operations that ended not ok, per second."""
        return self.errors / self.width


@dataclass(frozen=True)
class TimeSeries:
    """A launch cut into equal buckets from its first operation's start to its last operation's end."""

    width: float
    buckets: list[Bucket]


def bucket_width(span_seconds: float) -> float:
    """1 s when that gives ``MIN_BUCKETS`` to ``MAX_BUCKETS`` buckets; else the round width nearest that range."""
    if span_seconds >= MIN_BUCKETS:
        wider = (w for w in _ROUND_WIDTHS if w >= 1.0 and span_seconds / w <= MAX_BUCKETS)
        return next(wider, _ROUND_WIDTHS[-1] * math.ceil(span_seconds / (_ROUND_WIDTHS[-1] * MAX_BUCKETS)))
    return next((w for w in reversed(_ROUND_WIDTHS) if w < 1.0 and span_seconds / w >= MIN_BUCKETS), _ROUND_WIDTHS[0])


def time_series(history: History, width: float | None = None) -> TimeSeries:
    """Cut ``history`` into buckets of ``width`` seconds (a round width fitted to the launch when None)."""
    operations = list(history)
    if not operations:
        return TimeSeries(width or 1.0, [])
    origin = min(_began(op) for op in operations)
    end = max(op.end_ns for op in operations)
    span = (end - origin) / 1e9
    if width is None:
        width = bucket_width(span)
    elif width <= 0:
        raise ValueError(f"bucket width must be positive, got {width}")
    count = max(1, math.ceil(span / width)) if span > 0 else 1
    latencies: list[list[int]] = [[] for _ in range(count)]
    errors = [0] * count
    agents: list[set[int]] = [set() for _ in range(count)]
    width_ns = width * 1e9

    def index(t_ns: int) -> int:
        return min(count - 1, int((t_ns - origin) / width_ns))

    for op in operations:
        last = index(op.end_ns)
        latencies[last].append(op.latency_ns)
        if not op.ok:
            errors[last] += 1
        for i in range(index(op.start_ns), last + 1):
            agents[i].add(op.agent)
    buckets = []
    for i in range(count):
        ended = sorted(latencies[i])
        p50, p95, p99 = (percentile(ended, pct) / 1e9 if ended else None for pct in (50.0, 95.0, 99.0))
        buckets.append(Bucket(i * width, width, len(ended), errors[i], p50, p95, p99, len(agents[i])))
    return TimeSeries(width, buckets)


def _began(op: Operation) -> int:
    """When the operation's latency starts counting: its intended start under a fixed rate, else its start."""
    return op.end_ns - op.latency_ns


def latency_curve(latencies_ns: Sequence[int]) -> list[tuple[float, float]]:
    """(percentile, latency in seconds) from p0 up to the slowest operation, denser towards the tail.

    Percentiles are spaced evenly on the "nines" scale (50%, 90%, 99%, 99.9% ...
    equally far apart), up to the nines the number of operations can tell apart.
    """
    values = sorted(latencies_ns)
    if not values:
        return []
    nines = max(1.0, math.log10(len(values)))
    steps = 40
    points = [(0.0, values[0] / 1e9)]
    for step in range(1, steps + 1):
        pct = 100.0 * (1.0 - 10.0 ** (-nines * step / steps))
        points.append((pct, percentile(values, pct) / 1e9))
    points.append((100.0, values[-1] / 1e9))
    return points
