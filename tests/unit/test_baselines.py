"""Baselines: tolerances parsed with clear errors, a verdict per tolerance, and files saved and loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from stampede.baselines import Baseline, Tolerance, compare_to_baseline
from stampede.errors import ConfigurationError
from stampede.metrics import Samples
from stampede.verdicts import Judgement

BASELINE = {"p95": 0.100, "success_rate": 0.995, "throughput": 200.0, "operations": 1000.0, "retries": 0.0}


def test_a_latency_may_grow_by_a_percentage_of_its_baseline() -> None:
    tolerance = Tolerance.parse("p95 may grow by at most 20%")
    assert (tolerance.metric, tolerance.upward, tolerance.relative) == ("p95", True, True)
    assert tolerance.limit(0.100) == pytest.approx(0.120)
    passed, failed = (tolerance.evaluate(BASELINE, {**BASELINE, "p95": p95}) for p95 in (0.119, 0.130))
    assert passed.passed and not failed.passed
    assert failed.expected == "p95 <= 120.0 ms (baseline 100.0 ms + 20%)"
    assert failed.measured == "130.0 ms (+30.0% from baseline)"
    assert failed.miss == "10.0 ms"
    assert failed.message == (
        "p95 regressed: baseline 100.0 ms, now 130.0 ms (+30.0%); 'p95 may grow by at most 20%' allows at most "
        "120.0 ms, missed by 10.0 ms"
    )


def test_a_rate_may_drop_by_percentage_points() -> None:
    tolerance = Tolerance.parse("success_rate may drop by at most 1%")
    assert tolerance.limit(0.995) == pytest.approx(0.985)
    verdict = tolerance.evaluate(BASELINE, {**BASELINE, "success_rate": 0.90})
    assert not verdict.passed
    assert verdict.expected == "success_rate >= 98.50% (baseline 99.50% - 1 percentage point)"
    assert verdict.miss == "8.50 percentage points"
    assert "baseline 99.50%, now 90.00% (-9.50 percentage points)" in verdict.message
    assert "allows at least 98.50%" in verdict.message
    assert tolerance.evaluate(BASELINE, {**BASELINE, "success_rate": 0.986}).passed


@pytest.mark.parametrize(
    ("expression", "now", "passed"),
    [
        ("p95 may grow by at most 50ms", 0.149, True),
        ("p95 may grow by at most 50ms", 0.151, False),
        ("p95 may rise by at most 0%", 0.100, True),
        ("p95 may increase by at most 0%", 0.101, False),
    ],
)
def test_an_amount_in_the_metrics_own_unit_is_absolute(expression: str, now: float, passed: bool) -> None:
    assert Tolerance.parse(expression).evaluate(BASELINE, {**BASELINE, "p95": now}).passed is passed


def test_counts_and_throughput_tolerances() -> None:
    verdicts = compare_to_baseline(
        [
            "throughput may fall by at most 10%",
            "operations may decrease by at most 0%",
            "retries may grow by at most 5",
        ],
        BASELINE,
        {**BASELINE, "throughput": 170.0, "retries": 5.0},
    )
    assert [v.passed for v in verdicts] == [False, True, True]
    assert verdicts[0].message.startswith("throughput regressed: baseline 200.0 ops/s, now 170.0 ops/s (-15.0%)")


def test_a_metric_that_was_zero_reports_its_change_as_a_figure() -> None:
    verdict = Tolerance.parse("retries may grow by at most 0%").evaluate(BASELINE, {**BASELINE, "retries": 3.0})
    assert not verdict.passed and "(+3 from baseline)" in verdict.measured


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("p95 should grow by at most 20%", "not of the form '<metric> may grow|drop by at most <amount>'"),
        ("p95 may grow by 20%", "not of the form"),
        ("p59 may grow by at most 20%", "names metric 'p59', which the baseline does not have"),
        ("p95 may grow by at most 20 parsecs", "give the amount as a percentage"),
    ],
)
def test_a_tolerance_that_cannot_be_read_fails_before_anything_is_judged(expression: str, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error.replace("|", r"\|").replace("(", r"\(")):
        compare_to_baseline(["p95 may grow by at most 20%", expression], BASELINE, BASELINE)


def test_at_least_one_tolerance_is_needed() -> None:
    with pytest.raises(ConfigurationError, match="at least one tolerance"):
        compare_to_baseline([], BASELINE, BASELINE)


def test_a_baseline_is_saved_and_loaded_with_where_it_came_from(tmp_path: Path) -> None:
    path = Baseline.of("nightly", BASELINE, "Test A, launch 1").save(tmp_path / "baselines")
    assert path == tmp_path / "baselines" / "nightly.json"
    loaded = Baseline.load(tmp_path / "baselines", "nightly")
    assert loaded.metrics == BASELINE and loaded.source == "Test A, launch 1" and loaded.saved


def test_a_missing_or_broken_baseline_says_what_to_do(tmp_path: Path) -> None:
    Baseline.of("nightly", BASELINE, "x").save(tmp_path)
    with pytest.raises(ConfigurationError, match=r"No baseline 'weekly' in .* \(saved there: nightly\)"):
        Baseline.load(tmp_path, "weekly")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        Baseline.load(tmp_path, "broken")
    (tmp_path / "other.json").write_text('{"metrics": 1}', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not a Stampede baseline"):
        Baseline.load(tmp_path, "other")
    with pytest.raises(ConfigurationError, match="letters, digits"):
        Baseline.of("../escape", BASELINE, "x")


def test_a_figure_of_no_samples_now_or_in_the_baseline_is_inconclusive() -> None:
    tolerance = Tolerance.parse("p95 may grow by at most 20%")
    now = tolerance.evaluate(BASELINE, BASELINE, samples={"p95": Samples(0, "successful operations (of 40)")})
    assert now.judgement is Judgement.INCONCLUSIVE and not now.passed
    assert now.message == "p95 vs baseline: nothing to compare, there were 0 successful operations (of 40) now"
    then = tolerance.evaluate(BASELINE, BASELINE, baseline_samples={"p95": 0})
    assert then.judgement is Judgement.INCONCLUSIVE
    assert then.message == "p95 vs baseline: nothing to compare, the baseline was measured over 0 samples"


def test_a_regression_is_shown_at_a_precision_where_it_shows_with_its_samples() -> None:
    """Never 'now 98.50%, allows at least 98.50%, missed by 0.00 percentage points'."""
    tolerance = Tolerance.parse("success_rate may drop by at most 1%")
    verdict = tolerance.evaluate(
        BASELINE, {**BASELINE, "success_rate": 0.98499}, samples={"success_rate": Samples(100000, "operations")}
    )
    assert not verdict.passed
    assert verdict.message == (
        "success_rate regressed: baseline 99.500%, now 98.499% over 100000 operations (-1.00 percentage points); "
        "'success_rate may drop by at most 1%' allows at least 98.500%, missed by 0.001 percentage points"
    )


def test_samples_are_saved_with_the_baseline(tmp_path: Path) -> None:
    Baseline.of("nightly", BASELINE, "x", {"p95": Samples(12, "successful operations")}).save(tmp_path)
    assert Baseline.load(tmp_path, "nightly").samples == {"p95": 12}


def test_metric_names_of_tools_with_capitals() -> None:
    saved = {**BASELINE, "Deduct.p95": 0.1}
    verdict = Tolerance.parse("Deduct.p95 may grow by at most 20%", saved).evaluate(saved, saved)
    assert verdict.passed and verdict.name == "Deduct.p95 vs baseline"
