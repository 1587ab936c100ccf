"""Stampede on an HTTP + SSE service it did not write: Tandem (tandem_http_service.py), configured from its docs.

One robot run of robot/tandem_http_service.robot against a real Tandem: queued runs on shared
threads all succeed; refusals under reject are conflicts, not successes; a protocol mistake and
missing tokens fail when the tool is defined, saying what to fix; the tool logs which base URL it
used; no API key reaches an output.
"""

from __future__ import annotations

import json
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
    logged,
    run_robot,
)
from .tandem_http_service import TandemHttpService

SUITE = ROBOT_DIR / "tandem_http_service.robot"
QUEUED = "Queued Runs On Shared Threads All Succeed"
FAILURES = {
    "Runs Refused Under Reject Are Not Successes": [
        r"^Not every operation succeeded: expected 4 of 4, 1 succeeded and 3 did not",
        r"refused",
    ],
    "A Protocol With An Unknown Key Fails When The Tool Is Defined": [
        r"^HTTP protocol: unknown key\(s\) 'on_busy'; known keys are answers, auth, base_url"
    ],
    "A Protocol That Sends Tokens Needs Tokens Or A Service To Sign Them": [
        r"^The HTTP protocol for http://127\.0\.0\.1:\d+/api/v1 sends a token \(auth header\), but no tokens were "
        r"given and no agent service is in use to sign them for: give tokens"
    ],
}
KEYS = {f"user-{n}": secrets.token_urlsafe(16) for n in range(1, 3)}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RobotRun]:
    tandem = TandemHttpService(KEYS)
    url = tandem.start()
    try:
        yield run_robot(
            tmp_path_factory.mktemp("tandem_http_service"),
            SUITE,
            variables={"TANDEM": url, "API_KEYS_JSON": json.dumps(KEYS)},
        )
    finally:
        tandem.stop()


def test_queued_runs_on_tandem_pass_and_the_tool_says_which_base_url_it_used(run: RobotRun) -> None:
    assert_passed(run, QUEUED)
    (used,) = logged(run, QUEUED, r"^HTTP agent tool 'queued' talks to .*")
    assert re.fullmatch(
        r"HTTP agent tool 'queued' talks to http://127\.0\.0\.1:\d+/api/v1 \(given as base_url; the protocol's own "
        r"base_url http://tandem\.example\.com/api/v1 is not used\)\.",
        used[0],
    ), used[0]


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_each_mistake_fails_where_it_should_with_its_cause(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *FAILURES[name])


def test_no_api_key_reaches_an_output(run: RobotRun) -> None:
    for key in KEYS.values():
        assert_nowhere_in_outputs(run, key)


def test_nothing_is_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
