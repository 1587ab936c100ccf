"""Keywords that hold a launch's measured figures to thresholds."""

from __future__ import annotations

from robot.api.deco import keyword

from stampede.thresholds import evaluate_thresholds

from ..component import LibraryComponent
from ..html import verdict_table
from ..reporting import findings
from ..runtime import LaunchRecord


class ThresholdKeywords(LibraryComponent):
    @keyword(tags=["thresholds"])
    def thresholds_should_hold(self, *thresholds: str, launch: LaunchRecord | int | None = None) -> None:
        """Fails unless every threshold holds for the latest launch (or ``launch``), listing each miss.

        A threshold is ``<metric> <comparison> <value><unit>``. Metrics:
        latency ``p50 p90 p95 p99 min mean max`` (prefix ``<tool>.`` for one
        tool's operations), ``success_rate conflict_rate retry_rate
        serialization_failure_rate deadlock_rate timeout_rate error_rate``
        (percentages), ``throughput`` (operations/s), ``loop_lag_p99`` and
        counts such as ``operations retries deadlocks``. All thresholds are
        parsed before any is judged, so a typo fails with what to write instead.

        | Thresholds Should Hold | p95 < 500ms | success_rate >= 99% | conflict_rate < 20% |
        """
        verdicts = evaluate_thresholds(list(thresholds), self.launch_record(launch).summary.metrics)
        findings.judged("Thresholds", verdicts)
        self.log_html(verdict_table(verdicts, caption="Thresholds"))
        missed = [verdict.message for verdict in verdicts if not verdict.passed]
        if missed:
            raise AssertionError(f"{len(missed)} of {len(verdicts)} thresholds missed: " + "; ".join(missed))

    @keyword(tags=["thresholds"])
    def get_metric(self, name: str, launch: LaunchRecord | int | None = None) -> float:
        """Returns one measured figure of the latest launch (or ``launch``): seconds, fractions or counts.

        | ${p95}= | Get Metric | p95 |
        """
        metrics = self.launch_record(launch).summary.metrics
        if name not in metrics:
            evaluate_thresholds([f"{name} >= 0"], metrics)
        return metrics[name]
