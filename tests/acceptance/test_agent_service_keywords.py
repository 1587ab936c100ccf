"""Agent service, resource and parallelism keywords end to end.

One robot run: the suite passes (the reference service started beside the
suite's services, resources sampled under load, fairness and parallelism
judged); its must-fail twins fail in their checks with numbers; bad input fails
at once saying what to fix; every agent service process the run started is gone
afterwards, and no token reached a log.
"""

from __future__ import annotations

import re

import psutil
import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    closed_port,
    messages_in,
    run_robot,
)

SUITE = ROBOT_DIR / "agent_service.robot"
TWINS = ROBOT_DIR / "failing_twins" / "parallelism.robot"
BAD_INPUT = ROBOT_DIR / "bad_agent_service_input.robot"
FORGETFUL_TEST = "A Test May Leave Sampling Running"
PASSING = [
    "The Reference Agent Service Runs Beside The Suite's Own Services",
    FORGETFUL_TEST,
    "Resources Stay Within Bounds While Agents Run On The Service",
    "Agents Queued On One Locked Row Are Served In Turn",
    "Agents Waiting In Redis With The Asyncio Client Wait Side By Side",
    "The Agent Service's Memory Stays Steady Across Repeated Runs",
]
SIZE = r"[\d.]+ (B|KB|MB|GB)"
TWIN_FAILURES = {
    "A Blocking Client In Async Agent Code Makes Agents Take Turns": [
        r"^Agents ran one at a time: 10 agents, average (0\.9\d|1\.00) operations in flight \(max 1\) "
        r"over [\d.]+ (ms|s); expected at least 2\.50\.$"
    ],
    "Optimistic Retries With Long Backoff Let One Agent Capture The Row": [
        r"^Agents were not served fairly: Jain's fairness index 0\.[0-7]\d over 10 agents' operations "
        r"\(1\.00 = all equal\), expected at least 0\.80; most served: agent \d+ with \d+ operations, "
        r"least served: agent \d+ with \d+ operations?( \(\d+ agents? completed none\))?\.$"
    ],
    "A Service That Keeps Every Run Grows With Every Run": [
        rf"^Memory of the agent service keeps growing: {SIZE} per run over 4 runs after 1 warm-up run "
        rf"\(R² [\d.]+\), {SIZE} then {SIZE} per run in the first and second half, more than the 1\.0 MB per run "
        rf"allowed; RSS after each run: ({SIZE}, ){{3}}{SIZE}\.$"
    ],
    "A Service That Keeps Every Run Breaks The Memory Bound Under Load": [
        r"^target_rss_growth < 5\.0 MB: measured [\d.]+ MB over \d+ samples of target, missed by [\d.]+ MB \([\d.]+%\)$"
    ],
}
BAD_INPUT_FAILURES = {
    "An Unknown Bug Switch Is Refused": [
        r"^Unknown agent service bug switch 'teleport': known switches are leak, lost_update, never_answer, "
        r"reorder, duplicate_run_ids, memory_growth, global_lock, second_session"
    ],
    "An Unknown Setting Of The Reference Service Is Refused": [
        r"^The reference agent service has no setting warp_speed: use think_time, or one of initial_credits, "
    ],
    "An Agent Service URL Nobody Listens On Is Refused": [
        r"^Nothing accepts connections at the agent service URL ws://127\.0\.0\.1:\d+/agents \(.*refused\): "
        r"start your service there"
    ],
    "A Server That Does Not Speak WebSocket Is Refused": [
        r"^The agent service at ws://127\.0\.0\.1:\d+/ accepts connections but does not speak WebSocket"
    ],
    "A Process Count Below One Is Refused": [
        r"^The reference agent service needs at least 1 process to serve with, got processes=0$"
    ],
    "Bug Switches For Your Own Service Are Refused": [
        r"^bugs=global_lock configure the bundled reference agent service, but the agent service in use is "
        r"yours at ws://127\.0\.0\.1:\d+/"
    ],
    "A Resource Threshold With A Time Unit Is Refused": [
        r"^Threshold 'harness_rss_growth < 500ms': harness_rss_growth is a bytes metric, but the value has unit "
        r"'ms'; write it as a size such as 500MB\.$"
    ],
    "A Sampling Interval Below 50 ms Is Refused": [
        r"^The sampling interval must be at least 50\.0 ms, got 10\.0 ms\.$"
    ],
    "A Sampling Target That Is No Process Is Refused": [
        r"^target must be 'agent service', 'harness', 'none' or the pid of a running process, got 'the moon'\.$"
    ],
    "A Leak Check Over Too Few Runs Is Refused": [r"^A leak check needs at least 3 runs after 1 warm-up run"],
    "A Parallelism Bound Above The Agents Is Refused": [
        r"^The expected parallelism 5 can never be reached: 2 agents ran"
    ],
}
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
SERVICE_TABLE = re.compile(r"<td>pid</td><td>(\d+)</td></tr><tr><td>started in</td><td>([\d.]+) s</td>")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(
        tmp_path_factory.mktemp("agent_service"), SUITE, TWINS, BAD_INPUT, variables={"CLOSED_PORT": str(closed_port())}
    )


