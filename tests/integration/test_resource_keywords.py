"""Resource sampling through the keywords: sampling nobody stopped ends when the services stop."""

from __future__ import annotations

import threading
from datetime import timedelta

from stampede_robot.keywords.resources import ResourceKeywords
from stampede_robot.runtime import Runtime

SAMPLER_THREAD = "stampede-resource-sampler"


def _sampling_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == SAMPLER_THREAD]


def test_sampling_nobody_stopped_ends_with_the_services() -> None:
    runtime = Runtime()
    keywords = ResourceKeywords(runtime)
    before = len(_sampling_threads())
    keywords.start_sampling_resources(interval=timedelta(milliseconds=100), target="harness")
    assert len(_sampling_threads()) == before + 1
    try:
        done = runtime.stop_services()
    finally:
        runtime.close()
    assert "Stopped resource sampling that no test stopped (call Stop Sampling Resources to judge it)." in done
    assert len(_sampling_threads()) == before


def test_a_stopped_sampling_is_judged_and_leaves_nothing_to_stop() -> None:
    runtime = Runtime()
    keywords = ResourceKeywords(runtime)
    keywords.start_sampling_resources(interval=timedelta(milliseconds=100), target="none")
    try:
        metrics = keywords.stop_sampling_resources()
        keywords.resource_usage_should_stay_within("harness_rss_max > 1MB", "harness_threads_max >= 1")
        done = runtime.stop_services()
    finally:
        runtime.close()
    assert metrics["harness_rss_max"] > 1e6
    assert not any("resource sampling" in line for line in done)
