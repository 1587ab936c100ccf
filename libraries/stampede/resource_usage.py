"""What a resource sampler recorded, and what it adds up to: samples, a trace per process, summaries, metrics.

Figures become flat metric names for thresholds, ``<process>_<figure>``:
``target_rss_growth``, ``harness_cpu_mean`` and so on (see
:meth:`ResourceSummary.as_metrics`). Memory growth is the RSS at the end of
sampling minus the RSS at its start: memory the run left behind. A transient
peak that was given back is not growth; ``rss_max`` bounds the peak.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

from .metrics import Samples


class Sample(NamedTuple):
    """One reading of one process."""

    t_ns: int
    """Monotonic clock (``time.monotonic_ns``), the clock operations are timed with."""
    cpu_percent: float | None
    """CPU used since the previous sample, in percent of one core (200 = two cores busy); None at the first."""
    rss: int
    """Resident set size in bytes."""
    open_files: int | None
    """Open file descriptors (handles on Windows); None when the OS refuses to tell."""
    threads: int | None
    """Threads of the process; None when the OS refuses to tell."""


@dataclass
class ProcessTrace:
    """Every sample of one process, and when (if) it went away."""

    name: str
    pid: int
    samples: list[Sample] = field(default_factory=list)
    exited_ns: int | None = None
    """When the sampler first found the process gone (or a zombie); None while it ran."""
    unreadable: set[str] = field(default_factory=set)
    """Figures the OS refused to read (``open_files``, ``threads``), e.g. for another user's process."""


@dataclass(frozen=True)
class ResourceRecording:
    """What a sampler recorded: a trace per process, and what sampling cost."""

    interval: float
    traces: dict[str, ProcessTrace]
    sampler_cpu_seconds: float
    """CPU time the sampling thread used so far (the baseline sample in start() not counted)."""
    wall_seconds: float

    def summaries(self) -> dict[str, ResourceSummary]:
        return {name: summarize_trace(trace) for name, trace in self.traces.items()}

    def metrics(self) -> dict[str, float]:
        """Every process's figures under flat names, e.g. ``target_rss_growth``."""
        metrics: dict[str, float] = {}
        for summary in self.summaries().values():
            metrics.update(summary.as_metrics())
        return metrics

    def samples(self) -> dict[str, Samples]:
        """What each of :meth:`metrics` was computed from: that process's samples."""
        return {
            metric: Samples(summary.samples, f"samples of {name}")
            for name, summary in self.summaries().items()
            for metric in summary.as_metrics()
        }


@dataclass(frozen=True)
class ResourceSummary:
    """The figures of one process over a sampling run; CPU as a fraction of one core (0.5 = 50 %)."""

    name: str
    pid: int
    samples: int
    seconds: float
    cpu_mean: float
    cpu_max: float
    rss_start: int
    rss_max: int
    rss_end: int
    open_files_max: int | None
    threads_max: int | None
    exited_after: float | None
    """Seconds from the first sample to when the process was found gone; None if it ran throughout."""

    @property
    def rss_growth(self) -> int:
        """RSS at the end minus RSS at the start: memory the run left behind (negative when it shrank)."""
        return self.rss_end - self.rss_start

    def as_metrics(self) -> dict[str, float]:
        prefix = f"{self.name}_"
        figures: dict[str, float | None] = {
            "cpu_mean": self.cpu_mean,
            "cpu_max": self.cpu_max,
            "rss_start": self.rss_start,
            "rss_max": self.rss_max,
            "rss_end": self.rss_end,
            "rss_growth": self.rss_growth,
            "open_files_max": self.open_files_max,
            "threads_max": self.threads_max,
        }
        return {prefix + figure: float(value) for figure, value in figures.items() if value is not None}


def summarize_trace(trace: ProcessTrace) -> ResourceSummary:
    """Summarize one process's samples; CPU mean is weighted by the length of each interval."""
    samples = trace.samples
    if not samples:
        raise ValueError(f"{trace.name} (pid {trace.pid}) has no samples to summarize")
    first, last = samples[0], samples[-1]
    busy = elapsed = 0.0
    for previous, sample in itertools.pairwise(samples):
        if sample.cpu_percent is not None:
            seconds = (sample.t_ns - previous.t_ns) / 1e9
            busy += sample.cpu_percent / 100 * seconds
            elapsed += seconds
    cpu = [s.cpu_percent / 100 for s in samples if s.cpu_percent is not None]
    open_files = [s.open_files for s in samples if s.open_files is not None]
    threads = [s.threads for s in samples if s.threads is not None]
    return ResourceSummary(
        name=trace.name,
        pid=trace.pid,
        samples=len(samples),
        seconds=(last.t_ns - first.t_ns) / 1e9,
        cpu_mean=busy / elapsed if elapsed > 0 else 0.0,
        cpu_max=max(cpu, default=0.0),
        rss_start=first.rss,
        rss_max=max(s.rss for s in samples),
        rss_end=last.rss,
        open_files_max=max(open_files, default=None),
        threads_max=max(threads, default=None),
        exited_after=None if trace.exited_ns is None else (trace.exited_ns - first.t_ns) / 1e9,
    )
