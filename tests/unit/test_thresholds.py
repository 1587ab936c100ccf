"""Threshold expressions: parsing by metric kind, clear errors, and verdict wording."""

from __future__ import annotations

import pytest

from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.metrics import summarize_history
from stampede.outcomes import Outcome
from stampede.thresholds import Kind, Threshold, evaluate_thresholds, metric_kind
from stampede.verdicts import Judgement

MS = 1_000_000


@pytest.mark.parametrize(
    ("expression", "metric", "op", "value", "kind"),
    [
        ("p95 < 500ms", "p95", "<", 0.5, Kind.TIME),
        ("p99 <= 2 s", "p99", "<=", 2.0, Kind.TIME),
        ("p50<250000ns", "p50", "<", 0.00025, Kind.TIME),
        ("max < 750 us", "max", "<", 0.00075, Kind.TIME),
        ("min > 20 µs", "min", ">", 0.00002, Kind.TIME),
        ("wall_time < 1.5 min", "wall_time", "<", 90.0, Kind.TIME),
        ("P95 < 1.5 S", "p95", "<", 1.5, Kind.TIME),
        ("avg <= 3 s", "mean", "<=", 3.0, Kind.TIME),
        ("average <= 3 s", "mean", "<=", 3.0, Kind.TIME),
        ("median < 1 s", "p50", "<", 1.0, Kind.TIME),
        ("deduct.p95 < 2 s", "deduct.p95", "<", 2.0, Kind.TIME),
        ("deduct.max < 100ms", "deduct.max", "<", 0.1, Kind.TIME),
        ("loop_lag_p99 < 50ms", "loop_lag_p99", "<", 0.05, Kind.TIME),
        ("success_rate >= 99%", "success_rate", ">=", 0.99, Kind.RATE),
        ("conflict_rate < 20 %", "conflict_rate", "<", 0.2, Kind.RATE),
        ("deadlock_rate == 0%", "deadlock_rate", "==", 0.0, Kind.RATE),
        ("throughput > 100 ops/s", "throughput", ">", 100.0, Kind.THROUGHPUT),
        ("throughput >= 50/s", "throughput", ">=", 50.0, Kind.THROUGHPUT),
        ("throughput > 100", "throughput", ">", 100.0, Kind.THROUGHPUT),
        ("errors == 0", "errors", "==", 0.0, Kind.COUNT),
        ("deadlocks != 3", "deadlocks", "!=", 3.0, Kind.COUNT),
        ("rss_growth < 500MB", "rss_growth", "<", 500e6, Kind.BYTES),
        ("rss_growth < 1 GiB", "rss_growth", "<", 2.0**30, Kind.BYTES),
        ("peak_rss_bytes <= 64 kb", "peak_rss_bytes", "<=", 64e3, Kind.BYTES),
    ],
)
def test_parse_good_expressions(expression: str, metric: str, op: str, value: float, kind: Kind) -> None:
    threshold = Threshold.parse(expression)
    assert (threshold.metric, threshold.op, threshold.kind) == (metric, op, kind)
    assert threshold.value == pytest.approx(value)
    assert threshold.expression == expression.strip()


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("p95 500ms", "is not of the form '<metric> <comparison> <value><unit>'"),
        ("p95 =< 500ms", "is not of the form"),
        ("p95 <", "is not of the form"),
        ("", "is not of the form"),
        ("p95 < fast", "is not of the form"),
        ("p95 < 500", "p95 is a time metric, but the value has no unit; write it as 500ms or 2 s"),
        ("p95 < 20%", "p95 is a time metric, but the value has unit '%'"),
        ("p95 < 2 hours", "unit 'hours'"),
        ("success_rate >= 99", "success_rate is a rate metric, but the value has no unit; write it as a percentage"),
        ("success_rate >= 0.99 s", "unit 's'"),
        ("throughput > 100 ms", "a number of operations per second"),
        ("errors == 0 ms", "errors is a count metric, but the value has unit 'ms'; write it as a plain number"),
        ("rss_growth < 500", "rss_growth is a bytes metric, but the value has no unit; write it as a size"),
    ],
)
def test_parse_bad_expressions(expression: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Threshold.parse(expression)
    assert says in str(caught.value)
    assert repr(expression) in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "suggestion"),
    [
        ("p59 < 1 s", "Did you mean p99, p95, p50?"),
        ("sucess_rate >= 99%", "Did you mean success_rate?"),
        ("conflicts_rate < 5%", "Did you mean conflict_rate, success_rate?"),
    ],
)
def test_unknown_metric_suggests_a_known_one(expression: str, suggestion: str) -> None:
    known = ["p50", "p95", "p99", "success_rate", "conflict_rate", "deduct.p95"]
    with pytest.raises(ConfigurationError) as caught:
        Threshold.parse(expression, known)
    message = str(caught.value)
    assert "which this launch does not have" in message
    assert suggestion in message
    assert "Known metrics: conflict_rate, p50, p95, p99, success_rate." in message


