"""Resource figures from hand-made samples, the line fit, and the memory-growth and leak verdicts."""

from __future__ import annotations

import random

import pytest

from stampede.checkers.kept_running import check_stayed_up
from stampede.checkers.memory_growth import check_memory_growth
from stampede.checkers.memory_leaks import check_no_leak, fit_line
from stampede.errors import ConfigurationError
from stampede.resource_usage import ProcessTrace, Sample, summarize_trace
from stampede.resources import ResourceSampler
from stampede.units import format_size

MB = 1_000_000
S = 1_000_000_000


def trace(*samples: Sample, exited_ns: int | None = None) -> ProcessTrace:
    return ProcessTrace("target", 4242, list(samples), exited_ns)


def steady_trace() -> ProcessTrace:
    return trace(
        Sample(0, None, 100 * MB, 10, 4),
        Sample(1 * S, 50.0, 180 * MB, 12, 6),
        Sample(3 * S, 20.0, 150 * MB, 11, 5),
    )


def test_summary_figures_of_a_trace() -> None:
    summary = summarize_trace(steady_trace())

    assert summary.samples == 3
    assert summary.seconds == 3.0
    # 50% for 1 s then 20% for 2 s: 0.9 core-seconds over 3 s.
    assert summary.cpu_mean == pytest.approx(0.3)
    assert summary.cpu_max == pytest.approx(0.5)
    assert (summary.rss_start, summary.rss_max, summary.rss_end) == (100 * MB, 180 * MB, 150 * MB)
    assert summary.rss_growth == 50 * MB
    assert (summary.open_files_max, summary.threads_max) == (12, 6)
    assert summary.exited_after is None


def test_metrics_are_flat_names_prefixed_by_the_process() -> None:
    metrics = summarize_trace(steady_trace()).as_metrics()

    assert metrics == {
        "target_cpu_mean": pytest.approx(0.3),
        "target_cpu_max": pytest.approx(0.5),
        "target_rss_start": 100 * MB,
        "target_rss_max": 180 * MB,
        "target_rss_end": 150 * MB,
        "target_rss_growth": 50 * MB,
        "target_open_files_max": 12,
        "target_threads_max": 6,
    }


def test_figures_the_os_refused_are_left_out_not_reported_as_zero() -> None:
    summary = summarize_trace(trace(Sample(0, None, MB, None, 3), Sample(S, 10.0, MB, None, 3)))

    assert summary.open_files_max is None
    assert "target_open_files_max" not in summary.as_metrics()


def test_a_single_sample_has_no_cpu_figure_yet() -> None:
    summary = summarize_trace(trace(Sample(0, None, MB, 1, 1)))

    assert (summary.cpu_mean, summary.cpu_max, summary.rss_growth) == (0.0, 0.0, 0)


def test_memory_growth_fails_above_the_limit_and_says_by_how_much() -> None:
    verdict = check_memory_growth(summarize_trace(steady_trace()), 20 * MB)

    assert not verdict.passed
    assert verdict.value == 50 * MB
    assert verdict.miss == "30.0 MB"
    assert verdict.message == (
        "Memory of target grew by 50.0 MB (from 100.0 MB to 150.0 MB, peak 180.0 MB, over 3.00 s), "
        "more than the 20.0 MB allowed, by 30.0 MB."
    )


def test_memory_growth_passes_within_the_limit() -> None:
    verdict = check_memory_growth(summarize_trace(steady_trace()), 500 * MB)

    assert verdict.passed
    assert "grew by 50.0 MB" in verdict.message and "within the 500.0 MB allowed" in verdict.message


def test_memory_growth_limit_must_not_be_negative() -> None:
    with pytest.raises(ConfigurationError, match="0 or more bytes"):
        check_memory_growth(summarize_trace(steady_trace()), -1)


