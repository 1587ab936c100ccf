"""Test case 10 end to end: tools the suite writes itself pass where they are safe and are caught where they are
not; their must-fail twins fail in their last step, with the message a user needs."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import ROBOT_DIR, RobotRun, assert_failed_with, assert_nothing_left_behind, logged, run_robot

SUITE = "suites/tool_conflicts/10__user_code_tools.robot"
TWINS = ROBOT_DIR / "failing_twins" / "user_code.robot"
LOST = (
    r"^Lost updates: expected 0, found [1-9]\d*\. [1-9]\d* times? two or more agents read the same balance of the "
    r"same account and all of them wrote successfully, so each write overwrote another: [1-9]\d* of 200 successful "
    r"updates were lost\.$"
)
IN_FLIGHT = (
    r"^Invariant broken: SELECT sum\(balance\) = 2 \* 100000 FROM accounts WHERE id IN \(\d+, \d+\) returned false "
    r"[\d.]+ (ms|s) into the launch \(sample \d+ of \d+\); expected true\. [1-9]\d* of \d+ samples broke it"
)
TWIN_FAILURES: dict[str, list[str]] = {
    "A Python Tool That Reads Then Writes Loses Updates": [LOST],
    "A SQL Transaction That Reads Then Writes At Read Committed Loses Updates": [LOST],
    "The Balance After Lost Updates Misses Deductions": [
        r"^Invariant broken: SELECT balance FROM accounts WHERE id = \d+ returned \d+ now \(sample 1 of 1\); "
        r"expected 99800\. 1 of 1 sample broke it\.$"
    ],
    "Transfers In Two Steps Break The Total While They Run": [IN_FLIGHT],
    "An Invariant Over A Launch That Ended Before Sampling Judges Nothing": [
        r"^Invariant not judged: the launch ended before the first sample could be taken during it: launch for "
        r"longer or sample more often \(every=\)\."
    ],
    "An Invariant Query Returning Several Rows Is Refused": [
        r"^The invariant query returned \d+ rows, not 1: it must return one row with one value, e\.g\. "
    ],
    "A Python Factory With The Wrong Signature Is Refused When Defined": [
        r"^Python tool 'deduct': the factory \S+broken_tools\.py:two_arguments takes \(context, account\); it must "
        r"take exactly one argument, the agent's context"
    ],
    "A Python Module That Does Not Exist Is Refused When Defined": [
        r"^Python tool 'deduct': there is no module 'no_such_tools_module' on the Python path\. Put its folder on the "
        r"path \(robot --pythonpath DIR\), or give the file itself"
    ],
    "A Python Factory That Raises Fails The Launch Naming The Agent": [
        r"^Launch \d+ of 'deduct' did not run as asked: agent 1 could not start: StampedeError: Python tool 'deduct': "
        r"the factory \S+:Raising raised LookupError: no account for agent 1;"
    ],
    "A Transaction Whose Second Statement Does Not Parse Is Refused When Defined": [
        r"^Statement 2 of SQL transaction tool 'deduct' does not run on PostgreSQL: 42601 syntax error at or near "
        r"\"WHERE\" at character \d+\. Statement: UPDATE accounts SET WHERE id = :account$"
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    return run_robot(tmp_path_factory.mktemp("user_code_tools"), SUITE, TWINS)


def test_the_suite_passes(run: RobotRun) -> None:
    suite = run.child_suite("User Code Tools")
    failed = {test.name: test.message for test in suite.tests if test.status != "PASS"}
    assert not failed and len(suite.tests) == 7, failed


@pytest.mark.parametrize("name", sorted(TWIN_FAILURES))
def test_each_twin_fails_in_its_last_step_with_a_message_that_says_what_to_fix(run: RobotRun, name: str) -> None:
    assert_failed_with(run, name, *TWIN_FAILURES[name])


def test_only_the_twins_fail(run: RobotRun) -> None:
    assert run.returncode == len(TWIN_FAILURES), run.console
    assert {test.name for test in run.child_suite("User Code").tests} == set(TWIN_FAILURES)


def test_the_version_check_retried_conflicts_and_kept_every_credit(run: RobotRun) -> None:
    name = "A SQL Transaction With A Version Check Keeps Every Credit"
    (retried,) = logged(run, name, r"^(\d+) version checks failed and were retried\.$")
    assert int(retried.group(1)) > 0
    assert logged(run, name, r"^No lost updates: expected 0, found 0 among 200 successful operations")
    assert logged(run, name, r"^Invariant held in 1 sample: SELECT balance FROM accounts WHERE id = \d+ returned 99800")


def test_the_safe_transfers_were_sampled_all_through_the_launch(run: RobotRun) -> None:
    name = "The Total Holds Throughout Transfers Made In One Transaction"
    (held,) = logged(run, name, r"^Invariant held in (\d+) samples: (\d+) samples every 50\.0 ms during the launch")
    assert int(held.group(2)) >= 10, held.group(0)


def test_the_history_records_what_each_transaction_read(run: RobotRun) -> None:
    (path,) = (run.output_dir / "histories").glob("A_SQL_Transaction_With_A_Version_Check*.jsonl")
    reads = [json.loads(line)["read"] for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(reads) == 200 and all(set(read) == {"account", "balance", "version"} for read in reads)
    assert len({read["version"] for read in reads}) == 200, "each successful write read its own version"


def test_no_password_reaches_the_log(run: RobotRun) -> None:
    texts = run.output_texts()
    assert not [name for name, text in texts.items() if re.search(r"postgres(ql)?://[^\s'\"]*:[^\s'\"*@]+@", text)]


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