def test_unknown_metric_without_a_close_match_lists_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Threshold.parse("banana < 1", ["p95", "errors"])
    assert "Did you mean" not in str(caught.value)
    assert "Known metrics: errors, p95." in str(caught.value)


def test_evaluate_of_a_metric_that_was_not_measured_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="names metric 'p95'"):
        Threshold.parse("p95 < 1 s").evaluate({"p50": 0.1})


def test_time_verdict_states_expected_measured_and_miss() -> None:
    verdict = Threshold.parse("p95 < 500ms").evaluate({"p95": 0.8})
    assert not verdict.passed
    assert verdict.name == "p95"
    assert verdict.expected == "p95 < 500.0 ms"
    assert verdict.measured == "800.0 ms"
    assert verdict.miss == "300.0 ms (60.0%)"
    assert verdict.message == "p95 < 500.0 ms: measured 800.0 ms, missed by 300.0 ms (60.0%)"


def test_passing_verdict_has_no_miss() -> None:
    verdict = Threshold.parse("p95 < 2 s").evaluate({"p95": 1.25})
    assert verdict.passed and verdict.miss == ""
    assert verdict.message == "p95 < 2.00 s: measured 1.25 s"


def test_rate_miss_is_in_percentage_points() -> None:
    verdict = Threshold.parse("success_rate >= 99%").evaluate({"success_rate": 0.95})
    assert not verdict.passed
    assert verdict.expected == "success_rate >= 99.00%"
    assert verdict.measured == "95.00%"
    assert verdict.miss == "4.00 percentage points"


def test_count_throughput_and_bytes_wording() -> None:
    errors = Threshold.parse("errors == 0").evaluate({"errors": 3.0})
    assert (errors.passed, errors.measured, errors.miss) == (False, "3", "3")
    equal = Threshold.parse("deadlocks != 2").evaluate({"deadlocks": 2.0})
    assert (equal.passed, equal.miss) == (False, "being equal")
    throughput = Threshold.parse("throughput > 100 ops/s").evaluate({"throughput": 80.0})
    assert throughput.measured == "80.0 ops/s" and throughput.miss == "20.0 ops/s (20.0%)"
    growth = Threshold.parse("rss_growth < 500MB").evaluate({"rss_growth": 750e6})
    assert growth.measured == "750.0 MB" and growth.miss == "250.0 MB (50.0%)"


@pytest.mark.parametrize("pct", range(1, 101))
def test_rate_at_exactly_the_bound_passes(pct: int) -> None:
    # 57 * 0.01 is 0.5700000000000001: a measured 57 of 100 must still meet ">= 57%".
    assert Threshold.parse(f"success_rate >= {pct}%").evaluate({"success_rate": pct / 100}).passed
    assert Threshold.parse(f"conflict_rate <= {pct} %").evaluate({"conflict_rate": pct / 100}).passed


