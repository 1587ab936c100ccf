"""The WebSocket suites (agent startup, race conditions, high load) and their must-fail twins, end to end.

One robot run: every test of the three suites passes against the reference
agent service; each seeded bug of the service fails its WebSocket check in the
check's step with its diagnosis; the latencies are logged per phase; no token
reaches a log and nothing is left behind.
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
    messages_in,
    run_robot,
)

SUITES = ("suites/agent_startup", "suites/race_conditions", "suites/high_load")
TWINS = ROBOT_DIR / "failing_twins" / "websocket.robot"
PASSING = [
    "Every User Gets An Answer",
    "Agents Start Within The Startup Bound",
    "No User Sees Another User's Events",
    "Each User's Events Arrive In Order",
    "Concurrent Agent Executions Keep Their State Apart",
    "A Hundred Users Create Their Contexts At Once Without Id Collisions Or Leaks",
    "Events Are Routed To The User Who Asked",
    "Users Signed In With Their Own Token Stay Isolated End To End",
    "A User Holds One Session At A Time",
    "Agents Run Side By Side, Not One After Another",
    "Agent Runs Show No Timing Anomaly",
    "A Hundred Database Sessions At Once Are Served And None Is Left Open",
    "Concurrent Registrations Are All Kept Intact",
    "A Registry Written By Read-Then-Write Loses Registrations",
    "A Registry That Numbers Entries By Counting Them Hands Out Colliding Ids",
    "Many Long Conversations Stay Within The Response-Time Bounds",
    "Long Conversations Keep Memory And CPU Within Bounds",
    "Agents With Large Contexts Are Answered",
    "Events Stay In Order Through A Dropped Connection",
    "Overlapping Runs Of One User Keep Every Credit",
    "Concurrent Balance Updates Keep Every Credit",
    "Each User Has A Single Active Session Under Load",
]
TWIN_FAILURES = {
    "A Service That Leaks Events Between Users Is Caught": [
        r"^Messages reached the wrong user: \d+ of \d+ messages on the connections of \d+ of 10 users carried "
        r"another user's id or marker; user-\d+ received messages of user-\d+"
    ],
    "A Service That Reorders Events Is Caught": [
        r"^Events arrived out of order: \d+ of \d+ sequence numbers broke the order \(gaps, repeats or late "
        r"arrivals\) on \d of 5 connections; first: agent \d, "
    ],
    "A Service That Never Answers Is Caught": [
        r"^Users were not answered: 5 connected, 0 answered within 1 s \(not one was answered\): 5 requests of 5 "
        r"got no answer at all\.$"
    ],
    "A Service That Reuses Run Ids Is Caught": [
        r"^Ids were not unique: 1 of 1 run id and 0 of 5 session ids were shared; run id 'run-1' came back for 5 "
        r"runs of 5 users"
    ],
    "A Service That Lets A User Hold Two Sessions Is Caught": [
        r"^Users held two sessions at once: 3 of 3 users with several agents had overlapping sessions "
        r"\(refused sessions: none\); user-\d's sessions of agents \d and \d were both active for "
    ],
    "A Service That Loses Credit Updates Is Caught": [
        r"^Agent credits do not add up: [1-5] of 5 users hold other balances than their 50 completed runs leave; "
        r"[1-9]\d* credits were never deducted \(lost updates on concurrent runs\)\. First: user-\d ran 10 and "
        r"holds \d+, expected \d+"
    ],
    "A Service Behind One Global Lock Is Caught": [
        r"^Agents (ran one at a time|hardly ran in parallel): 8 agents, average [01]\.\d\d operations in flight "
        r"\(max [12]\) over [\d.]+ (ms|s); expected at least 2\.00 \(runs timed from their first event"
    ],
}
LATENCY_ROW = r"<tr><td>{phase}</td><td>{count}</td>(<td>[\d.]+ (ms|s)</td>){{4}}</tr>"
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("websocket_suites"), *SUITES, TWINS)


def test_every_suite_test_passes(run: RobotRun) -> None:
    assert_passed(run, *PASSING)


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_seeded_bug_fails_its_check_with_its_diagnosis(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_startup_latencies_are_logged_per_phase_for_every_user(run: RobotRun) -> None:
    messages = messages_in(run.test("Agents Start Within The Startup Bound"))
    (logged,) = [m.message for m in messages if m.html and "WebSocket latencies of launch" in m.message]
    for phase in ("connect \\(open \\+ authenticate\\)", "startup \\(send → first event\\)", "run \\(send → done\\)"):
        assert re.search(LATENCY_ROW.format(phase=phase, count=100), logged), (phase, logged)


def test_high_load_samples_the_harness_and_the_service(run: RobotRun) -> None:
    messages = messages_in(run.test("Many Long Conversations Stay Within The Response-Time Bounds"))
    (sampled,) = [m.message for m in messages if m.html and "Resources sampled every 1.00 s" in m.message]
    assert re.search(r"<td>harness \(pid \d+\)</td>", sampled) and re.search(r"<td>target \(pid \d+\)</td>", sampled)
    logged = [m.message for m in messages if m.html and "WebSocket latencies of launch" in m.message]
    assert re.search(LATENCY_ROW.format(phase="run \\(send → done\\)", count=75 * 15), logged[0]), logged


def test_long_conversations_are_sampled_every_second_with_every_message_timed(run: RobotRun) -> None:
    messages = messages_in(run.test("Long Conversations Keep Memory And CPU Within Bounds"))
    (sampled,) = [m.message for m in messages if m.html and "Resources sampled every 1.00 s" in m.message]
    span = float(re.search(r"Resources sampled every 1\.00 s for ([\d.]+) s", sampled)[1])  # type: ignore[index]
    samples = int(re.search(r"<td>target \(pid \d+\)</td><td>(\d+)</td>", sampled)[1])  # type: ignore[index]
    assert samples >= int(span) + 1 and span >= 2.5, sampled  # one a second from the start, over 50 runs of 50 ms
    logged = [m.message for m in messages if m.html and "WebSocket latencies of launch" in m.message]
    assert re.search(LATENCY_ROW.format(phase="run \\(send → done\\)", count=20 * 50), logged[0]), logged
    cpu = r"target_cpu_mean <= 80\.00%: measured [\d.]+% over \d+ samples of target"
    assert any(re.fullmatch(cpu, m.message) for m in messages)


REGISTRY_FINDING = re.compile(
    r"Registrations were lost or corrupted: 30 agents registered, the registry keeps (\d+) "
    r"entries \((\d+) lost\), (\d+) of them carrying another agent's user or marker\."
)


@pytest.mark.parametrize(
    ("name", "corrupted"),
    [
        ("A Registry Written By Read-Then-Write Loses Registrations", False),
        ("A Registry That Numbers Entries By Counting Them Hands Out Colliding Ids", True),
    ],
)
def test_a_broken_registry_is_caught_with_its_lost_and_corrupted_entries(
    run: RobotRun, name: str, corrupted: bool
) -> None:
    messages = [m.message for m in messages_in(run.test(name))]
    (finding,) = [found for m in messages if (found := REGISTRY_FINDING.fullmatch(m))]
    kept, lost, corrupt = map(int, finding.groups())
    assert kept + lost == 30 and lost > 0 and (corrupt > 0) == corrupted, finding[0]


def test_a_sound_registry_keeps_every_registration(run: RobotRun) -> None:
    messages = [m.message for m in messages_in(run.test("Concurrent Registrations Are All Kept Intact"))]
    assert "Every registration was kept intact: 30 agents registered, 30 entries in the registry." in messages


def test_every_database_session_is_served_and_given_back(run: RobotRun) -> None:
    messages = [
        m.message for m in messages_in(run.test("A Hundred Database Sessions At Once Are Served And None Is Left Open"))
    ]
    assert any(
        re.fullmatch(
            r"Connection acquire times: p50 [\d.]+ m?s, .* over 100 acquires; 0 of 100 "
            r"operations \(0\.0%\) refused with an acquire timeout\.",
            m,
        )
        for m in messages
    ), messages


def test_no_token_reaches_the_outputs(run: RobotRun) -> None:
    leaked = {name: JWT.findall(text) for name, text in run.output_texts().items() if JWT.search(text)}
    assert not leaked, leaked


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
