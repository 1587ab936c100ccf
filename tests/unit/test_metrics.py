"""Exact percentiles, latency summaries, outcome rates and the launch summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stampede.history import History, Operation
from stampede.metrics import PERCENTILES, LatencySummary, OutcomeCounts, percentile, summarize_history
from stampede.outcomes import Outcome

MS = 1_000_000


def make_op(
    agent: int = 1,
    outcome: Outcome = Outcome.OK,
    *,
    start_ns: int = 0,
    end_ns: int = MS,
    intended_ns: int | None = None,
    name: str = "deduct",
    error: str | None = None,
    retry_causes: tuple[Outcome, ...] = (),
    exhausted: bool = False,
) -> Operation:
    return Operation(
        agent,
        f"user-{agent}",
        name,
        0,
        start_ns,
        end_ns,
        outcome,
        intended_ns=intended_ns,
        error=error,
        retries=len(retry_causes),
        retry_causes=retry_causes,
        exhausted=exhausted,
    )


@pytest.mark.parametrize(("pct", "value"), [(1, 1), (50, 50), (90, 90), (95, 95), (99, 99), (99.5, 100), (100, 100)])
def test_percentile_nearest_rank_of_one_to_hundred(pct: float, value: int) -> None:
    assert percentile(list(range(1, 101)), pct) == value


def test_percentile_of_ten_values() -> None:
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [percentile(values, p) for p in (50, 90, 95, 99)] == [50, 90, 100, 100]


def test_percentile_of_one_value_and_of_none() -> None:
    assert all(percentile([7], pct) == 7.0 for pct in (0.1, 50, 99, 100))
    assert percentile([], 95) == 0.0


def test_percentile_is_not_fooled_by_float_rounding() -> None:
    # 28 / 100 * 25 is 7.000000000000001 in floating point: nearest rank is still 7.
    assert percentile(list(range(1, 26)), 28) == 7
    assert percentile(list(range(1, 251)), 64.4) == 161


@pytest.mark.parametrize("pct", [0, -1, 100.5, 1000])
def test_percentile_out_of_range(pct: float) -> None:
    with pytest.raises(ValueError, match="percentile must be in"):
        percentile([1, 2, 3], pct)


def test_latency_summary_in_seconds() -> None:
    summary = LatencySummary.of([ms * MS for ms in range(100, 0, -1)])
    assert summary.count == 100
    assert summary.min == pytest.approx(0.001)
    assert summary.max == pytest.approx(0.1)
    assert summary.mean == pytest.approx(0.0505)
    assert summary.percentiles == {50.0: 0.05, 90.0: 0.09, 95.0: 0.095, 99.0: 0.099}
    metrics = summary.as_metrics("deduct.")
    assert metrics["deduct.p95"] == 0.095 and metrics["deduct.max"] == 0.1
    assert set(metrics) == {f"deduct.{name}" for name in ("min", "mean", "max", "p50", "p90", "p95", "p99")}


def test_a_summary_of_an_array_is_that_of_its_values_sorted() -> None:
    generator = np.random.default_rng(7)
    for count in [1, 2, 3, 7, 99, 100, 101, 1_000, 4_999]:
        values = generator.integers(0, 50, count) * MS  # duplicates: ties at the ranks
        unsorted = values.copy()
        assert LatencySummary.of_array(values) == LatencySummary.of_sorted(np.sort(values)), count
        assert np.array_equal(values, unsorted), "the array is left as it was"


def test_latency_summary_of_nothing_is_zero() -> None:
    summary = LatencySummary.of([])
    assert (summary.count, summary.min, summary.mean, summary.max) == (0, 0.0, 0.0, 0.0)
    assert summary.percentiles == dict.fromkeys(PERCENTILES, 0.0)


def test_conflict_rate_counts_retried_attempts() -> None:
    counts = OutcomeCounts.of([make_op(1, retry_causes=(Outcome.CONFLICT,) * 3), make_op(2)])
    assert (counts.operations, counts.attempts, counts.retried_operations) == (2, 5, 1)
    assert counts.attempts_ending(Outcome.CONFLICT) == 3
    metrics = counts.as_metrics()
    assert metrics["conflict_rate"] == pytest.approx(3 / 5)
    assert metrics["conflicts"] == 3
    assert metrics["retries"] == 3
    assert metrics["retry_rate"] == 0.5
    assert metrics["success_rate"] == 1.0
    assert metrics["failures"] == 0


def test_rates_of_mixed_outcomes() -> None:
    ops = [
        make_op(1, retry_causes=(Outcome.SERIALIZATION_FAILURE, Outcome.DEADLOCK)),
        make_op(2, Outcome.DEADLOCK, error="40P01", retry_causes=(Outcome.DEADLOCK,), exhausted=True),
        make_op(3, Outcome.TIMEOUT, error="operation_timeout"),
        make_op(4, Outcome.ERROR, error="ValueError"),
    ]
    counts = OutcomeCounts.of(ops)
    metrics = counts.as_metrics()
    assert counts.attempts == 7 and counts.exhausted == 1
    assert metrics["deadlocks"] == 3 and metrics["deadlock_rate"] == pytest.approx(3 / 7)
    assert metrics["serialization_failures"] == 1
    assert metrics["conflicts"] == 4 and metrics["conflict_rate"] == pytest.approx(4 / 7)
    assert metrics["success_rate"] == 0.25 and metrics["failures"] == 3
    assert metrics["timeout_rate"] == 0.25 and metrics["error_rate"] == 0.25
    assert metrics["retries_exhausted"] == 1


def test_rates_of_no_operations_are_zero() -> None:
    metrics = OutcomeCounts.of([]).as_metrics()
    assert metrics["success_rate"] == 0.0 and metrics["conflict_rate"] == 0.0 and metrics["operations"] == 0


def test_latency_counts_from_the_intended_start() -> None:
    # Due at 100 ms, started late at 150 ms, ended at 200 ms: the user waited 100 ms, not 50.
    late = make_op(start_ns=150 * MS, end_ns=200 * MS, intended_ns=100 * MS)
    assert late.latency_ns == 100 * MS
    assert make_op(start_ns=150 * MS, end_ns=200 * MS).latency_ns == 50 * MS
    summary = summarize_history(History([late]), wall_seconds=1.0)
    assert summary.metrics["p50"] == pytest.approx(0.1)
    assert summary.metrics["max"] == pytest.approx(0.1)


def test_summarize_history_names_every_metric() -> None:
    history = History(
        [make_op(agent, end_ns=agent * 10 * MS) for agent in range(1, 11)]
        + [make_op(11, Outcome.ERROR, end_ns=500 * MS, name="lookup", error="KeyError")]
    )
    summary = summarize_history(history, wall_seconds=2.0, loop_lag_ns=[1 * MS, 3 * MS])
    metrics = summary.metrics
    assert metrics["operations"] == 11
    assert metrics["throughput"] == 5.5
    assert metrics["wall_time"] == 2.0
    assert metrics["avg"] == metrics["mean"]
    assert metrics["deduct.p50"] == pytest.approx(0.05)
    assert metrics["deduct.max"] == pytest.approx(0.1)
    assert metrics["lookup.all_p95"] == pytest.approx(0.5)
    assert metrics["all_max"] == pytest.approx(0.5)
    assert metrics["max"] == pytest.approx(0.1)
    assert metrics["loop_lag_max"] == pytest.approx(0.003)
    assert summary.error_codes == {"KeyError": 1}
    assert set(summary.by_operation) == {"deduct", "lookup"}


def test_latencies_are_of_successful_operations_and_all_ones_are_named_all() -> None:
    """A service that fails fast must not pass a latency threshold: its failures are left out of p99."""
    history = History(
        [make_op(1, end_ns=200 * MS)] + [make_op(agent, Outcome.ERROR, end_ns=MS) for agent in range(2, 101)]
    )
    summary = summarize_history(history, wall_seconds=1.0)
    assert summary.metrics["p99"] == pytest.approx(0.2)
    assert summary.metrics["deduct.p50"] == pytest.approx(0.2)
    assert summary.metrics["all_p50"] == pytest.approx(0.001)
    assert str(summary.samples["p99"]) == "1 successful operations (of 100)"
    assert str(summary.samples["all_p99"]) == "100 operations"
    assert str(summary.samples["deduct.p99"]) == "1 successful 'deduct' operations (of 100)"
    assert str(summary.samples["conflict_rate"]) == "100 attempts"
    assert "operations" not in summary.samples


def test_a_figure_of_no_operations_has_no_samples() -> None:
    summary = summarize_history(History([make_op(outcome=Outcome.ERROR)]), wall_seconds=1.0, phases=["run"])
    assert summary.samples["p99"].count == 0
    assert summary.samples["run_p95"].count == 0
    assert str(summary.samples["run_p95"]) == "0 operations that timed 'run' (of 1)"
    assert summarize_history(History([]), wall_seconds=1.0).samples["success_rate"].count == 0


def test_throughput_of_no_wall_time_is_zero() -> None:
    assert summarize_history(History([make_op()]), wall_seconds=0.0).metrics["throughput"] == 0.0


def test_timed_phases_get_percentiles_of_their_own() -> None:
    history = History([make_op(agent) for agent in range(1, 11)])
    for agent, op in enumerate(history, start=1):
        op.timings = {"acquire": agent * MS}
    history[0].timings = {"acquire": MS, "resolution": 7 * MS}
    summary = summarize_history(history, 1.0)
    assert summary.metrics["acquire_p50"] == pytest.approx(0.005)
    assert summary.metrics["acquire_max"] == pytest.approx(0.010)
    assert summary.metrics["acquire_count"] == 10
    assert summary.metrics["resolution_p99"] == pytest.approx(0.007)
    assert summary.metrics["resolution_count"] == 1
    assert list(summary.timings) == ["acquire", "resolution"]


def test_a_history_in_chunks_has_the_figures_its_operations_give_one_by_one(tmp_path: Path) -> None:
    outcomes = [Outcome.OK] * 5 + [Outcome.CONFLICT, Outcome.TIMEOUT, Outcome.ERROR]
    ops = [
        make_op(
            index % 6 + 1,
            outcomes[index % len(outcomes)],
            start_ns=index * MS,
            end_ns=index * MS + (index * 7_919 % 97 + 1) * MS,
            intended_ns=index * MS - MS if index % 4 == 0 else None,
            name="deduct" if index % 3 else "refund",
            error=None if outcomes[index % len(outcomes)] is Outcome.OK else f"E{index % 2}",
            retry_causes=(Outcome.DEADLOCK, Outcome.CONFLICT)[: index % 3],
            exhausted=index % 11 == 0,
        )
        for index in range(101)
    ]
    for index, op in enumerate(ops):
        op.timings = {"acquire": index * 1_000} if index % 2 else None
    chunked = summarize_history(History(ops, directory=tmp_path, chunk_rows=9), 2.0, phases=["acquire", "never"])
    assert chunked.metrics == summarize_history(History(ops), 2.0, phases=["acquire", "never"]).metrics
    assert chunked.counts == OutcomeCounts.of(list(ops)), "the columns count what the operations say"
    assert chunked.latency == LatencySummary.of(op.latency_ns for op in ops if op.ok)
    assert chunked.by_operation["refund"] == LatencySummary.of(
        op.latency_ns for op in ops if op.ok and op.op == "refund"
    )
    assert chunked.error_codes == {"E0": sum(op.error == "E0" for op in ops), "E1": sum(op.error == "E1" for op in ops)}
    assert chunked.timings["acquire"] == LatencySummary.of(index * 1_000 for index in range(1, 101, 2))
    assert chunked.timings["never"].count == 0