def test_a_process_that_went_away_is_reported() -> None:
    gone = summarize_trace(trace(Sample(0, None, MB, 1, 1), Sample(S, 1.0, 2 * MB, 1, 1), exited_ns=S + S // 2))

    verdict = check_stayed_up(gone)

    assert not verdict.passed
    assert gone.exited_after == 1.5
    assert verdict.message == (
        "Target (pid 4242) went away 1.50 s into sampling; its last sample showed 2.0 MB resident."
    )
    assert check_stayed_up(summarize_trace(steady_trace())).passed


def test_line_fit_slope_and_r_squared() -> None:
    exact = fit_line([10, 12, 14, 16])
    assert (exact.slope, exact.intercept, exact.r_squared) == (2.0, 10.0, 1.0)

    flat = fit_line([5, 5, 5])
    assert (flat.slope, flat.r_squared) == (0.0, 1.0)

    scattered = fit_line([0, 2, 0, 2])
    assert scattered.slope == pytest.approx(0.4)
    assert scattered.r_squared == pytest.approx(0.2)


def noisy(base: int, per_run: int, runs: int, noise: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [base + per_run * run + rng.randint(-noise, noise) for run in range(runs)]


def test_steady_growth_is_a_leak() -> None:
    # A large warm-up run first (caches filling), then 2 MB per run with ±0.5 MB of noise.
    series = [50 * MB, *noisy(200 * MB, 2 * MB, 8, MB // 2)]

    verdict = check_no_leak(series, MB)

    assert not verdict.passed
    assert verdict.value == pytest.approx(2 * MB, rel=0.15)
    assert verdict.message.startswith("Memory of target keeps growing: ")
    assert "per run over 8 runs after 1 warm-up run (R² 0.9" in verdict.message
    assert "more than the 1.0 MB per run allowed" in verdict.message
    assert [row["counted"] for row in verdict.details] == ["no (warm-up)"] + ["yes"] * 8


def test_a_long_series_is_shortened_in_the_message_and_kept_whole_in_the_table() -> None:
    verdict = check_no_leak([100 * MB + run * MB for run in range(30)], 0)

    assert (
        "RSS after each run: 101.0 MB, 102.0 MB, 103.0 MB, 104.0 MB, 105.0 MB, 106.0 MB, …, 124.0 MB,"
        in verdict.message
    )
    assert len(verdict.details) == 30


def test_noise_without_a_trend_is_not_a_leak() -> None:
    verdict = check_no_leak(noisy(200 * MB, 0, 9, 2 * MB), MB)

    assert verdict.passed
    assert verdict.message.startswith("Memory of target is steady: ")


@pytest.mark.parametrize("step_at", [1, 3, 4, 5, 7], ids=lambda at: f"step-after-run-{at}")
def test_a_one_off_step_is_not_a_leak(step_at: int) -> None:
    series = [100 * MB] * step_at + [160 * MB] * (8 - step_at)

    verdict = check_no_leak(series, MB, warmup=0)

    assert verdict.passed, verdict.message
    assert verdict.value > MB  # the whole series does slope upward: the halves tell it apart
    assert "a one-off step, not steady growth" in verdict.message


def test_a_step_on_top_of_steady_growth_is_still_a_leak() -> None:
    series = [100 * MB + 3 * MB * run + (40 * MB if run >= 4 else 0) for run in range(8)]

    assert not check_no_leak(series, MB, warmup=0).passed


def test_shrinking_memory_is_not_a_leak() -> None:
    assert check_no_leak([300 * MB, 290 * MB, 280 * MB, 270 * MB], 0, warmup=0).passed


def test_a_leak_check_needs_enough_runs_after_the_warm_up() -> None:
    with pytest.raises(ConfigurationError, match=r"at least 3 runs after 1 warm-up.*repeat the run at least 4 times"):
        check_no_leak([1, 2, 3], MB)
    with pytest.raises(ConfigurationError, match="warm-up"):
        check_no_leak([1, 2, 3, 4], MB, warmup=-1)
    with pytest.raises(ConfigurationError, match="tolerance"):
        check_no_leak([1, 2, 3, 4], -5)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(512, "512 B"), (12_345, "12.3 KB"), (1_500_000, "1.5 MB"), (2.1e9, "2.10 GB"), (-2e6, "-2.0 MB")],
)
def test_sizes_read_with_a_fitting_unit(size: float, shown: str) -> None:
    assert format_size(size) == shown


@pytest.mark.parametrize(
    ("processes", "interval", "error"),
    [
        ({}, 1.0, "at least one process"),
        ({"Target": 1}, 1.0, "cannot prefix a metric"),
        ({"target": 0}, 1.0, "positive whole number"),
        ({"target": True}, 1.0, "positive whole number"),
        ({"target": 1}, 0.01, "at least 50.0 ms, got 10.0 ms"),
        ({"target": 1}, float("nan"), "number of seconds"),
    ],
)
def test_bad_sampler_input_says_what_to_fix(processes: dict[str, int], interval: float, error: str) -> None:
    with pytest.raises(ConfigurationError, match=error):
        ResourceSampler(processes, interval)
