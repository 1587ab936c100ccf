"""Bad input to the WebSocket agent tool, end to end: each fails at once, in its check, saying what to fix.

A wrong URL, a token the service refuses, a server that closes mid-message, a
frame that is not JSON and a protocol field path that matches no field: the
misbehaving ones come from a real WebSocket server (robot/MisbehavingAgentService.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    closed_port,
    keywords_in,
    run_robot,
)

BAD_INPUT = ROBOT_DIR / "bad_websocket_input.robot"
QUICK = timedelta(seconds=10)  # the reference service's start included
START = r"^Agent runs did not complete: 2 of 2 runs failed: "
FAILURES = {
    "A WebSocket URL Nobody Listens On Is Reported": [
        START + r"connect_failed 2 \(first, agent \d: cannot open ws://127\.0\.0\.1:\d+/agents: ConnectionRefusedError",
        r"; check the URL \(scheme, host, port, path\) and that the service runs there\)\.$",
    ],
    "A Token The Service Refuses Is Reported": [
        START + r"refused 2 \(first, agent \d: token refused: the token's signature does not match this service's "
        r"secret; the service refused the users' sessions; if it refused their token, check the secret it verifies "
        r"tokens with \(\$\{AGENT_SERVICE_JWT_SECRET\} or STAMPEDE_AGENT_JWT_SECRET\), the token's claims",
    ],
    "A Server That Closes Mid-Message Is Reported": [
        START + r"bad_frame 2 \(first, agent \d: the service closed the connection mid-message \(stream ends after "
        r"19 bytes, expected 100 bytes\); the service sent something the protocol cannot read: check that the URL",
    ],
    "A Message That Is Not JSON Is Reported": [
        START + r"bad_frame 2 \(first, agent \d: the service sent a frame that is not JSON \(28 characters\); ",
    ],
    "A Protocol Field Path That Matches No Field Is Reported": [
        START + r"field_missing 2 \(first, agent \d: The WebSocket protocol's field path 'sequence' \(fields\.seq, "
        r"the sequence number\) matches no field in a received message: .* the fields there are type, session_id, "
        r"user_id, resume_token, credits, seq\. Fix the path in the protocol configuration",
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(
        tmp_path_factory.mktemp("bad_websocket_input"), BAD_INPUT, variables={"CLOSED_PORT": str(closed_port())}
    )


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_fails_at_once_in_its_check_saying_what_to_fix(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *FAILURES[name])
    test = run.test(name)
    assert test.elapsed_time < QUICK, f"{name} took {test.elapsed_time}"
    failed = [keyword.name for keyword in keywords_in(test) if keyword.status == "FAIL"]
    assert failed[-1] == "All Operations Should Succeed", failed


def test_no_resume_token_or_quoted_message_reaches_the_verdict(run: RobotRun) -> None:
    message = run.test("A Protocol Field Path That Matches No Field Is Reported").message
    assert 'resume_token":' not in message and "Message: {" not in message, message


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
