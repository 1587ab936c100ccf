"""Threshold expressions such as ``p95 < 500ms``, ``success_rate >= 99%``, ``conflict_rate < 20%``.

A threshold names a metric, a comparison and a value with its unit. The unit
must suit the metric (a latency needs a time unit, a rate a percentage), so a
typo is an error that says what to write instead, never a silent pass.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from .errors import ConfigurationError
from .units import format_duration
from .verdicts import Verdict

_EXPRESSION = re.compile(
    r"^\s*(?P<metric>[^<>=!]+?)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>-?\d+(?:\.\d+)?)\s*(?P<unit>[^\d\s][^\s]*)?\s*$"
)
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_ALIASES = {"average": "mean", "avg": "mean", "median": "p50"}


class Kind(Enum):
    TIME = "time"
    RATE = "rate"
    THROUGHPUT = "throughput"
    BYTES = "bytes"
    COUNT = "count"


# Exact scales: 57% must become 57/100 exactly as a rate of 57 in 100 is computed
# (57 * 0.01 is 0.5700000000000001, which would fail "success_rate >= 57%" at 57%).
_UNITS: dict[Kind, dict[str, Fraction]] = {
    Kind.TIME: {
        "ns": Fraction(1, 10**9),
        "us": Fraction(1, 10**6),
        "µs": Fraction(1, 10**6),
        "ms": Fraction(1, 1000),
        "s": Fraction(1),
        "min": Fraction(60),
    },
    Kind.RATE: {"%": Fraction(1, 100)},
    Kind.THROUGHPUT: {"": Fraction(1), "ops/s": Fraction(1), "/s": Fraction(1)},
    Kind.BYTES: {
        "b": Fraction(1),
        "kb": Fraction(10**3),
        "mb": Fraction(10**6),
        "gb": Fraction(10**9),
        "kib": Fraction(2**10),
        "mib": Fraction(2**20),
        "gib": Fraction(2**30),
    },
    Kind.COUNT: {"": Fraction(1)},
}
_EXAMPLES = {
    Kind.TIME: "500ms or 2 s",
    Kind.RATE: "a percentage such as 20%",
    Kind.THROUGHPUT: "a number of operations per second such as 100 ops/s",
    Kind.BYTES: "a size such as 500MB",
    Kind.COUNT: "a plain number such as 0",
}
# A latency figure of the launch, of one tool (``deduct.p99.9``) or of a timed phase (``acquire_p95``).
_TIME_METRICS = re.compile(r"(^|[._])(p\d+(\.\d+)?|min|mean|max)$")
# A sampled resource figure of a process (``target_rss_max``, ``harness_cpu_mean``): checked before times.
_RESOURCE_METRICS = re.compile(r"(?:^|_)(cpu|rss|open_files|threads)_(?:mean|max|start|end|growth)$")
_RESOURCE_KINDS = {"cpu": Kind.RATE, "rss": Kind.BYTES}


def metric_kind(name: str) -> Kind:
    """What a metric measures, from its name (the part after a ``tool.`` prefix)."""
    if resource := _RESOURCE_METRICS.search(name):
        return _RESOURCE_KINDS.get(resource[1], Kind.COUNT)
    if _TIME_METRICS.search(name):
        return Kind.TIME
    base = name.rsplit(".", 1)[-1]
    if base.endswith("_time") or base.endswith("_seconds"):
        return Kind.TIME
    if base.endswith("_rate"):
        return Kind.RATE
    if base == "throughput":
        return Kind.THROUGHPUT
    if base.endswith("_bytes") or base.startswith("rss") or base.endswith("_growth"):
        return Kind.BYTES
    return Kind.COUNT


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold: ``metric op value`` with the value in base units."""

    expression: str
    metric: str
    op: str
    value: float
    kind: Kind

    @classmethod
    def parse(cls, expression: str, known_metrics: Collection[str] | None = None) -> Threshold:
        """Parse ``expression``; with ``known_metrics``, an unknown metric is named as such."""
        match = _EXPRESSION.match(expression)
        if not match:
            raise ConfigurationError(
                f"Threshold {expression!r} is not of the form '<metric> <comparison> <value><unit>', "
                "for example 'p95 < 500ms', 'success_rate >= 99%' or 'conflict_rate < 20%'. "
                "Comparisons: <, <=, >, >=, ==, !=."
            )
        metric = match["metric"].strip().lower()
        metric = _ALIASES.get(metric, metric)
        if known_metrics is not None and metric not in known_metrics:
            raise ConfigurationError(_unknown_metric(expression, metric, known_metrics))
        kind = metric_kind(metric)
        unit = (match["unit"] or "").lower()
        scales = _UNITS[kind]
        if unit not in scales:
            wrote = f"unit {match['unit']!r}" if unit else "no unit"
            raise ConfigurationError(
                f"Threshold {expression!r}: {metric} is a {kind.value} metric, but the value has {wrote}; "
                f"write it as {_EXAMPLES[kind]}."
            )
        return cls(expression.strip(), metric, match["op"], float(Fraction(match["value"]) * scales[unit]), kind)

    def evaluate(self, metrics: Mapping[str, float]) -> Verdict:
        if self.metric not in metrics:
            raise ConfigurationError(_unknown_metric(self.expression, self.metric, metrics))
        measured = metrics[self.metric]
        passed = _COMPARISONS[self.op](measured, self.value)
        expected = f"{self.metric} {self.op} {format_value(self.value, self.kind)}"
        shown = format_value(measured, self.kind)
        miss = "" if passed else self._miss(measured)
        message = f"{expected}: measured {shown}" + ("" if passed else f", missed by {miss}")
        return Verdict(self.metric, passed, expected, shown, miss, message)

    def _miss(self, measured: float) -> str:
        gap = abs(measured - self.value)
        if self.op in ("==", "!="):
            return f"{format_value(gap, self.kind)}" if self.op == "==" else "being equal"
        shown = format_value(gap, self.kind) if self.kind is not Kind.RATE else f"{gap * 100:.2f} percentage points"
        if self.value and self.kind is not Kind.RATE:
            return f"{shown} ({gap / abs(self.value) * 100:.1f}%)"
        return shown


def _unknown_metric(expression: str, metric: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(metric, list(known), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"Threshold {expression!r} names metric {metric!r}, which this launch does not have.{hint} "
        f"Known metrics: {', '.join(sorted(m for m in known if '.' not in m))}."
    )


def format_value(value: float, kind: Kind) -> str:
    if kind is Kind.TIME:
        return format_duration(value)
    if kind is Kind.RATE:
        return f"{value * 100:.2f}%"
    if kind is Kind.THROUGHPUT:
        return f"{value:.1f} ops/s"
    if kind is Kind.BYTES:
        return f"{value / 1e6:.1f} MB"
    return f"{value:g}"


def evaluate_thresholds(expressions: list[str], metrics: Mapping[str, float]) -> list[Verdict]:
    """Parse every expression first (so one typo fails before anything is judged), then evaluate."""
    thresholds = [Threshold.parse(expression, metrics.keys()) for expression in expressions]
    return [threshold.evaluate(metrics) for threshold in thresholds]
