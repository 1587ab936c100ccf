"""Threshold expressions such as ``p95 < 500ms``, ``success_rate >= 99%``, ``conflict_rate < 20%``.

A threshold names a metric, a comparison and a value with its unit. The unit
must suit the metric (a latency needs a time unit, a rate a percentage), so a
typo is an error that says what to write instead, never a silent pass. A
figure computed from no samples (no successful operation to take a p99 of) is
inconclusive, which fails: there was nothing to measure. Every message gives
the sample count and shows the measured value and the bound at a precision
where they differ.
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
from .metrics import Samples
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
_MAX_EXTRA_DIGITS = 6
_LEADING_NUMBER = re.compile(r"^(-?[\d.]+)\s*(.*)$")
# A phase a tool times (``run_p95``, ``acquire_count``), and a figure of one tool's operations (``deduct.p99``).
_PHASE_METRIC = re.compile(r"^(?P<phase>[^.]+?)_(?:p\d+(?:\.\d+)?|min|mean|max|count)$")
_TOOL_METRIC = re.compile(r"^(?P<tool>.+)\.(?:all_)?(?:p\d+(?:\.\d+)?|min|mean|max)$")


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
        written = match["metric"].strip()
        # Launch-wide names are lower case; a tool's own (``Deduct.p99``) keep the case the tool's name has.
        metric = written if "." in written else _ALIASES.get(written.lower(), written.lower())
        if known_metrics is not None:
            found = resolve_metric(metric, known_metrics)
            if found is None:
                raise ConfigurationError(unknown_metric(expression, metric, known_metrics))
            metric = found
        kind = metric_kind(metric.lower())
        unit = (match["unit"] or "").lower()
        scales = _UNITS[kind]
        if unit not in scales:
            wrote = f"unit {match['unit']!r}" if unit else "no unit"
            raise ConfigurationError(
                f"Threshold {expression!r}: {metric} is a {kind.value} metric, but the value has {wrote}; "
                f"write it as {_EXAMPLES[kind]}."
            )
        return cls(expression.strip(), metric, match["op"], float(Fraction(match["value"]) * scales[unit]), kind)

    def evaluate(self, metrics: Mapping[str, float], samples: Mapping[str, Samples] | None = None) -> Verdict:
        """Judge the threshold; with ``samples``, a figure of none is inconclusive and every message counts them."""
        metric = resolve_metric(self.metric, metrics)
        if metric is None:
            raise ConfigurationError(unknown_metric(self.expression, self.metric, metrics))
        basis = samples.get(metric) if samples is not None else None
        if basis is not None and basis.count == 0:
            expected = f"{metric} {self.op} {format_value(self.value, self.kind)}"
            message = f"{expected}: nothing to measure, there were {basis}"
            return Verdict(metric, False, expected, f"nothing ({basis})", "", message, inconclusive=True)
        measured = metrics[metric]
        passed = _COMPARISONS[self.op](measured, self.value)
        shown, bound = shown_apart(measured, self.value, self.kind)
        expected = f"{metric} {self.op} {bound}"
        over = f" over {basis}" if basis is not None else ""
        miss = "" if passed else self._miss(measured)
        message = f"{expected}: measured {shown}{over}" + ("" if passed else f", missed by {miss}")
        return Verdict(metric, passed, expected, shown + over, miss, message, value=measured)

    def _miss(self, measured: float) -> str:
        gap = abs(measured - self.value)
        if self.op == "!=" or gap == 0:
            return "being equal"
        shown = format_gap(gap, self.kind)
        if self.value and self.kind is not Kind.RATE and self.op != "==":
            return f"{shown} ({gap / abs(self.value) * 100:.1f}%)"
        return shown


def resolve_metric(name: str, known: Collection[str]) -> str | None:
    """``name`` as the launch spells it: exactly, or else the one metric that differs only in case."""
    if name in known:
        return name
    folded = [metric for metric in known if metric.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def shown_apart(measured: float, bound: float, kind: Kind) -> tuple[str, str]:
    """Both values formatted alike, with as many more digits as it takes for their order to show."""
    extra = digits_apart(measured, bound, kind)
    return format_value(measured, kind, extra), format_value(bound, kind, extra)


def digits_apart(measured: float, bound: float, kind: Kind) -> int:
    """How many digits finer than usual ``measured`` and ``bound`` must be shown for their order to show."""
    for extra in range(_MAX_EXTRA_DIGITS):
        shown, limit = format_value(measured, kind, extra), format_value(bound, kind, extra)
        if measured == bound or _order_shows(measured, bound, shown, limit):
            return extra
    return _MAX_EXTRA_DIGITS


def _order_shows(measured: float, bound: float, shown: str, limit: str) -> bool:
    a, b = _LEADING_NUMBER.match(shown), _LEADING_NUMBER.match(limit)
    if a is None or b is None or a[2] != b[2]:
        return shown != limit  # different units (800 µs, 1.2 ms): the unit shows the order
    return (float(a[1]) > float(b[1])) == (measured > bound) and float(a[1]) != float(b[1])


def format_gap(gap: float, kind: Kind) -> str:
    """A gap that is not zero, at a precision where it does not read as zero."""
    for extra in range(_MAX_EXTRA_DIGITS + 1):
        shown = f"{gap * 100:.{2 + extra}f} percentage points" if kind is Kind.RATE else format_value(gap, kind, extra)
        number = _LEADING_NUMBER.match(shown)
        if number is None or float(number[1]) != 0:
            break
    return shown


def unknown_metric(expression: str, metric: str, known: Collection[str]) -> str:
    """Why ``metric`` (in ``expression``) is not among the ``known`` ones: nothing produced it, or a typo."""
    start = f"Threshold {expression!r} names metric {metric!r}" if expression != metric else f"Metric {metric!r}"
    phases = sorted(name[: -len("_count")] for name in known if name.endswith("_count"))
    tools = sorted({name.split(".", 1)[0] for name in known if "." in name and not _TIME_METRICS.match(name)})
    if (phase := _PHASE_METRIC.match(metric)) and phase["phase"] not in phases and metric_kind(metric) is Kind.TIME:
        return (
            f"{start}, but no operation of this launch timed a phase {phase['phase']!r}, so there is nothing to "
            f"measure (phases timed: {', '.join(phases) or 'none'})."
        )
    if (tool := _TOOL_METRIC.match(metric)) and tool["tool"] not in tools:
        return (
            f"{start}, but no operation of this launch was named {tool['tool']!r}, so there is nothing to measure "
            f"(operations: {', '.join(tools) or 'none'})."
        )
    close = difflib.get_close_matches(metric, list(known), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return (
        f"{start}, which this launch does not have.{hint} "
        f"Known metrics: {', '.join(sorted(m for m in known if '.' not in m))}."
    )


def format_value(value: float, kind: Kind, extra_digits: int = 0) -> str:
    """``value`` in the unit of its kind, ``extra_digits`` finer than usual."""
    if kind is Kind.TIME:
        return format_duration(value, extra_digits)
    if kind is Kind.RATE:
        return f"{value * 100:.{2 + extra_digits}f}%"
    if kind is Kind.THROUGHPUT:
        return f"{value:.{1 + extra_digits}f} ops/s"
    if kind is Kind.BYTES:
        return f"{value / 1e6:.{1 + extra_digits}f} MB"
    return f"{value:.{extra_digits}f}" if extra_digits else f"{value:g}"


def evaluate_thresholds(
    expressions: list[str], metrics: Mapping[str, float], samples: Mapping[str, Samples] | None = None
) -> list[Verdict]:
    """Parse every expression first (so one typo fails before anything is judged), then evaluate."""
    return [threshold.evaluate(metrics, samples) for threshold in parse_thresholds(expressions, metrics.keys())]


def parse_thresholds(expressions: list[str], known_metrics: Collection[str] | None = None) -> list[Threshold]:
    """Every expression parsed (with ``known_metrics``, each metric named among them); none at all is an error."""
    if not expressions:
        raise ConfigurationError("Give at least one threshold, e.g. 'p95 < 500ms' or 'success_rate >= 99%'.")
    return [Threshold.parse(expression, known_metrics) for expression in expressions]
