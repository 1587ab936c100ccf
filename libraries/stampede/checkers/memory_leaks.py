"""Memory leaks across repeated runs: RSS that keeps growing from run to run, told apart from a one-off step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigurationError
from ..units import format_size
from ..verdicts import Verdict


@dataclass(frozen=True)
class LineFit:
    """A least-squares line through values at x = 0, 1, 2, ...: slope per step and R²."""

    slope: float
    intercept: float
    r_squared: float
    """1.0 when the values lie exactly on the line (a flat series included)."""


def fit_line(values: Sequence[float]) -> LineFit:
    if len(values) < 2:
        raise ValueError(f"a line needs at least 2 values, got {len(values)}")
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    sxx = sum((x - mean_x) ** 2 for x in range(n))
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in values)
    residual = sum((y - (intercept + slope * x)) ** 2 for x, y in enumerate(values))
    return LineFit(slope, intercept, 1 - residual / total if total > 0 else 1.0)


MIN_LEAK_RUNS = 3


def check_no_leak(
    rss_after_runs: Sequence[int], tolerance_per_run: float, *, warmup: int = 1, name: str = "target"
) -> Verdict:
    """Fail when RSS keeps growing from run to run by more than ``tolerance_per_run`` bytes.

    ``rss_after_runs`` is the RSS after each of K repeated runs; the first
    ``warmup`` runs are left out (caches and pools fill on the first run). A leak
    is a least-squares slope above the tolerance over the measured runs AND over
    each half of them: memory that keeps growing grows in both halves, while a
    one-off step (a cache filling, an arena added) lies in at most one half, and
    noise has no slope over either.
    """
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigurationError(f"The number of warm-up runs must be 0 or more, got {warmup!r}.")
    if not tolerance_per_run >= 0:
        raise ConfigurationError(f"The leak tolerance must be 0 or more bytes per run, got {tolerance_per_run!r}.")
    measured = [int(rss) for rss in rss_after_runs[warmup:]]
    if len(measured) < MIN_LEAK_RUNS:
        raise ConfigurationError(
            f"A leak check needs at least {MIN_LEAK_RUNS} runs after {warmup} warm-up run(s), got {len(measured)} "
            f"of {len(rss_after_runs)}: repeat the run at least {MIN_LEAK_RUNS + warmup} times."
        )
    overall = fit_line(measured)
    half = (len(measured) + 1) // 2
    early, late = fit_line(measured[:half]), fit_line(measured[-half:])
    tolerance = format_size(tolerance_per_run)
    shown = measured if len(measured) <= 12 else [*measured[:6], None, *measured[-6:]]
    series = ", ".join("…" if rss is None else format_size(rss) for rss in shown)
    runs = f"{len(measured)} runs after {warmup} warm-up run{'s' if warmup != 1 else ''}"
    trend = f"{format_size(overall.slope)} per run over {runs} (R² {overall.r_squared:.2f})"
    halves = f"{format_size(early.slope)} then {format_size(late.slope)} per run in the first and second half"
    leaking = min(overall.slope, early.slope, late.slope) > tolerance_per_run
    if leaking:
        message = (
            f"Memory of {name} keeps growing: {trend}, {halves}, more than the {tolerance} per run allowed; "
            f"RSS after each run: {series}."
        )
    elif overall.slope > tolerance_per_run:
        message = (
            f"Memory of {name} did not keep growing: {trend}, but {halves}, so a one-off step, not steady growth "
            f"(allowed {tolerance} per run); RSS after each run: {series}."
        )
    else:
        message = f"Memory of {name} is steady: {trend}, within {tolerance} per run; RSS after each run: {series}."
    rows = [
        {"run": run, "rss": format_size(rss), "counted": "no (warm-up)" if run <= warmup else "yes"}
        for run, rss in enumerate(rss_after_runs, start=1)
    ]
    return Verdict(
        f"{name} memory steady across runs",
        not leaking,
        f"at most {tolerance} per run",
        f"{format_size(overall.slope)} per run",
        f"{format_size(overall.slope - tolerance_per_run)} per run" if leaking else "",
        message,
        rows,
        value=overall.slope,
    )
