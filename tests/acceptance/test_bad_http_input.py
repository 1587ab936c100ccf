"""Bad input to the HTTP agent tool, end to end: each fails at once, in its launch, saying what to fix.

A base URL nothing listens on, and tokens the service answers 401, against the
reference agent service's real HTTP API. The other bad inputs of an HTTP
service (a 500 mid-stream, a cut stream, data that is not JSON, a field path
matching nothing) come from Tandem's faults: tests/integration/test_http_agents.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_failed_with, assert_nothing_left_behind, closed_port, run_robot

BAD_INPUT = ROBOT_DIR / "bad_http_input.robot"
QUICK = timedelta(seconds=10)
FAILURES = {
    "An HTTP Base URL Nobody Listens On Is Reported": [
        r"^Launch of 'nowhere' with 2 agents could not start: Nothing accepts connections at the HTTP agent service "
        r"http://127\.0\.0\.1:\d+/api \(\[Errno 111\] Connection refused\): start the service, or fix the base URL "
        r"\(the tool's base_url or the protocol's base_url\)$",
    ],
    "A Token The HTTP Service Refuses Is Reported": [
        r"^Launch \d+ of 'refused' did not run as asked: agent \d could not start: ConfigurationError: The HTTP agent "
        r"service refused user-\d's token: POST /threads was answered HTTP 401: "
        r"\{\"error\":\"unauthorized\",\"message\":\"token refused: [^\"]+\"\}\. Check the secret the tokens are "
        r"signed with \(STAMPEDE_AGENT_JWT_SECRET or \$\{AGENT_SERVICE_JWT_SECRET\}\), the token's claims",
        r"where the token goes \(auth, header_name, header_value, query_param\)",
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(
        tmp_path_factory.mktemp("bad_http_input"), BAD_INPUT, variables={"CLOSED_PORT": str(closed_port())}
    )


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_fails_at_once_in_its_launch_saying_what_to_fix(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *FAILURES[name])
    test = run.test(name)
    assert test.elapsed_time < QUICK, f"{name} took {test.elapsed_time}"
    assert test.body.filter(messages=False)[-1].name == "Launch Agents"


def test_the_refused_token_is_not_quoted(run: RobotRun) -> None:
    message = run.test("A Token The HTTP Service Refuses Is Reported").message
    assert "not-a-token-of-this-service" not in message, message


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
