"""Stampede on an agent service it did not write: Relay (relay_agent_service.py), configured from its documentation.

One robot run of robot/relay_agent_service.robot against a real Relay: the
correct service passes every WebSocket check; a leak, reordered events and
refused tokens each fail the check meant for them with the cause; a protocol
mistake and a missing secret fail when the tool is defined, saying what to fix;
the tool logs which URL it used; neither the secret nor a token reaches an output.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from .conftest import (
    ROBOT_DIR,
    RobotRun,
    assert_failed_with,
    assert_nothing_left_behind,
    assert_nowhere_in_outputs,
    assert_passed,
    keywords_in,
    logged,
    messages_in,
    run_robot,
)
from .relay_agent_service import RelayAgentService

SUITE = ROBOT_DIR / "relay_agent_service.robot"
CORRECT = "The Correct Service Passes Every WebSocket Check"
LEAK = "A Leak To Another User Is One Finding Of The Contamination Check"
FAILURES = {
    LEAK: [
        r"^Messages reached the wrong user: \d+ of \d+ messages on the connections of [1-4] of 4 users carried "
        r"another user's id or marker; user-\d received messages of user-\d"
    ],
    "Reordered Events Fail The Ordering Check": [
        r"^Events arrived out of order: 24 of \d+ sequence numbers broke the order \(gaps, repeats or late arrivals\) "
        r"on 4 of 4 connections; first: agent \d, gap: seq \d+ missing before \d+; 12 of 12 runs broke the lifecycle "
        r"run\.started → … → run\.finished; first: run user-\d-run-\d, tool after step "
        r"\(the table shows the first 20 of 36\)\.$"
    ],
    "Tokens Without Relay's Audience Are Refused And Never Answered": [
        r"^Users were not answered: 4 of 4 users were refused, which is no answer \(first: close 1008, invalid "
        r"token: Token is missing the \"aud\" claim\): the service refused the users' sessions; if it refused their "
        r"token, check the secret .* the token's claims \(the protocol's \"token\": subject_claim, issuer, audience, "
        r"claims, algorithm\), the auth mode \(hello, header or query\) and where the token goes .*query_param\)\.$"
    ],
    "A Protocol Without Hello That Waits For The Reference Ready Event Is Refused": [
        r"^WebSocket protocol: auth 'query' sends no hello, yet ready_event is left at the reference service's "
        r"'session_started', which answers a hello: set \"ready_event\" to the event your service sends when a "
        r"session is open, or to null if it sends none$"
    ],
    "A Tool Whose Tokens Stampede Cannot Sign Fails When Defined": [
        r"^Stampede cannot issue tokens for the agent service at ws://127\.0\.0\.1:\d+/unsigned/v2/stream: it does "
        r"not know the secret that service verifies HS256 tokens with\. Set STAMPEDE_AGENT_JWT_SECRET \(or the Robot "
        r"variable \$\{AGENT_SERVICE_JWT_SECRET\}\) to it\.$"
    ],
}
JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")


@pytest.fixture(scope="module")
def secret() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, secret: str) -> Iterator[RobotRun]:
    relay = RelayAgentService(secret)
    url = relay.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STAMPEDE_AGENT_JWT_SECRET", secret)
        env.delenv("STAMPEDE_AGENT_SERVICE_URL", raising=False)
        try:
            yield run_robot(
                tmp_path_factory.mktemp("relay_agent_service"),
                SUITE,
                variables={"AGENT_SERVICE_URL": f"{url}/v2/stream", "RELAY": url},
            )
        finally:
            relay.stop()


def test_the_correct_service_passes_every_websocket_check(run: RobotRun) -> None:
    assert_passed(run, CORRECT)
    ordering = logged(run, CORRECT, r"^Events arrived in order: .*")
    assert ordering and ordering[0][0].endswith("12 runs followed run.started → … → run.finished."), ordering


def test_the_tool_uses_the_service_under_test_and_says_so(run: RobotRun) -> None:
    # Once: the protocol's own url (wss://relay.example.com) silently won, and every user failed to connect.
    (used,) = logged(run, CORRECT, r"^WebSocket agent tool 'relay' talks to .*")
    assert re.fullmatch(
        r"WebSocket agent tool 'relay' talks to ws://127\.0\.0\.1:\d+/v2/stream \(the agent service in use, see Use "
        r"Agent Service; the protocol's own url wss://relay\.example\.com/v2/stream is not used\)\.",
        used[0],
    ), used[0]
    (leaky,) = logged(run, LEAK, r"^WebSocket agent tool 'leaky' talks to .*")
    assert re.match(
        r"WebSocket agent tool 'leaky' talks to ws://127\.0\.0\.1:\d+/leak/v2/stream \(given as url;", leaky[0]
    )


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_bug_and_mistake_fails_where_it_should_with_its_cause(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *FAILURES[name])


def test_a_secret_stampede_lacks_is_named_in_the_log_when_the_tool_is_defined(run: RobotRun) -> None:
    test = run.test("A Tool Whose Tokens Stampede Cannot Sign Fails When Defined")
    failed = [m.message for m in messages_in(test) if m.level == "FAIL"]
    assert any("Set STAMPEDE_AGENT_JWT_SECRET (or the Robot variable ${AGENT_SERVICE_JWT_SECRET})" in m for m in failed)
    assert [kw.name for kw in keywords_in(test) if kw.status == "FAIL"] == ["Define Websocket Agent Tool"]


def test_one_leak_reads_as_one_leak(run: RobotRun) -> None:
    ordering = logged(run, LEAK, r"^Events arrived in order: .*")
    assert ordering, "the ordering check passed in the leak test"
    assert re.search(
        r"; left out \d+ messages? carrying another user's id or marker, with \d+ gaps or runs they cut short "
        r"\(the contamination check's finding\)\.$",
        ordering[0][0],
    ), ordering[0][0]


def test_neither_the_secret_nor_a_token_reaches_an_output(run: RobotRun, secret: str) -> None:
    assert_nowhere_in_outputs(run, secret)
    leaked = {name: JWT.findall(text) for name, text in run.output_texts().items() if JWT.search(text)}
    assert not leaked, leaked


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
