"""Keywords that sample CPU, memory, open files and threads of the harness and the service under test."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import psutil
from robot.api import logger
from robot.api.deco import keyword

from stampede.checkers.kept_running import check_stayed_up
from stampede.checkers.memory_leaks import check_no_leak
from stampede.errors import ConfigurationError, StampedeError
from stampede.resource_usage import ResourceRecording, ResourceSummary
from stampede.resources import ResourceSampler
from stampede.thresholds import Threshold, evaluate_thresholds
from stampede.units import format_duration, format_size

from ..component import LibraryComponent
from ..html import table
from ..launch_charts import inline_html
from ..reporting import findings
from ..runtime import Runtime, Services

AGENT_SERVICE = "agent service"
HARNESS = "harness"
_HARNESS_ONLY = ("none", HARNESS)


@dataclass(frozen=True)
class Process:
    """A process to measure: how the log names it, and its pid."""

    label: str
    pid: int


@dataclass
class MemoryAfterRuns:
    """RSS of one process after each run of one test, for the leak check."""

    test: str
    process: Process
    rss: list[int] = field(default_factory=list)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def _summary_row(summary: ResourceSummary) -> list[object]:
    return [
        f"{summary.name} (pid {summary.pid})",
        summary.samples,
        format_duration(summary.seconds),
        _percent(summary.cpu_mean),
        _percent(summary.cpu_max),
        format_size(summary.rss_start),
        format_size(summary.rss_max),
        format_size(summary.rss_end),
        format_size(summary.rss_growth),
        summary.open_files_max,
        summary.threads_max,
        "ran throughout" if summary.exited_after is None else f"exited after {format_duration(summary.exited_after)}",
    ]


_SUMMARY_HEADERS = [
    "process",
    "samples",
    "over",
    "cpu mean",
    "cpu max",
    "rss start",
    "rss max",
    "rss end",
    "rss growth",
    "open files max",
    "threads max",
    "state",
]


def _size(text: str, what: str) -> float:
    """Bytes from a size such as ``1MB``, ``512 KiB``, ``0 B`` (the units thresholds understand)."""
    try:
        return Threshold.parse(f"rss_growth <= {text}").value
    except ConfigurationError:
        raise ConfigurationError(
            f"{what} must be a size such as 1MB, 512KiB or 0B (units B, KB, MB, GB, KiB, MiB, GiB), got {text!r}."
        ) from None


class ResourceKeywords(LibraryComponent):
    """Resource sampling (MetricsThresholds): one sampler at a time, stopped with the services if a test forgot."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._sampling_since = ""
        """The test that started the sampling going on ("" for a suite setup)."""
        self._recording: ResourceRecording | None = None
        self._memory: MemoryAfterRuns | None = None

    @property
    def _sampler(self) -> ResourceSampler | None:
        """The sampling going on: kept with the services, which stop it if no test does."""
        services = self.runtime.services
        return services.resource_sampler if services is not None else None

    def _process(self, target: str) -> Process | None:
        """The process ``target`` names: ``agent service`` (if Stampede started it), ``harness``, ``none``, a pid."""
        chosen = str(target).strip().lower()
        if chosen in _HARNESS_ONLY:
            return Process("the harness", os.getpid()) if chosen == HARNESS else None
        if chosen == AGENT_SERVICE:
            services = self.runtime.services
            service = services.agent_service if services is not None else None
            if service is None or service.pid is None:
                return None
            if service.embedded is not None and service.embedded.processes > 1:
                # The parent only supervises: its figures would show no growth whatever the service does.
                raise ConfigurationError(
                    f"The reference agent service runs {service.embedded.processes} serving processes "
                    f"(pids {', '.join(map(str, service.embedded.pids))}): give one of them as target, or start "
                    "it with processes=1 to sample it as 'agent service'."
                )
            return Process("the agent service", service.pid)
        if chosen.isdigit() and int(chosen) > 0:
            return Process(f"process {chosen}", int(chosen))
        raise ConfigurationError(
            f"target must be 'agent service', 'harness', 'none' or the pid of a running process, got {target!r}."
        )

    # ------------------------------------------------------------------ sampling

    @keyword(tags=["resources"])
    def start_sampling_resources(self, interval: timedelta = timedelta(seconds=1), target: str = AGENT_SERVICE) -> None:
        """Starts sampling CPU, memory (RSS), open files and threads of the harness and the target every ``interval``.

        ``target`` is ``agent service`` (the reference service Stampede started,
        when there is one and it runs one process; with ``processes=2`` give the
        pid of one of its serving processes), a process id, or ``none`` (the harness only). The
        harness is this Robot process; the target's figures appear as
        ``target_...`` metrics, the harness's as ``harness_...``. Sampling runs
        on a thread of its own, so it goes on while agents run. Stop it with
        `Stop Sampling Resources`; sampling a test forgot to stop is stopped
        when the next test starts sampling, or when the suite's services stop.

        | Start Sampling Resources |                 |                 |
        | Start Sampling Resources | interval=500 ms | target=${pid}   |
        """
        test = str(self.variable("TEST NAME", ""))
        if self._sampler is not None:
            if self._sampling_since == test:
                raise StampedeError("Resources are already being sampled: call Stop Sampling Resources first.")
            forgotten = self._stop_sampler()
            since = f"test {self._sampling_since!r}" if self._sampling_since else "the suite setup"
            logger.warn(
                f"Stopped resource sampling that {since} started and never stopped, after "
                f"{format_duration(forgotten.wall_seconds)}."
            )
        processes = {HARNESS: os.getpid()}
        process = self._process(target)
        if process is not None:
            processes["target"] = process.pid
        elif str(target).strip().lower() == AGENT_SERVICE:
            self.log(
                "No reference agent service is running here, so only the harness is sampled "
                "(give your service's pid as target=<pid> to sample it too)."
            )
        sampler = ResourceSampler(processes, interval=interval.total_seconds())
        services = self.runtime.services
        if services is None:
            services = self.runtime.services = Services(owner=self.variable("SUITE NAME", ""))
        sampler.start()
        services.resource_sampler = sampler
        self._sampling_since = test
        named = ", ".join(f"{name} (pid {pid})" for name, pid in processes.items())
        self.log(f"Sampling {named} every {format_duration(sampler.interval)}.")

    def _stop_sampler(self) -> ResourceRecording:
        services = self.runtime.services
        assert services is not None and services.resource_sampler is not None, "only called while sampling"
        sampler, services.resource_sampler = services.resource_sampler, None
        try:
            self._recording = sampler.stop()
        except StampedeError:
            self._recording = sampler.recording  # what was sampled until it broke, for the next keyword to judge
            raise
        return self._recording

    @keyword(tags=["resources"])
    def stop_sampling_resources(self) -> dict[str, float]:
        """Stops sampling, logs what each process used, and returns the figures as metrics.

        The table shows per process CPU mean and max (percent of one core: 200%
        is two cores busy), RSS at start, peak, at end and its growth (end minus
        start: memory the run left behind), and the most open files and threads.
        Metrics are named ``<process>_<figure>``: ``target_rss_growth``,
        ``harness_cpu_mean``, ... in bytes and fractions of a core; judge them
        with `Resource Usage Should Stay Within`.

        | ${usage}= | Stop Sampling Resources |
        | Log | ${usage}[target_rss_max] |
        """
        if self._sampler is None:
            raise StampedeError("Resources are not being sampled: call Start Sampling Resources first.")
        recording = self._stop_sampler()
        summaries = recording.summaries()
        cost = recording.sampler_cpu_seconds / recording.wall_seconds if recording.wall_seconds > 0 else 0.0
        caption = (
            f"Resources sampled every {format_duration(recording.interval)} for "
            f"{format_duration(recording.wall_seconds)} (sampling cost {_percent(cost)} of one core)"
        )
        self.log_html(table(_SUMMARY_HEADERS, (_summary_row(summary) for summary in summaries.values()), caption))
        self.log_html(inline_html(findings.sampled(recording)))
        return recording.metrics()

    @keyword(tags=["resources", "thresholds"])
    def resource_usage_should_stay_within(self, *thresholds: str) -> None:
        """Fails unless every threshold holds for the last sampling, and every sampled target kept running.

        Metrics are ``harness_`` or ``target_`` followed by ``cpu_mean``
        ``cpu_max`` (percentages of one core), ``rss_start`` ``rss_max``
        ``rss_end`` ``rss_growth`` (sizes: B, KB, MB, GB, KiB, MiB, GiB),
        ``open_files_max`` ``threads_max`` (counts). A target that went away while
        sampled fails too: its figures stop where it died.

        | Resource Usage Should Stay Within | target_rss_growth < 500MB | harness_cpu_mean <= 80% |
        | Resource Usage Should Stay Within | target_threads_max < 50   | target_open_files_max < 200 |
        """
        if self._sampler is not None:
            raise StampedeError("Resources are still being sampled: call Stop Sampling Resources before judging them.")
        if self._recording is None:
            raise StampedeError("No resources were sampled: call Start Sampling Resources and Stop Sampling Resources.")
        if not thresholds:
            raise ConfigurationError("Give at least one threshold, e.g. target_rss_growth < 500MB.")
        verdicts = evaluate_thresholds(list(thresholds), self._recording.metrics(), self._recording.samples())
        stayed_up = [
            check_stayed_up(summary) for name, summary in self._recording.summaries().items() if name != HARNESS
        ]
        self.judge(*verdicts, *stayed_up, caption="Resource usage")

    # ------------------------------------------------------------------ leaks across runs

    @keyword(tags=["resources"])
    def record_memory_after_run(self, target: str = AGENT_SERVICE) -> int:
        """Records the target's resident memory (RSS) now, after one run of a repeated workload; returns it in bytes.

        Call it after each of several identical runs in one test, then
        `Memory Should Not Grow Across Runs`. ``target`` is ``agent service``,
        ``harness`` or a process id. The runs of a test must measure one process:
        a restarted service fails here instead of mixing two processes' figures.

        | FOR | ${run} | IN RANGE | 6 |
        |  | Launch Agents | deduct | 20 |
        |  | Record Memory After Run |
        | END |
        | Memory Should Not Grow Across Runs | tolerance_per_run=1MB |
        """
        process = self._process(target)
        if process is None:
            raise ConfigurationError(
                f"Record Memory After Run needs a process to measure: target={target!r} names none "
                "(is the reference agent service running? give a pid, or 'harness')."
            )
        test = str(self.variable("TEST NAME", ""))
        series = self._memory
        if series is None or series.test != test:
            series = self._memory = MemoryAfterRuns(test, process)
        elif series.process != process:
            raise StampedeError(
                f"This test recorded {series.process.label} (pid {series.process.pid}) after {len(series.rss)} "
                f"run(s), now {process.label} (pid {process.pid}): record every run of one process (was the "
                "service restarted?)."
            )
        try:
            rss = psutil.Process(process.pid).memory_info().rss
        except psutil.NoSuchProcess:
            raise StampedeError(f"{process.label.capitalize()} (pid {process.pid}) is no longer running.") from None
        series.rss.append(rss)
        self.log(f"RSS of {process.label} (pid {process.pid}) after run {len(series.rss)}: {format_size(rss)}.")
        return rss

    @keyword(tags=["resources", "checks"])
    def memory_should_not_grow_across_runs(self, tolerance_per_run: str = "1MB", warmup: int = 1) -> None:
        """Fails when the memory recorded after each run keeps growing by more than ``tolerance_per_run``.

        Judges the RSS values `Record Memory After Run` recorded in this test.
        The first ``warmup`` runs are left out (caches and pools fill on the
        first run). A leak is a steady slope: growth over all measured runs and
        over each half of them, so a one-off step (a cache filling) passes and
        memory that keeps growing fails. Needs at least 3 runs after the warm-up.

        | Memory Should Not Grow Across Runs |                         |          |
        | Memory Should Not Grow Across Runs | tolerance_per_run=512KiB | warmup=2 |
        """
        series, test = self._memory, str(self.variable("TEST NAME", ""))
        if series is None or series.test != test:
            raise StampedeError("No memory was recorded in this test: call Record Memory After Run after each run.")
        tolerance = _size(tolerance_per_run, "tolerance_per_run")
        self._memory = None
        self.judge(check_no_leak(series.rss, tolerance, warmup=warmup, name=series.process.label))
