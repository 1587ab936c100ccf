"""suites/mcp_tools passes on the bug-free reference MCP server; each bug switch fails its own check in a twin.

The twins (robot/failing_twins/mcp.robot) run the suite's own keywords against the reference server started
with one bug each; each must fail in its last step, the check, with the numbers that say what broke. Neither
run may leave a server process, a schema or a key behind.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil
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

SUITE = Path(__file__).resolve().parents[2] / "suites" / "mcp_tools" / "mcp_tool_servers.robot"
TWINS = ROBOT_DIR / "failing_twins" / "mcp.robot"
BAD_INPUT = ROBOT_DIR / "bad_mcp_input.robot"
ERAS = ("Session", "Stateless")
PASSING = [
    *(
        f"{check} In The {era} Era"
        for check in (
            "Every Deduction Is Counted",
            "Every Answer Is Its Own Request's",
            "Notes Stay With Their User",
            "Slow Calls Overlap",
            "A Cancelled Call Takes No Effect",
        )
        for era in ERAS
    ),
    "A Cancelled Call Gets No Late Answer In The Session Era",
    "Every Deduction Over Stdio Is Counted",
    "Deleted Sessions Are Reaped",
    "Server Memory Per Session Is Given Back",
]
TWIN_FAILURES = {
    "Unlocked Deductions Lose Updates": [
        r"^Invariant broken: SELECT sum\(1000000 - balance\) FROM mcp_credits returned (1\d\d|\d\d?) now "
        r"\(sample 1 of 1\); expected 200\."
    ],
    "Replies Keyed By Request Id Alone Cross Between Sessions": [
        r"^\d+ calls? of 200 got an answer that is not theirs \(\d+ carry the nonce of another call of the launch: "
        r"answers were delivered to the wrong request\)"
    ],
    "Notes Keyed By The Session Header Are Shared In The Stateless Era": [
        r"^\d+ answers? of 100 returned markers written by other users: the tool's state is shared between users"
    ],
    "A Sync Tool That Blocks The Loop Serializes The Calls": [
        r"^Slow work ran one at a time: 50 operations of 200\.0 ms each got through in [\d.]+ s: [01]\.\d\d at once "
        r"\(50 agents\); expected at least 12\.50\.$"
    ],
    "A Call That Ignores Its Cancellation Still Charges": [
        r"^Invariant broken: SELECT coalesce\(sum\(1000000 - balance\), 0\) FROM mcp_credits returned 50 now "
        r"\(sample 1 of 1\); expected 0\."
    ],
    "A Call That Ignores Its Cancellation Is Answered Late": [
        r"^10 cancelled calls of 10 got a response after the cancel: the server went on with calls it was told to "
        r"stop\.$"
    ],
    "A Call That Ignores Its Closed Stream Still Charges": [
        r"^Invariant broken: SELECT coalesce\(sum\(1000000 - balance\), 0\) FROM mcp_credits returned 50 now "
        r"\(sample 1 of 1\); expected 0\."
    ],
    "Sessions That Are Never Reaped Keep Their Memory": [
        r"^The MCP server \(pid \d+\) kept (2[5-9]\d|3\d\d)\.\d KB per ended session \([\d.]+ MB before the launch, "
        r"[\d.]+ MB after 51 sessions ended\): more than the 65\.5 KB allowed: "
        r"the state of ended sessions is not reaped\.$"
    ],
    "Sessions That Are Never Reaped Keep Their State": [
        r"^The server keeps state for 51 sessions after 51 were deleted: 51 never reaped\.$"
    ],
}
BAD_INPUT_FAILURES = {
    "An Endpoint That Is Not MCP Is Refused": [
        r"^Launch of 'not mcp' with 2 agents could not start: http://127\.0\.0\.1:\d+/sessions is not an MCP "
        r"Streamable HTTP endpoint: HTTP 200 with a body that is not JSON-RPC 2\.0: .*Give the server's MCP endpoint"
    ],
    "An Unknown Tool Is Refused Listing The Server's Tools": [
        r"has no tool 'dedcut': its tools are append_note, balance, deduct, read_notes, sleep$"
    ],
    "Arguments Failing The Input Schema Show Its Complaint": [
        r"fail its input schema at amount: 'lots' is not of type 'integer'\. Its schema: \{\"properties\""
    ],
    "A Stdio Command That Exits At Once Shows Its Stderr": [
        r"did not answer initialize on stdout: the server process ended its output \(exit code 1\); its stderr:\n"
        r"no database configured$"
    ],
    "An Unknown Bug Switch Is Refused": [
        r"^Unknown MCP server bug switch 'teleport': known switches are lost_update, crossed_replies, "
    ],
}
_SERVER_PID = re.compile(r"^Reference MCP server at http://127\.0\.0\.1:\d+/mcp \(pid (\d+),")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("mcp_suite"), SUITE)


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("mcp_twins"), TWINS)


@pytest.fixture(scope="module")
def bad_input(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("mcp_bad_input"), BAD_INPUT)


def _server_pids(run: RobotRun) -> list[int]:
    return [int(found.group(1)) for m in messages_in(run.suite) if (found := _SERVER_PID.match(m.message))]


def _assert_servers_gone(run: RobotRun, started: int) -> None:
    pids = _server_pids(run)
    assert len(pids) == started, f"expected {started} MCP server starts in the log, found {pids}"
    alive = [pid for pid in pids if psutil.pid_exists(pid) and "reference_mcp_server" in _cmdline(pid)]
    assert not alive, f"MCP servers left running: {alive}"


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def test_the_suite_passes_in_both_eras(suite: RobotRun) -> None:
    assert set(suite.tests) == set(PASSING)
    assert_passed(suite, *PASSING)
    assert suite.returncode == 0, suite.console


def test_the_suite_leaves_nothing_behind(suite: RobotRun) -> None:
    assert_nothing_left_behind(suite)
    _assert_servers_gone(suite, 1)


def test_exactly_the_twins_ran(twins: RobotRun) -> None:
    assert set(twins.tests) == set(TWIN_FAILURES)


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_bug_switch_fails_its_own_check_in_its_last_step(twins: RobotRun, name: str) -> None:
    assert_failed_with(twins, name, *TWIN_FAILURES[name])


def test_the_twins_leave_nothing_behind(twins: RobotRun) -> None:
    assert_nothing_left_behind(twins)
    _assert_servers_gone(twins, len(TWIN_FAILURES))


@pytest.mark.parametrize("name", sorted(BAD_INPUT_FAILURES))
def test_bad_input_fails_at_once_saying_what_to_fix(bad_input: RobotRun, name: str) -> None:
    assert set(bad_input.tests) == set(BAD_INPUT_FAILURES)
    test = bad_input.test(name)
    assert test.status == "FAIL", f"{name} should fail but {test.status}"
    for pattern in BAD_INPUT_FAILURES[name]:
        assert re.search(pattern, test.message), f"{pattern!r} not in: {test.message}"


def test_bad_input_leaves_nothing_behind(bad_input: RobotRun) -> None:
    assert_nothing_left_behind(bad_input)
    _assert_servers_gone(bad_input, 2)
