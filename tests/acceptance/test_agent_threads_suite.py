"""The agent threads suite and its must-fail twins, end to end, on the embedded reference agent service.

One robot run: every test of suites/agent_threads passes; each of the six
HTTP bug switches fails its twin in the last step, the
one check that catches it, with its diagnosis, after every other thread,
isolation and stream check passed on the same launch; the startup latencies
are measured over every user; no token reaches a log and nothing is left behind.
"""

from __future__ import annotations

import re

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_passed,
    keywords_in,
    messages_in,
    run_robot,
)

SUITE = "suites/agent_threads"
TWINS = ROBOT_DIR / "failing_twins" / "threads.robot"
PASSING = [
    "Every User's Thread Keeps Each Of Its Runs Once, One At A Time",
    "Reject Keeps One Run And Refuses The Others",
    "Enqueue Runs Every Run Once, In Turn",
    "Interrupt Stops The Running Run And Keeps What It Wrote",
    "Rollback Stops The Running Run And Removes What It Wrote",
    "No User Can Read Another User's Thread",
    "No User Sees Another User's Events",
    "Each Run's Stream Carries Only That Run",
    "Every User's Run Is Answered And Ends",
    "Runs Start Streaming Within The Startup Bound",
    "Each User's Events Carry Only Their Own Marker",
    "Each User's Events Arrive In Order",
]
CHECKS = {
    "one active run": "Each Thread Should Have At Most One Active Run",
    "policy": "Runs Should Follow The Thread Policy",
    "reads": "Thread Reads Should Be Consistent",
    "isolation": "Other Users' Threads Should Be Refused",
    "streams": "Run Streams Should Carry Only Their Own Run",
    "contamination": "No Events Should Reach Another User",
    "ordering": "Events Should Arrive In Order Without Gaps",
}
ID = r"[\w-]+"
TWIN_FAILURES = {
    "A Service That Lets Two Runs Be Active On One Thread Is Caught": (
        "one active run",
        rf"^Two runs were active at once on [12] of 2 threads: thread {ID}: run {ID}'s message {ID}:\d comes after "
        rf"run {ID}'s {ID}:\d",
    ),
    "A Service That Loses An Enqueued Run Is Caught": (
        "policy",
        r"^Runs broke the enqueue policy: \d+ problems? on thread .* among 8 runs \(8 success\); first: thread "
        rf"{ID}, run {ID} reported succeeded, but 0 of the 3 messages a run appends are in the thread's state",
    ),
    "A Service Whose Rollback Keeps The Run's Writes Is Caught": (
        "policy",
        r"^Runs broke the rollback policy: \d+ problems? on thread .* among 8 runs \([^)]*\); "
        rf"first: thread {ID}, message {ID}:\d of run {ID}, which the service says it rolled back, is in the "
        r"thread's state",
    ),
    "A Service That Reports An Interrupted Run As Succeeded Is Caught": (
        "policy",
        r"^Runs broke the interrupt policy: \d+ problems? on thread .* among 8 runs \([^)]*\); first: thread "
        rf"{ID}, run {ID} reported succeeded, but [0-2] of the 3 messages a run appends are in the thread's state",
    ),
    "A Service That Lets A User Read Another User's Thread Is Caught": (
        "isolation",
        r"^Users reached other users' threads: [1-9] of 8 requests were served, by 2 of 2 users; first: user-\d's "
        rf"\w+ \((GET|POST) /threads/\S+\) of thread {ID} \(owner user-\d\) was answered 200\.",
    ),
    "A Service That Sends A Run's Events On Another Run's Stream Is Caught": (
        "streams",
        r"^Run streams carried other runs' events: \d+ of \d+ events on [1-8] of [1-8] streams; run "
        rf"{ID}'s stream \(agent \d, thread {ID}\) carried \d+ events? of (run {ID}|the run with marker {ID})",
    ),
}
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
MEASURED = r"<td>{metric}</td><td class='pass'><b>PASS</b></td><td>[^<]+</td><td>[\d.]+ (ms|s) over 100 operations"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("agent_threads"), SUITE, TWINS)


def test_every_suite_test_passes(run: RobotRun) -> None:
    assert_passed(run, *PASSING)
    suite = run.child_suite("Agent Threads")
    assert {test.name for test in suite.all_tests} == set(PASSING)


def test_interrupt_and_rollback_displace_runs_that_had_written(run: RobotRun) -> None:
    """The staggered starts make the policies bite: runs are stopped after they appended messages."""
    interrupt = messages_in(run.test("Interrupt Stops The Running Run And Keeps What It Wrote"))
    (threads, *_) = [m.message for m in interrupt if m.html and "Threads of launch" in m.message]
    rows = re.findall(r"<tr><td>thread-\w+</td><td>user-\d</td><td>(\d+)</td><td>([^<]*)</td>", threads)
    assert len(rows) == 2 and all("interrupted" in runs for _, runs in rows), rows
    assert all(int(kept) > 3 for kept, _ in rows), rows  # more than one run's 3 messages: interrupted runs' stay
    rollback = [m.message for m in messages_in(run.test("Rollback Stops The Running Run And Removes What It Wrote"))]
    assert any(re.search(r"; [1-9]\d* messages of rolled-back runs left out\.$", m) for m in rollback), rollback


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_bug_switch_fails_its_own_check_only(run: RobotRun, name: str) -> None:
    caught, pattern = TWIN_FAILURES[name]
    assert_failed_with(run, name, pattern)
    test = run.test(name)
    assert test.body.filter(messages=False)[-1].name == CHECKS[caught]
    (others,) = [
        kw for kw in test.body.filter(messages=False) if kw.name == "Every Thread Check But This One Should Pass"
    ]
    ran = {kw.name: kw.status for kw in keywords_in(others) if kw.name in CHECKS.values()}
    assert ran == {check: "PASS" for key, check in CHECKS.items() if key != caught}, ran


def test_startup_latencies_are_measured_over_every_user(run: RobotRun) -> None:
    messages = [m.message for m in messages_in(run.test("Runs Start Streaming Within The Startup Bound")) if m.html]
    for metric in ("first_event_p95", "started_p95", "run_p95"):
        assert any(re.search(MEASURED.format(metric=metric), m) for m in messages), (metric, messages)


def test_no_token_reaches_the_outputs(run: RobotRun) -> None:
    leaked = {name: JWT.findall(text) for name, text in run.output_texts().items() if JWT.search(text)}
    assert not leaked, leaked


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
