"""The showcase suite ``suites/tool_conflicts`` passes, and its verdicts, histories and log say why."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from robot.result import Keyword, TestCase

from .conftest import RobotRun, assert_nothing_left_behind, keywords_in, log_html_strings, messages_in

NAIVE_TEST = "Naive Read-Modify-Write Loses Updates And Stampede Catches It"
STRATEGY_CELLS = {
    NAIVE_TEST,
    "Naive Read-Modify-Write Is Refused At Repeatable Read",
    "Naive Read-Modify-Write Is Refused At Serializable",
    *(
        f"{strategy} {verb} Every Credit At {isolation}"
        for strategy, verb in (
            ("Atomic Update", "Keeps"),
            ("Optimistic Version Check", "Keeps"),
            ("Select For Update", "Keeps"),
        )
        for isolation in ("Read Committed", "Repeatable Read", "Serializable")
    ),
    "Retrying On 40001 Does Not Help At Read Committed And Stampede Catches It",
    "Retrying On 40001 Keeps Every Credit At Repeatable Read",
    "Retrying On 40001 Keeps Every Credit At Serializable",
}
JSON_CONFIG_TESTS = {
    "Version-Checked Updates Keep Every Field",
    "Last Writer Wins Loses Field Updates And Stampede Catches It",
}
# Each of these ends a launch and saves its history (a background one ends when waited for or stopped).
LAUNCHING_KEYWORDS = {"Launch Agents", "Wait For Launch", "Stop Launch"}
HISTORY_FIELDS = {"agent", "outcome", "start_ns", "end_ns"}
OUTCOMES = {"ok", "conflict", "serialization_failure", "deadlock", "timeout", "error"}


@pytest.fixture(scope="module")
def run(tool_conflicts_run: RobotRun) -> RobotRun:
    return tool_conflicts_run


def _launch_tables(run: RobotRun) -> list[str]:
    return [m.message for m in messages_in(run.suite) if m.html and "<caption" in m.message and ">Launch " in m.message]


def _expected_failure(run: RobotRun, checker: str) -> Keyword:
    """The ``checker`` keyword run inside Run Keyword And Expect Error in the naive test."""
    found = [
        kw
        for kw in keywords_in(run.test(NAIVE_TEST))
        if kw.name == checker and isinstance(kw.parent, Keyword) and kw.parent.name == "Run Keyword And Expect Error"
    ]
    assert len(found) == 1, f"expected {checker} once under Run Keyword And Expect Error, found {len(found)}"
    return found[0]


def _passed_or_rightly_skipped(test: TestCase) -> bool:
    """Passed; or, on a server of your own without prepared transactions, a two-phase commit test skipped saying so."""
    external = bool(os.environ.get("STAMPEDE_PG_DSN"))
    return test.status == "PASS" or (
        external and test.status == "SKIP" and "max_prepared_transactions = 0" in test.message
    )


def test_every_test_passes(run: RobotRun) -> None:
    failed = {test.name: test.message for test in run.suite.all_tests if not _passed_or_rightly_skipped(test)}
    assert not failed, failed
    assert run.returncode == 0, run.console
    assert run.suite.status == "PASS"


def test_the_expected_tests_ran(run: RobotRun) -> None:
    names = set(run.tests)
    assert len(STRATEGY_CELLS) == 15
    missing = (STRATEGY_CELLS | JSON_CONFIG_TESTS) - names
    assert not missing, f"missing tests: {sorted(missing)}"
    assert run.suite.statistics.total == len(names) >= 17


def test_naive_strategy_fails_both_checkers_with_numbers(run: RobotRun) -> None:
    lost = _expected_failure(run, "No Update Should Be Lost")
    assert lost.status == "FAIL"
    match = re.search(r"Lost updates: expected 0, found (\d+)", lost.message)
    assert match, lost.message
    assert int(match.group(1)) > 0

    conserved = _expected_failure(run, "Credits Should Be Conserved")
    assert conserved.status == "FAIL"
    match = re.search(r"Credits do not add up: expected (\d+) .*found (\d+): (\d+) credits", conserved.message)
    assert match, conserved.message
    expected, found, credits = map(int, match.groups())
    assert credits == abs(found - expected) > 0, conserved.message

    # The wrapper passed because the checker failed as expected: the test itself is green.
    for wrapper in (lost.parent, conserved.parent):
        assert isinstance(wrapper, Keyword)
        assert wrapper.status == "PASS"


def test_output_files_exist(run: RobotRun) -> None:
    for name in ("output.xml", "log.html", "report.html"):
        assert (run.output_dir / name).stat().st_size > 0, name


def test_one_history_per_launch_with_every_operation(run: RobotRun) -> None:
    launches = [kw for kw in keywords_in(run.suite) if kw.name in LAUNCHING_KEYWORDS]
    files = sorted((run.output_dir / "histories").glob("*.jsonl"))
    assert len(launches) == len(files) == len(_launch_tables(run)) >= 17
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines, f"{path.name} is empty"
        for line in lines:
            record = json.loads(line)
            assert record.keys() >= HISTORY_FIELDS, f"{path.name}: {line}"
            assert record["outcome"] in OUTCOMES, f"{path.name}: {line}"
            assert isinstance(record["agent"], int)
            assert 0 < record["start_ns"] <= record["end_ns"], f"{path.name}: {line}"


def test_launch_tables_match_their_histories(run: RobotRun) -> None:
    """Each launch table names its history file and counts exactly the operations that file holds."""
    for table in _launch_tables(run):
        operations = re.search(r"<td>operations</td><td>(\d+) in ", table)
        history = re.search(r"<td>history</td><td>([^<]+\.jsonl)</td>", table)
        assert operations and history, table
        path = Path(history.group(1))
        assert path.parent == run.output_dir / "histories", path
        assert len(path.read_text(encoding="utf-8").splitlines()) == int(operations.group(1)), path.name


def test_log_shows_launch_summaries_with_percentiles(run: RobotRun) -> None:
    tables = _launch_tables(run)
    assert tables
    for table in tables:
        assert re.search(r"p95 \d+(\.\d+)? ?(ns|µs|us|ms|s)\b", table), table
        assert "success rate" in table and "%" in table
    shown = [text for text in log_html_strings(run.output_dir / "log.html") if ">Launch " in text and "p95" in text]
    assert len(shown) >= len(set(tables)), "log.html lacks the launch summary tables"


def test_services_came_from_where_the_environment_says(run: RobotRun) -> None:
    kind = "external" if os.environ.get("STAMPEDE_PG_DSN") else "embedded"
    setup_messages = " ".join(m.message for m in messages_in(run.suite.setup))
    assert f"{kind} PostgreSQL" in setup_messages, setup_messages


def test_nothing_left_behind(run: RobotRun) -> None:
    assert_nothing_left_behind(run)
