"""Keywords that hold a launch's measured figures to thresholds."""

from __future__ import annotations

from robot.api.deco import keyword

from stampede.errors import ConfigurationError
from stampede.thresholds import evaluate_thresholds, parse_thresholds, resolve_metric, unknown_metric
from stampede.verdicts import Judgement

from ..component import LibraryComponent
from ..html import verdict_table
from ..reporting import findings
from ..runtime import LaunchRecord


class ThresholdKeywords(LibraryComponent):
    @keyword(tags=["thresholds"])
    def thresholds_should_hold(self, *thresholds: str, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every threshold holds for this test's launch (or ``launch``), listing each miss.

        A threshold is ``<metric> <comparison> <value><unit>``. Metrics:
        latency ``p50 p90 p95 p99 min mean max`` of the successful operations
        (prefix ``<tool>.`` for one tool's operations), and ``all_p50`` ...
        ``all_max`` of every operation, failed ones too (a service that fails
        fast passes ``all_p99 < 10ms`` but not ``p99 < 10ms``);
        ``success_rate conflict_rate retry_rate serialization_failure_rate
        deadlock_rate timeout_rate error_rate`` (percentages), ``throughput``
        (operations/s), ``loop_lag_p99``, phases a tool times such as
        ``acquire_p95``, and counts such as ``operations retries deadlocks``.
        Metric names are matched regardless of case (``Deduct.p99``).

        All thresholds are parsed before any is judged, so a typo fails with
        what to write instead; giving none is an error. Each message gives the
        number of samples the figure was computed from, and the measured value
        and the bound at a precision where they differ. A figure of no samples
        (no successful operation to take ``p99`` of) is inconclusive and fails:
        there was nothing to measure.

        | Thresholds Should Hold | p95 < 500ms | success_rate >= 99% | conflict_rate < 20% |
        | Thresholds Should Hold | all_p99 < 1s | deduct.p99 < 200ms |
        """
        parse_thresholds(list(thresholds))  # a malformed threshold fails as such, launch or no launch
        summary = self.launch_record(launch).summary
        verdicts = evaluate_thresholds(list(thresholds), summary.metrics, summary.samples)
        findings.judged("Thresholds", verdicts)
        self.log_html(verdict_table(verdicts, caption="Thresholds"))
        missed = [verdict.message for verdict in verdicts if verdict.judgement is Judgement.FAILED]
        unmeasured = [verdict.message for verdict in verdicts if verdict.judgement is Judgement.INCONCLUSIVE]
        of = len(verdicts)
        problems = ([f"{len(missed)} of {of} thresholds missed: " + "; ".join(missed)] if missed else []) + (
            [f"{len(unmeasured)} of {of} thresholds had nothing to measure: " + "; ".join(unmeasured)]
            if unmeasured
            else []
        )
        if problems:
            raise AssertionError(". ".join(problems))

    @keyword(tags=["thresholds"])
    def get_metric(self, name: str, launch: LaunchRecord | int | None = None) -> float:
        """Returns one measured figure of this test's launch (or ``launch``): seconds, fractions or counts.

        Metric names are those of `Thresholds Should Hold`. A figure computed
        from no samples (``p99`` when no operation succeeded) fails, saying
        there was nothing to measure, rather than returning 0.

        | ${p95}= | Get Metric | p95 |
        """
        record = self.launch_record(launch)
        metrics = record.summary.metrics
        found = resolve_metric(name, metrics)
        if found is None:
            raise ConfigurationError(unknown_metric(name, name, metrics))
        basis = record.summary.samples.get(found)
        if basis is not None and basis.count == 0:
            raise AssertionError(f"{found} of launch {record.number}: nothing to measure, there were {basis}")
        return metrics[found]
