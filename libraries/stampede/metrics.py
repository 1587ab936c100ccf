"""Latency percentiles, rates and throughput computed from a launch's history.

Percentiles are exact (nearest rank over the sorted latencies), so what the
report says is what was measured, not an estimate from buckets. A history's
figures are computed from its columns (numpy, one chunk at a time), never from
operation objects. Latencies
(``p99``, ``deduct.p99``) are those of successful operations: a service that
fails fast must not look fast. Every operation's latency, failed ones too, is
``all_p99`` (``deduct.all_p99``). Each figure computed from samples says how
many (:class:`Samples`), so a figure of none is known to measure nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .history import History, Operation
from .history_columns import OUTCOMES, Columns, Int64s, joined
from .launcher import LaunchResult
from .outcomes import Outcome

PERCENTILES = (50.0, 90.0, 95.0, 99.0)
ALL_OPERATIONS = "all_"
"""Prefix of the latency figures over every operation, failed ones too (``all_p99``)."""


@dataclass(frozen=True)
class Samples:
    """How many samples a figure was computed from, and of what (``12 successful operations (of 20)``)."""

    count: int
    of: str

    def __str__(self) -> str:
        return f"{self.count} {self.of}"


def percentile(sorted_values: Sequence[int] | Sequence[float] | Int64s, pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for an empty sequence)."""
    if len(sorted_values) == 0:
        return 0.0
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    return float(sorted_values[_rank(len(sorted_values), pct) - 1])


