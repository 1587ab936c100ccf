"""A launch over time: buckets of latency percentiles, throughput, errors and busy agents; the latency curve."""

from __future__ import annotations

import pytest

from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.timeseries import MAX_BUCKETS, bucket_width, latency_curve, time_series

MS = 1_000_000
S = 1_000_000_000


def op(
    agent: int, start_ns: int, end_ns: int, outcome: Outcome = Outcome.OK, intended_ns: int | None = None
) -> Operation:
    return Operation(agent, f"user-{agent}", "deduct", 0, start_ns, end_ns, outcome, intended_ns=intended_ns)


def test_operations_fall_in_the_bucket_they_ended_in_with_exact_percentiles_and_rates_per_second() -> None:
    history = History(
        [
            op(1, 0, 100 * MS),
            op(2, 0, 300 * MS),
            op(1, 100 * MS, 1500 * MS, Outcome.CONFLICT),
            op(2, 300 * MS, 1900 * MS),
        ]
        + [op(3, i * S, i * S + 10 * MS) for i in range(2, 21)]  # a third agent keeps the launch 20 s long
    )
    series = time_series(history)
    assert series.width == 1.0
    assert len(series.buckets) == 21
    first, second = series.buckets[0], series.buckets[1]
    assert (first.start, first.completed, first.errors, first.throughput) == (0.0, 2, 0, 2.0)
    assert (first.p50, first.p95, first.p99) == (0.1, 0.3, 0.3)
    assert (second.completed, second.errors, second.error_rate) == (2, 1, 1.0)
    assert second.p50 == pytest.approx(1.4) and second.p99 == pytest.approx(1.6)
    assert (first.active_agents, second.active_agents, series.buckets[2].active_agents) == (2, 2, 1)


def test_a_bucket_where_nothing_ended_has_no_percentiles_but_counts_the_agent_still_busy() -> None:
    history = History([op(1, 0, 2500 * MS), op(2, 0, 100 * MS)])
    series = time_series(history, width=1.0)
    assert [b.completed for b in series.buckets] == [1, 0, 1]
    assert series.buckets[1].p95 is None and series.buckets[1].active_agents == 1


def test_latency_of_a_fixed_rate_operation_counts_from_when_it_was_due() -> None:
    series = time_series(History([op(1, 500 * MS, 600 * MS, intended_ns=0)]), width=0.1)
    assert series.buckets[-1].p50 == pytest.approx(0.6)
    assert len(series.buckets) == 6


@pytest.mark.parametrize(
    ("span", "width"),
    [(0.3, 0.01), (2.0, 0.1), (19.0, 0.5), (20.0, 1.0), (119.0, 1.0), (121.0, 2.0), (3600.0, 30.0)],
)
def test_buckets_are_one_second_wide_unless_the_launch_is_too_short_or_too_long(span: float, width: float) -> None:
    assert bucket_width(span) == width
    assert span / width <= MAX_BUCKETS


def test_an_empty_history_has_no_buckets_and_a_bad_width_is_refused() -> None:
    assert time_series(History()).buckets == []
    with pytest.raises(ValueError, match="positive"):
        time_series(History([op(1, 0, MS)]), width=0)


def test_the_latency_curve_runs_from_the_fastest_to_the_slowest_operation_through_the_tail() -> None:
    curve = latency_curve([i * MS for i in range(1, 1001)])
    assert curve[0] == (0.0, 0.001) and curve[-1] == (100.0, 1.0)
    percentiles = [pct for pct, _ in curve]
    assert percentiles == sorted(percentiles)
    assert any(99.0 <= pct < 100.0 for pct in percentiles), "the tail is sampled densely"
    assert [value for _, value in curve] == sorted(value for _, value in curve)
    assert next(value for pct, value in curve if pct >= 49.0) == pytest.approx(0.5, abs=0.002)
    assert latency_curve([]) == []


def test_a_history_in_chunks_gives_the_series_and_curve_of_its_operations() -> None:
    ops = [
        op(i % 5 + 1, i * 37 * MS, i * 37 * MS + (i * 7_919 % 900 + 1) * MS, list(Outcome)[i % 6]) for i in range(200)
    ]
    whole, chunked = History(ops), History(ops, chunk_rows=7)
    assert time_series(chunked) == time_series(whole)
    assert latency_curve(chunked.latencies_ns()) == latency_curve([o.latency_ns for o in ops])