def test_latency_at_exactly_the_bound_passes() -> None:
    for ms in range(1, 2001):
        measured = ms * 1_000_000 / 1e9  # how metrics turn nanoseconds into seconds
        assert Threshold.parse(f"p95 <= {ms}ms").evaluate({"p95": measured}).passed, ms
        assert Threshold.parse(f"min >= {ms} ms").evaluate({"min": measured}).passed, ms
    assert Threshold.parse("p95 <= 250 us").evaluate({"p95": 250_000 / 1e9}).passed


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("p99.9", Kind.TIME),
        ("mean", Kind.TIME),
        ("connect_time", Kind.TIME),
        ("acquire_seconds", Kind.TIME),
        ("tool.p50", Kind.TIME),
        ("loop_lag_max", Kind.TIME),
        ("acquire_p95", Kind.TIME),
        ("deduct credits.p99.9", Kind.TIME),
        ("acquire_count", Kind.COUNT),
        ("target_rss_max", Kind.BYTES),
        ("harness_rss_growth", Kind.BYTES),
        ("target_cpu_mean", Kind.RATE),
        ("target_open_files_max", Kind.COUNT),
        ("harness_threads_max", Kind.COUNT),
        ("timeout_rate", Kind.RATE),
        ("throughput", Kind.THROUGHPUT),
        ("rss", Kind.BYTES),
        ("heap_bytes", Kind.BYTES),
        ("memory_growth", Kind.BYTES),
        ("operations", Kind.COUNT),
        ("retries_exhausted", Kind.COUNT),
    ],
)
def test_metric_kind(name: str, kind: Kind) -> None:
    assert metric_kind(name) is kind


def make_op(agent: int, latency_ms: int, outcome: Outcome = Outcome.OK) -> Operation:
    return Operation(agent, f"user-{agent}", "deduct", 0, 0, latency_ms * 1_000_000, outcome)


def test_evaluate_thresholds_against_a_summary() -> None:
    history = History([make_op(agent, agent * 10) for agent in range(1, 21)] + [make_op(21, 5, Outcome.ERROR)])
    metrics = summarize_history(history, wall_seconds=2.0).metrics
    verdicts = evaluate_thresholds(
        ["p95 <= 190ms", "deduct.max < 150 ms", "median < 1 s", "avg < 1s", "success_rate >= 95%", "errors == 0"],
        metrics,
    )
    assert [v.passed for v in verdicts] == [True, False, True, True, True, False]
    assert verdicts[1].message == "deduct.max < 150.0 ms: measured 200.0 ms, missed by 50.0 ms (33.3%)"
    assert verdicts[4].measured == "95.24%"


def test_evaluate_thresholds_parses_every_expression_before_judging() -> None:
    with pytest.raises(ConfigurationError, match="p59"):
        evaluate_thresholds(["p95 < 1 s", "p59 < 1 s"], {"p95": 5.0, "p50": 1.0})


def test_a_percentile_of_no_operations_is_inconclusive_and_says_there_was_nothing_to_measure() -> None:
    """An empty history used to give 'p99 < 500 ms: measured 0 ns' and pass."""
    summary = summarize_history(History([]), wall_seconds=1.0)
    p99, rate = evaluate_thresholds(["p99 < 500ms", "success_rate >= 99%"], summary.metrics, summary.samples)
    assert p99.judgement is Judgement.INCONCLUSIVE and not p99.passed
    assert p99.message == "p99 < 500.0 ms: nothing to measure, there were 0 successful operations"
    assert rate.judgement is Judgement.INCONCLUSIVE
    assert rate.message == "success_rate >= 99.00%: nothing to measure, there were 0 operations"


def test_latency_thresholds_judge_successful_operations_unless_named_all() -> None:
    """A service that fails fast used to pass 'p99 < 10ms'."""
    history = History([make_op(1, 50)] + [make_op(agent, 1, Outcome.ERROR) for agent in range(2, 101)])
    summary = summarize_history(history, wall_seconds=1.0)
    ok, every = evaluate_thresholds(["p99 < 10ms", "all_p99 < 10ms"], summary.metrics, summary.samples)
    assert not ok.passed
    assert (
        ok.message
        == "p99 < 10.0 ms: measured 50.0 ms over 1 successful operations (of 100), missed by 40.0 ms (400.0%)"
    )
    assert every.passed and every.message == "all_p99 < 10.0 ms: measured 1.0 ms over 100 operations"