def _rank(count: int, pct: float) -> int:
    """The nearest rank (from 1) of percentile ``pct`` among ``count`` values."""
    # Rounding first: 28 / 100 * 25 is 7.000000000000001, which would give rank 8, not 7.
    return max(1, math.ceil(round(pct * count / 100.0, 9)))


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
    def of_array(cls, latencies_ns: Int64s) -> LatencySummary:
        """The summary of latencies in a numpy array, exact as of sorted ones.

        Only the values at the ranks wanted (the least, the percentiles', the
        greatest) are put in place, in a copy (``np.partition``), not all of them.
        """
        count = len(latencies_ns)
        if count == 0:
            return cls.of_sorted(latencies_ns)
        ranks = {pct: _rank(count, pct) for pct in PERCENTILES}
        placed = np.partition(latencies_ns, sorted({0, count - 1, *(rank - 1 for rank in ranks.values())}))
        return cls(
            count=count,
            min=int(placed[0]) / 1e9,
            mean=int(latencies_ns.sum()) / count / 1e9,
            max=int(placed[-1]) / 1e9,
            percentiles={pct: float(placed[rank - 1]) / 1e9 for pct, rank in ranks.items()},
        )

    @classmethod
    def of_sorted(cls, values: Sequence[int] | Int64s) -> LatencySummary:
        """The summary of latencies already sorted (no copy is made)."""
        if len(values) == 0:
            return cls(0, 0.0, 0.0, 0.0, {pct: 0.0 for pct in PERCENTILES})
        total = int(values.sum()) if isinstance(values, np.ndarray) else sum(values)
        return cls(
            count=len(values),
            min=int(values[0]) / 1e9,
            mean=total / len(values) / 1e9,
            max=int(values[-1]) / 1e9,
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
        if isinstance(operations, History):
            return cls.of_history(operations)
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

    @classmethod
    def of_history(cls, history: History) -> OutcomeCounts:
        """The counts of a history, from its columns."""
        tally = _Tally()
        for columns in history.columns():
            tally.add(columns)
        return tally.counts()

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


class _Tally:
    """Outcome counts summed a chunk's columns at a time."""

    def __init__(self) -> None:
        self.final = np.zeros(len(OUTCOMES), dtype=np.int64)
        self.retried = np.zeros(len(OUTCOMES), dtype=np.int64)
        self.operations = self.attempts = self.retried_operations = self.exhausted = 0

    def add(self, columns: Columns) -> None:
        retries = columns.ints("retries")
        self.operations += columns.rows
        self.attempts += columns.rows + int(retries.sum())
        self.final += np.bincount(columns.outcome_codes(), minlength=len(OUTCOMES))
        self.retried_operations += int(np.count_nonzero(retries))
        self.retried += np.bincount(columns.retry_causes(), minlength=len(OUTCOMES))
        self.exhausted += int(np.count_nonzero(columns.batch.column("exhausted").to_numpy(zero_copy_only=False)))

    def counts(self) -> OutcomeCounts:
        return OutcomeCounts(
            self.operations,
            self.attempts,
            dict(zip(OUTCOMES, map(int, self.final), strict=True)),
            dict(zip(OUTCOMES, map(int, self.retried), strict=True)),
            self.retried_operations,
            self.exhausted,
        )


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
    samples: dict[str, Samples] = field(default_factory=dict)
    """What each figure computed from samples was computed from; a figure not here (a count) is always measured."""
    all_latency: LatencySummary = field(default_factory=lambda: LatencySummary.of(()))
    """Every operation's latency, failed ones too (``latency`` is the successful ones')."""


def summarize(result: LaunchResult, phases: Sequence[str] = ()) -> LaunchSummary:
    """The launch's figures; ``phases`` a tool times (``acquire``) are figures even when no operation timed them."""
    return summarize_history(result.history, result.wall_seconds, result.loop_lag_ns, phases)


def _of(noun: str, count: int, total: int) -> str:
    return noun if count == total else f"{noun} (of {total})"


class _Figures:
    """Metrics by name and what each was computed from, filled in one family at a time."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.samples: dict[str, Samples] = {}

    def latency(self, summary: LatencySummary, prefix: str, of: str, total: int | None = None) -> None:
        figures = summary.as_metrics(prefix)
        self.metrics.update(figures)
        basis = Samples(summary.count, of if total is None else _of(of, summary.count, total))
        self.samples.update(dict.fromkeys(figures, basis))

    def counts(self, counts: OutcomeCounts) -> None:
        figures = counts.as_metrics()
        self.metrics.update(figures)
        for name in figures:
            if name not in ("operations", "attempts"):  # counts of the launch itself: always measured
                over_attempts = name.endswith("_rate") and name not in _PER_OPERATION_RATES
                self.samples[name] = (
                    Samples(counts.attempts, "attempts") if over_attempts else Samples(counts.operations, "operations")
                )


def summarize_history(
    history: History, wall_seconds: float, loop_lag_ns: Sequence[int] = (), phases: Sequence[str] = ()
) -> LaunchSummary:
    latencies, tally = _Latencies(phases), _Tally()
    for columns in history.columns():  # one pass: a chunk file is read once
        latencies.add(columns)
        tally.add(columns)
    counts = tally.counts()
    operations = counts.operations
    per_name = {
        name: (LatencySummary.of_array(joined(ok)), LatencySummary.of_array(joined([*ok, *failed])))
        for name, (ok, failed) in latencies.by_name.items()
    }
    if len(per_name) == 1:  # one operation name: its figures are the overall ones
        latency, all_latency = next(iter(per_name.values()))
    else:
        parts = latencies.by_name.values()
        latency = LatencySummary.of_array(joined([part for ok, _ in parts for part in ok]))
        all_latency = LatencySummary.of_array(joined([part for ok, failed in parts for part in [*ok, *failed]]))
    lag = LatencySummary.of(loop_lag_ns)
    figures = _Figures()
    figures.latency(latency, "", "successful operations", operations)
    figures.metrics["avg"] = figures.metrics["mean"]
    figures.samples["avg"] = figures.samples["mean"]
    figures.latency(all_latency, ALL_OPERATIONS, "operations")
    figures.counts(counts)
    figures.metrics["wall_time"] = wall_seconds
    figures.metrics["throughput"] = operations / wall_seconds if wall_seconds > 0 else 0.0
    figures.samples["throughput"] = Samples(operations, "operations")
    figures.latency(lag, "loop_lag_", "loop lag samples")
    for name, (ok_summary, every_summary) in per_name.items():
        figures.latency(ok_summary, f"{name}.", f"successful {name!r} operations", every_summary.count)
        figures.latency(every_summary, f"{name}.{ALL_OPERATIONS}", f"{name!r} operations")
    timings = {phase: LatencySummary.of_array(joined(parts)) for phase, parts in sorted(latencies.timed.items())}
    for phase, summary in timings.items():
        figures.latency(summary, f"{phase}_", f"operations that timed {phase!r}", operations)
        figures.metrics[f"{phase}_count"] = float(summary.count)
    by_operation = {name: ok_summary for name, (ok_summary, _) in per_name.items()}
    return LaunchSummary(
        figures.metrics,
        latency,
        counts,
        by_operation,
        lag,
        latencies.error_codes,
        timings,
        figures.samples,
        all_latency,
    )


class _Latencies:
    """A history's latencies gathered from its columns a chunk at a time: per operation name, per timed phase,
    and its error codes."""

    def __init__(self, phases: Sequence[str]) -> None:
        self.by_name: dict[str, tuple[list[Int64s], list[Int64s]]] = {}
        """Per operation name (in order of first appearance): its successful operations' latencies and the others'."""
        self.timed: dict[str, list[Int64s]] = {phase: [] for phase in phases}
        self.error_codes: dict[str, int] = {}

    def add(self, columns: Columns) -> None:
        latency = columns.latency_ns()
        ok = columns.outcome_codes() == _OK_CODE
        codes, names = columns.codes("op")
        for code, name in enumerate(names):
            of_name = codes == code
            ok_parts, failed_parts = self.by_name.setdefault(name, ([], []))
            ok_parts.append(latency[of_name & ok])
            failed_parts.append(latency[of_name & ~ok])
        errors, error_names = columns.codes("error")
        for code, count in enumerate(np.bincount(errors[errors >= 0], minlength=len(error_names)).tolist()):
            if count:
                self.error_codes[error_names[code]] = self.error_codes.get(error_names[code], 0) + count
        for phase, values in columns.timings().items():
            self.timed.setdefault(phase, []).append(values)


_OK_CODE = OUTCOMES.index(Outcome.OK)
_PER_OPERATION_RATES = frozenset({"success_rate", "retry_rate", "timeout_rate", "error_rate"})
