"""Sampling CPU, RSS, open files and threads of the harness and the target while agents run.

A :class:`ResourceSampler` samples named processes (``{"harness": os.getpid(),
"target": pid}``) on a daemon thread, not on the engine's event loop: under
load the loop is saturated by agents, so a sampling task would sample late
exactly when it matters, and its blocking ``/proc`` reads would add to the
loop's lag. The thread spends most of its time asleep in ``Event.wait``, reads
each process once per tick (``oneshot`` caches the shared ``/proc`` files) and
measures its own CPU time, so its cost is reported, not guessed. What it
recorded, and the metrics that come of it, are in :mod:`stampede.resource_usage`.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping

import psutil

from .errors import ConfigurationError, StampedeError
from .resource_usage import ProcessTrace, ResourceRecording, Sample
from .units import format_duration

MIN_INTERVAL_SECONDS = 0.05
"""Below this, sampling costs more than it tells: RSS and CPU ticks barely move in 50 ms."""
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OPEN_FILES = "num_fds" if psutil.POSIX else "num_handles"


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