def test_every_message_gives_the_sample_count() -> None:
    summary = summarize_history(History([make_op(agent, 10) for agent in range(1, 5)]), wall_seconds=1.0)
    verdicts = evaluate_thresholds(["p95 < 1s", "conflict_rate < 5%", "errors == 0"], summary.metrics, summary.samples)
    assert [v.message for v in verdicts] == [
        "p95 < 1.00 s: measured 10.0 ms over 4 successful operations",
        "conflict_rate < 5.00%: measured 0.00% over 4 attempts",
        "errors == 0: measured 0 over 4 operations",
    ]


@pytest.mark.parametrize(
    ("expression", "measured", "message"),
    [
        (
            "success_rate == 100%",
            0.99999,
            "success_rate == 100.000%: measured 99.999%, missed by 0.001 percentage points",
        ),
        (
            "success_rate >= 99.99%",
            0.99986,
            "success_rate >= 99.990%: measured 99.986%, missed by 0.004 percentage points",
        ),
        ("p99 < 10ms", 0.01004, "p99 < 10.00 ms: measured 10.04 ms, missed by 40 µs (0.4%)"),
        ("p99 < 10ms", 0.01, "p99 < 10.0 ms: measured 10.0 ms, missed by being equal"),
        (
            "throughput > 100 ops/s",
            99.96,
            "throughput > 100.00 ops/s: measured 99.96 ops/s, missed by 0.04 ops/s (0.0%)",
        ),
    ],
)
def test_measured_value_and_bound_are_shown_where_the_comparison_shows(
    expression: str, measured: float, message: str
) -> None:
    """Never 'measured 100.00%, missed by 0.00 percentage points'."""
    verdict = Threshold.parse(expression).evaluate({expression.split(maxsplit=1)[0]: measured})
    assert not verdict.passed
    assert verdict.message == message


def test_a_phase_no_operation_timed_says_so() -> None:
    summary = summarize_history(History([make_op(1, 10, Outcome.ERROR)]), wall_seconds=1.0, phases=["run"])
    (declared,) = evaluate_thresholds(["run_p95 < 1s"], summary.metrics, summary.samples)
    assert declared.judgement is Judgement.INCONCLUSIVE
    assert declared.message == "run_p95 < 1.00 s: nothing to measure, there were 0 operations that timed 'run' (of 1)"
    with pytest.raises(ConfigurationError) as undeclared:
        evaluate_thresholds(["connect_p95 < 1s"], summary.metrics, summary.samples)
    assert str(undeclared.value) == (
        "Threshold 'connect_p95 < 1s' names metric 'connect_p95', but no operation of this launch timed a phase "
        "'connect', so there is nothing to measure (phases timed: run)."
    )
    assert "Did you mean" not in str(undeclared.value)


def test_a_tool_no_operation_ran_says_so() -> None:
    summary = summarize_history(History([make_op(1, 10)]), wall_seconds=1.0)
    with pytest.raises(
        ConfigurationError, match=r"no operation of this launch was named 'lookup'.*\(operations: deduct\)"
    ):
        evaluate_thresholds(["lookup.p95 < 1s"], summary.metrics, summary.samples)


def test_metric_names_of_tools_with_capitals() -> None:
    history = History([Operation(1, "user-1", "Deduct Credits", 0, 0, 10 * MS, Outcome.OK)])
    summary = summarize_history(history, wall_seconds=1.0)
    verdicts = evaluate_thresholds(
        ["Deduct Credits.p99 < 1s", "deduct credits.p95 < 1s", "P99 < 1s"], summary.metrics, summary.samples
    )
    assert all(v.passed for v in verdicts)
    assert verdicts[1].name == "Deduct Credits.p95"


def test_no_threshold_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"Give at least one threshold, e\.g\. 'p95 < 500ms'"):
        evaluate_thresholds([], {"p95": 1.0})
