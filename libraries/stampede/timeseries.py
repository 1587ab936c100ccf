"""A launch over time: latency percentiles, throughput, errors and busy agents per time bucket.

Built from the history alone (start/end monotonic ns and outcome of each
operation), so what a chart shows is what the checkers judged. Buckets are one
second wide for runs of a minute or so; shorter runs get narrower buckets (a
0.3 s launch in one 1 s bucket would be a single dot) and longer runs wider
ones (so a chart keeps at most ``MAX_BUCKETS`` points). Rates are always per
second, whatever the bucket width.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .history import History
from .history_columns import OUTCOMES, Int64s, joined
from .metrics import percentile
from .outcomes import Outcome

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
    """Cut ``history`` into buckets of ``width`` seconds (a round width fitted to the launch when None).

    Computed from the history's columns with numpy: no operation object is made.
    """
    parts = [
        (
            columns.began_ns(),
            columns.ints("start_ns"),
            columns.ints("end_ns"),
            columns.outcome_codes(),
            columns.ints("agent"),
        )
        for columns in history.columns()
    ]
    if not parts:
        return TimeSeries(width or 1.0, [])
    began, start, end, outcome, agent = (joined(column) for column in zip(*parts, strict=True))
    origin = int(began.min())
    span = (int(end.max()) - origin) / 1e9
    if width is None:
        width = bucket_width(span)
    elif width <= 0:
        raise ValueError(f"bucket width must be positive, got {width}")
    count = max(1, math.ceil(span / width)) if span > 0 else 1
    width_ns = width * 1e9

    def index(t_ns: Int64s) -> Int64s:
        return np.minimum(count - 1, ((t_ns - origin) / width_ns).astype(np.int64))

    last = index(end)
    completed = np.bincount(last, minlength=count).tolist()
    errors = np.bincount(last[outcome != OUTCOMES.index(Outcome.OK)], minlength=count).tolist()
    latency = end - began
    by_bucket = latency[np.lexsort((latency, last))]
    bounds = [0, *itertools.accumulate(completed)]
    active = _active_agents(index(start), last, agent, count)
    buckets = []
    for i in range(count):
        ended = by_bucket[bounds[i] : bounds[i + 1]]
        p50, p95, p99 = (percentile(ended, pct) / 1e9 if len(ended) else None for pct in (50.0, 95.0, 99.0))
        buckets.append(Bucket(i * width, width, completed[i], errors[i], p50, p95, p99, active[i]))
    return TimeSeries(width, buckets)


def _active_agents(first: Int64s, last: Int64s, agent: Int64s, count: int) -> list[int]:
    """Per bucket, the distinct agents with an operation in it: each operation is in its buckets first to last."""
    spans = last - first + 1
    offsets = np.arange(int(spans.sum())) - np.repeat(np.cumsum(spans) - spans, spans)
    bucket = np.repeat(first, spans) + offsets
    agents = int(agent.max()) + 1
    pairs = np.unique(bucket * agents + np.repeat(agent, spans))
    return np.bincount(pairs // agents, minlength=count).tolist()


def latency_curve(latencies_ns: Sequence[int] | Int64s) -> list[tuple[float, float]]:
    """(percentile, latency in seconds) from p0 up to the slowest operation, denser towards the tail.

    Percentiles are spaced evenly on the "nines" scale (50%, 90%, 99%, 99.9% ...
    equally far apart), up to the nines the number of operations can tell apart.
    """
    values = np.sort(np.asarray(latencies_ns, dtype=np.int64))
    if len(values) == 0:
        return []
    nines = max(1.0, math.log10(len(values)))
    steps = 40
    points = [(0.0, int(values[0]) / 1e9)]
    for step in range(1, steps + 1):
        pct = 100.0 * (1.0 - 10.0 ** (-nines * step / steps))
        points.append((pct, percentile(values, pct) / 1e9))
    points.append((100.0, int(values[-1]) / 1e9))
    return points
