"""MetricsThresholds: hold a launch's latencies and rates to thresholds."""

from __future__ import annotations

from robotlibcore import DynamicCore

from stampede import __version__
from stampede_robot.keywords.baselines import BaselineKeywords
from stampede_robot.keywords.resources import ResourceKeywords
from stampede_robot.keywords.thresholds import ThresholdKeywords
from stampede_robot.runtime import runtime


class MetricsThresholds(DynamicCore):
    """Holds measured figures to thresholds written as short expressions.

    | Thresholds Should Hold    p95 < 500ms    success_rate >= 99%    conflict_rate < 20%

    Percentiles are exact (nearest rank over every operation's latency). The
    event-loop lag of the harness is reported beside them: when it is high the
    harness, not the server, inflated the latencies.

    = Resources =

    CPU, memory, open files and threads of the harness and of the service
    under test (the reference agent service, or any pid), sampled on a thread
    of their own while agents run:

    | Start Sampling Resources    interval=1 s
    | Launch Agents    deduct    50
    | Stop Sampling Resources
    | Resource Usage Should Stay Within    target_rss_growth < 500MB    harness_cpu_mean <= 80%
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__

    def __init__(self) -> None:
        super().__init__([ThresholdKeywords(runtime()), ResourceKeywords(runtime()), BaselineKeywords(runtime())])