def _agent_services(run: RobotRun) -> list[tuple[int, float]]:
    """(pid, start seconds) of every reference agent service the run started, from the tables it logged."""
    found = []
    for message in messages_in(run.suite):
        if message.html and "Agent service in use" in message.message:
            found += [(int(pid), float(seconds)) for pid, seconds in SERVICE_TABLE.findall(message.message)]
    return found


def test_the_suite_passes(run: RobotRun) -> None:
    assert_passed(run, *PASSING)


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_check_with_numbers(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


@pytest.mark.parametrize("name", sorted(BAD_INPUT_FAILURES))
def test_bad_input_fails_at_once_saying_what_to_fix(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *BAD_INPUT_FAILURES[name])


def test_every_agent_service_was_started_quickly_and_is_gone(run: RobotRun) -> None:
    services = _agent_services(run)
    # The suite's service, and the twins' leaking one (started once, reused by the second twin).
    assert len(services) == 2, services
    for pid, seconds in services:
        assert seconds < 30, f"the agent service (pid {pid}) took {seconds} s to start"
        try:
            alive = "reference_agent_service" in " ".join(psutil.Process(pid).cmdline())
        except psutil.NoSuchProcess:
            alive = False
        assert not alive, f"the agent service (pid {pid}) still runs after the robot run"


def test_resources_are_logged_per_process_with_units(run: RobotRun) -> None:
    messages = messages_in(run.test(PASSING[2]))
    (table,) = [m.message for m in messages if m.html and "Resources sampled every" in m.message]
    for header in (
        "cpu mean",
        "cpu max",
        "rss start",
        "rss max",
        "rss end",
        "rss growth",
        "open files max",
        "threads max",
    ):
        assert f"<th>{header}</th>" in table
    assert re.search(r"<td>harness \(pid \d+\)</td>", table) and re.search(r"<td>target \(pid \d+\)</td>", table)
    assert re.search(r"<td>[\d.]+ MB</td>", table) and re.search(r"<td>[\d.]+%</td>", table)


def test_sampling_a_test_forgot_is_stopped_when_the_next_test_samples(run: RobotRun) -> None:
    warnings = [m.message for m in messages_in(run.test(PASSING[2])) if m.level == "WARN"]
    assert len(warnings) == 1, warnings
    assert re.fullmatch(
        rf"Stopped resource sampling that test '{FORGETFUL_TEST}' started and never stopped, "
        r"after [\d.]+ (ms|s)\.",
        warnings[0],
    ), warnings[0]


def test_no_token_reaches_the_outputs(run: RobotRun) -> None:
    leaked = {name: JWT.findall(text) for name, text in run.output_texts().items() if JWT.search(text)}
    assert not leaked, leaked


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
