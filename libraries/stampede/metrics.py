"""Latency percentiles, rates and throughput computed from a launch's history.

Percentiles are exact (nearest rank over the sorted latencies), so what the
report says is what was measured, not an estimate from buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .history import History, Operation
from .launcher import LaunchResult
from .outcomes import Outcome

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[int] | Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for an empty sequence)."""
    if not sorted_values:
        return 0.0
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    # Rounding first: 28 / 100 * 25 is 7.000000000000001, which would give rank 8, not 7.
    rank = max(1, math.ceil(round(pct * len(sorted_values) / 100.0, 9)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Latency figures of a set of operations, in seconds."""

    count: int
    min: float
    mean: float
    max: float
    percentiles: dict[float, float]

    @classmethod
    def of(cls, latencies_ns: Iterable[int]) -> LatencySummary:
        return cls.of_sorted(sorted(latencies_ns))

    @classmethod
    def of_sorted(cls, values: Sequence[int]) -> LatencySummary:
        """The summary of latencies already sorted (no copy is made)."""
        if not values:
            return cls(0, 0.0, 0.0, 0.0, {pct: 0.0 for pct in PERCENTILES})
        return cls(
            count=len(values),
            min=values[0] / 1e9,
            mean=sum(values) / len(values) / 1e9,
            max=values[-1] / 1e9,
            percentiles={pct: percentile(values, pct) / 1e9 for pct in PERCENTILES},
        )

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        metrics = {f"{prefix}min": self.min, f"{prefix}mean": self.mean, f"{prefix}max": self.max}
        metrics.update({f"{prefix}p{pct:g}": value for pct, value in self.percentiles.items()})
        return metrics


@dataclass(frozen=True)
class OutcomeCounts:
    """Operations by final outcome, plus the failed attempts that were retried."""

    operations: int
    attempts: int
    final: dict[Outcome, int]
    retried: dict[Outcome, int]
    retried_operations: int
    exhausted: int

    @classmethod
    def of(cls, operations: Iterable[Operation]) -> OutcomeCounts:
        final = dict.fromkeys(Outcome, 0)
        retried = dict.fromkeys(Outcome, 0)
        count = attempts = retried_operations = exhausted = 0
        for op in operations:
            count += 1
            attempts += op.retries + 1
            final[op.outcome] += 1
            if op.retries:
                retried_operations += 1
                for cause in op.retry_causes:
                    retried[cause] += 1
            if op.exhausted:
                exhausted += 1
        return cls(count, attempts, final, retried, retried_operations, exhausted)

    def attempts_ending(self, outcome: Outcome) -> int:
        """Attempts that ended in ``outcome``, counting retried ones and final ones."""
        return self.final[outcome] + self.retried[outcome]

    def as_metrics(self) -> dict[str, float]:
        ops = self.operations or 1
        attempts = self.attempts or 1
        conflicts = sum(self.attempts_ending(o) for o in Outcome if o.is_concurrency_conflict)
        return {
            "operations": float(self.operations),
            "attempts": float(self.attempts),
            "successes": float(self.final[Outcome.OK]),
            "failures": float(self.operations - self.final[Outcome.OK]),
            "retries": float(self.attempts - self.operations),
            "retries_exhausted": float(self.exhausted),
            "conflicts": float(conflicts),
            "serialization_failures": float(self.attempts_ending(Outcome.SERIALIZATION_FAILURE)),
            "deadlocks": float(self.attempts_ending(Outcome.DEADLOCK)),
            "timeouts": float(self.final[Outcome.TIMEOUT]),
            "errors": float(self.final[Outcome.ERROR]),
            "success_rate": self.final[Outcome.OK] / ops,
            "retry_rate": self.retried_operations / ops,
            "timeout_rate": self.final[Outcome.TIMEOUT] / ops,
            "error_rate": self.final[Outcome.ERROR] / ops,
            "conflict_rate": conflicts / attempts,
            "serialization_failure_rate": self.attempts_ending(Outcome.SERIALIZATION_FAILURE) / attempts,
            "deadlock_rate": self.attempts_ending(Outcome.DEADLOCK) / attempts,
        }


@dataclass(frozen=True)
class LaunchSummary:
    """Every figure of a launch by name, the names thresholds are written in."""

    metrics: dict[str, float]
    latency: LatencySummary
    counts: OutcomeCounts
    by_operation: dict[str, LatencySummary] = field(default_factory=dict)
    loop_lag: LatencySummary = field(default_factory=lambda: LatencySummary.of(()))
    error_codes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, LatencySummary] = field(default_factory=dict)
    """Phases tools timed within operations (e.g. ``acquire``), as metrics ``acquire_p95`` and so on."""


def summarize(result: LaunchResult) -> LaunchSummary:
    return summarize_history(result.history, result.wall_seconds, result.loop_lag_ns)


def summarize_history(history: History, wall_seconds: float, loop_lag_ns: Sequence[int] = ()) -> LaunchSummary:
    # Each latency is computed once and sorted in place, and per-operation lists are built only when
    # there is more than one operation name: a million operations cost about 40 MB and half a second.
    latencies = [op.latency_ns for op in history]
    names = {op.op for op in history}
    error_codes: dict[str, int] = {}
    phases: dict[str, list[int]] = {}
    for op in history:
        if op.error is not None:
            error_codes[op.error] = error_codes.get(op.error, 0) + 1
        if op.timings:
            for phase, value in op.timings.items():
                phases.setdefault(phase, []).append(value)
    by_name: dict[str, list[int]] = {}
    if len(names) > 1:
        for op, op_latency in zip(history, latencies, strict=True):
            by_name.setdefault(op.op, []).append(op_latency)
    latencies.sort()
    latency = LatencySummary.of_sorted(latencies)
    counts = OutcomeCounts.of(history)
    if by_name:
        by_operation = {name: LatencySummary.of(values) for name, values in by_name.items()}
    else:  # one operation name: its figures are the overall ones
        by_operation = dict.fromkeys(names, latency)
    lag = LatencySummary.of(loop_lag_ns)
    metrics = latency.as_metrics()
    metrics["avg"] = metrics["mean"]
    metrics.update(counts.as_metrics())
    metrics["wall_time"] = wall_seconds
    metrics["throughput"] = counts.operations / wall_seconds if wall_seconds > 0 else 0.0
    metrics.update(lag.as_metrics("loop_lag_"))
    for name, summary in by_operation.items():
        metrics.update(summary.as_metrics(f"{name}."))
    timings = {phase: LatencySummary.of(values) for phase, values in sorted(phases.items())}
    for phase, summary in timings.items():
        metrics.update(summary.as_metrics(f"{phase}_"))
        metrics[f"{phase}_count"] = float(summary.count)
    return LaunchSummary(metrics, latency, counts, by_operation, lag, error_codes, timings)
