"""Resources under load: CPU, RSS, open files and threads of the harness and the target, and memory checks.

A :class:`ResourceSampler` samples named processes (``{"harness": os.getpid(),
"target": pid}``) on a daemon thread, not on the engine's event loop: under
load the loop is saturated by agents, so a sampling task would sample late
exactly when it matters, and its blocking ``/proc`` reads would add to the
loop's lag. The thread spends most of its time asleep in ``Event.wait``, reads
each process once per tick (``oneshot`` caches the shared ``/proc`` files) and
measures its own CPU time, so its cost is reported, not guessed.

Figures become flat metric names for thresholds, ``<process>_<figure>``:
``target_rss_growth``, ``harness_cpu_mean`` and so on (see
:meth:`ResourceSummary.as_metrics`). Memory growth is the RSS at the end of
sampling minus the RSS at its start: memory the run left behind. A transient
peak that was given back is not growth; ``rss_max`` bounds the peak.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import psutil

from .errors import ConfigurationError, StampedeError
from .units import format_duration
from .verdicts import Verdict

MIN_INTERVAL_SECONDS = 0.05
"""Below this, sampling costs more than it tells: RSS and CPU ticks barely move in 50 ms."""
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OPEN_FILES = "num_fds" if psutil.POSIX else "num_handles"


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


class _Watched:
    """The psutil side of one sampled process: reads a sample, remembers CPU time for the next one."""

    def __init__(self, name: str, pid: int) -> None:
        try:
            self.process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ConfigurationError(
                f"Cannot sample the resources of {name}: no process has pid {pid}. Give the pid of a running process."
            ) from None
        self.trace = ProcessTrace(name, pid)
        self._cpu_seconds: float | None = None

    def sample(self) -> None:
        if self.trace.exited_ns is not None:
            return
        process = self.process
        try:
            with process.oneshot():
                now = time.monotonic_ns()
                if process.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.NoSuchProcess(process.pid)
                times = process.cpu_times()
                rss = process.memory_info().rss
                open_files = self._optional("open_files", getattr(process, _OPEN_FILES))
                threads = self._optional("threads", process.num_threads)
        except psutil.NoSuchProcess:
            self.trace.exited_ns = time.monotonic_ns()
            return
        except psutil.AccessDenied:
            raise ConfigurationError(
                f"Cannot read the CPU and memory of {self.trace.name} (pid {self.trace.pid}): access denied. "
                "Run the harness as the user that owns the process (or with the right to read its /proc entries)."
            ) from None
        cpu_seconds = times.user + times.system
        cpu_percent = None
        if self._cpu_seconds is not None:
            elapsed = (now - self.trace.samples[-1].t_ns) / 1e9
            cpu_percent = 100 * (cpu_seconds - self._cpu_seconds) / elapsed if elapsed > 0 else 0.0
        self._cpu_seconds = cpu_seconds
        self.trace.samples.append(Sample(now, cpu_percent, rss, open_files, threads))

    def _optional(self, figure: str, read: Callable[[], int]) -> int | None:
        if figure in self.trace.unreadable:
            return None
        try:
            return read()
        except psutil.AccessDenied:
            self.trace.unreadable.add(figure)
            return None


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


class ResourceSampler:
    """Samples named processes every ``interval`` seconds on a daemon thread, from start() to stop()."""

    def __init__(self, processes: Mapping[str, int], interval: float = 1.0) -> None:
        if not processes:
            raise ConfigurationError("Name at least one process to sample, e.g. {'harness': os.getpid()}.")
        for name, pid in processes.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigurationError(
                    f"Process name {name!r} cannot prefix a metric: use lowercase letters, digits and _, "
                    "starting with a letter, e.g. 'target'."
                )
            if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
                raise ConfigurationError(f"The pid of {name} must be a positive whole number, got {pid!r}.")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not math.isfinite(interval):
            raise ConfigurationError(f"The sampling interval must be a number of seconds, got {interval!r}.")
        if interval < MIN_INTERVAL_SECONDS:
            raise ConfigurationError(
                f"The sampling interval must be at least {format_duration(MIN_INTERVAL_SECONDS)}, "
                f"got {format_duration(interval)}."
            )
        self.interval = float(interval)
        self._watched = [_Watched(name, pid) for name, pid in processes.items()]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_ns = 0
        self._stopped_ns: int | None = None
        self._sampler_cpu_seconds = 0.0
        self._failure: Exception | None = None

    def start(self) -> None:
        """Take the first sample of every process now (the baseline), then keep sampling in the background."""
        if self._thread is not None:
            raise StampedeError("This resource sampler was already started; create a new one to sample again.")
        self._started_ns = time.monotonic_ns()
        self._sample_all()
        gone = [w.trace for w in self._watched if w.trace.exited_ns is not None]
        if gone:
            names = ", ".join(f"{trace.name} (pid {trace.pid})" for trace in gone)
            raise ConfigurationError(f"Cannot sample {names}: the process is no longer running.")
        self._thread = threading.Thread(target=self._run, name="stampede-resource-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> ResourceRecording:
        """Take a last sample, end the thread within ``timeout`` seconds and return the recording; idempotent."""
        if self._thread is None:
            raise StampedeError("Resource sampling was never started: call start() before stop().")
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise StampedeError(
                f"The resource sampler did not stop within {format_duration(timeout)} (a read of /proc is stuck); "
                "the samples taken so far are in its recording."
            )
        if self._stopped_ns is None:
            self._stopped_ns = time.monotonic_ns()
        if self._failure is not None:
            raise StampedeError(
                f"Resource sampling stopped early: {self._failure}; the samples taken until then are in its recording."
            ) from self._failure
        return self.recording

    @property
    def recording(self) -> ResourceRecording:
        """The samples so far (a copy, safe to read while sampling goes on)."""
        end_ns = self._stopped_ns if self._stopped_ns is not None else time.monotonic_ns()
        wall_seconds = (end_ns - self._started_ns) / 1e9 if self._thread is not None else 0.0
        traces = {
            w.trace.name: ProcessTrace(
                w.trace.name, w.trace.pid, list(w.trace.samples), w.trace.exited_ns, set(w.trace.unreadable)
            )
            for w in self._watched
        }
        return ResourceRecording(self.interval, traces, self._sampler_cpu_seconds, wall_seconds)

    def __enter__(self) -> ResourceSampler:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _sample_all(self) -> None:
        for watched in self._watched:
            watched.sample()

    def _run(self) -> None:
        interval_ns = int(self.interval * 1e9)
        next_ns = self._started_ns + interval_ns
        try:
            while not self._stopping.wait(max(0.0, (next_ns - time.monotonic_ns()) / 1e9)):
                self._sample_all()
                # Ticks missed while the machine was too busy are skipped, not caught up in a burst.
                next_ns = max(next_ns + interval_ns, time.monotonic_ns() + interval_ns // 2)
                self._sampler_cpu_seconds = time.thread_time()
            self._sample_all()
        except Exception as error:  # noqa: BLE001 - handed to stop(), which the caller always reaches
            self._failure = error
        self._sampler_cpu_seconds = time.thread_time()


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


def format_size(size: float) -> str:
    """Bytes with a unit a reader takes in at once: ``512 B``, ``12.3 KB``, ``1.5 MB``, ``2.10 GB`` (decimal)."""
    magnitude = abs(size)
    if magnitude < 1e3:
        return f"{size:.0f} B"
    if magnitude < 1e6:
        return f"{size / 1e3:.1f} KB"
    if magnitude < 1e9:
        return f"{size / 1e6:.1f} MB"
    return f"{size / 1e9:.2f} GB"


def check_memory_growth(summary: ResourceSummary, limit: float) -> Verdict:
    """Fail when a process's RSS grew by more than ``limit`` bytes between the first and the last sample."""
    if not limit >= 0:
        raise ConfigurationError(f"The memory growth limit must be 0 or more bytes, got {limit!r}.")
    growth = summary.rss_growth
    passed = growth <= limit
    span = (
        f"from {format_size(summary.rss_start)} to {format_size(summary.rss_end)}, peak {format_size(summary.rss_max)}"
        f", over {format_duration(summary.seconds)}"
    )
    gone = "" if summary.exited_after is None else f" (until it exited after {format_duration(summary.exited_after)})"
    grew = f"grew by {format_size(growth)}" if growth >= 0 else f"shrank by {format_size(-growth)}"
    if passed:
        message = f"Memory of {summary.name} {grew} ({span}){gone}, within the {format_size(limit)} allowed."
    else:
        message = (
            f"Memory of {summary.name} grew by {format_size(growth)} ({span}){gone}, "
            f"more than the {format_size(limit)} allowed, by {format_size(growth - limit)}."
        )
    return Verdict(
        f"{summary.name} memory growth",
        passed,
        f"at most {format_size(limit)}",
        format_size(growth),
        "" if passed else format_size(growth - limit),
        message,
        [
            {
                "process": f"{summary.name} (pid {summary.pid})",
                "rss at start": format_size(summary.rss_start),
                "rss peak": format_size(summary.rss_max),
                "rss at end": format_size(summary.rss_end),
                "growth": format_size(growth),
                "samples": summary.samples,
            }
        ],
        value=growth,
    )


def check_stayed_up(summary: ResourceSummary) -> Verdict:
    """Fail when the process went away while it was being sampled (crashed, was killed, ran out of memory)."""
    name = f"{summary.name} kept running"
    if summary.exited_after is None:
        message = f"{summary.name.capitalize()} (pid {summary.pid}) ran throughout {format_duration(summary.seconds)}."
        return Verdict(name, True, "running throughout", "running", message=message)
    after = format_duration(summary.exited_after)
    message = (
        f"{summary.name.capitalize()} (pid {summary.pid}) went away {after} into sampling; "
        f"its last sample showed {format_size(summary.rss_end)} resident."
    )
    return Verdict(name, False, "running throughout", f"gone after {after}", "the process exited", message)


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
