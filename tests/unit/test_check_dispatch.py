"""One check per idea: each merged check judges a launch by the tool it ran, and refuses a tool it cannot judge."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from stampede.agents import BaseTool
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.websocket import DONE_KEY, FIRST_EVENT_KEY
from stampede.workloads.lock_contention import LockContentionTool
from stampede.workloads.transfers import TransferTool
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede_robot.keywords.checks import CheckKeywords
from stampede_robot.keywords.coordination import CoordinationCheckKeywords
from stampede_robot.keywords.locks import LockCheckKeywords
from stampede_robot.keywords.parallelism import ParallelismCheckKeywords
from stampede_robot.runtime import LaunchRecord, Runtime

MS = 1_000_000


def _runtime_with(tool: BaseTool, *operations: Operation) -> Runtime:
    runtime = Runtime()
    result = SimpleNamespace(history=History(list(operations)))
    runtime.launches.append(LaunchRecord(1, tool, result, None, Path()))  # type: ignore[arg-type]
    return runtime


def _tool(kind: type[BaseTool], name: str) -> BaseTool:
    """A tool of ``kind`` as far as the checks look at it: its type and its name."""
    tool = kind.__new__(kind)
    tool.name = name
    return tool


def _other(name: str = "deduct") -> BaseTool:
    tool = BaseTool()
    tool.name = name
    return tool


def _run(agent: int, sent_ms: int, first_event_ms: int, done_ms: int) -> Operation:
    """An agent run sent at ``sent_ms`` that the service began at ``first_event_ms`` and finished at ``done_ms``."""
    read = {FIRST_EVENT_KEY: first_event_ms * MS, DONE_KEY: done_ms * MS}
    return Operation(agent, f"user-{agent}", "run", 0, sent_ms * MS, done_ms * MS, Outcome.OK, read=read)


@pytest.fixture(autouse=True)
def _no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks record verdicts for the run's report; outside a run there is none."""
    monkeypatch.setattr("stampede_robot.component.findings.judged", lambda *_: None)


def test_agents_should_run_in_parallel_times_websocket_runs_from_their_first_event() -> None:
    # Four requests all in flight at once, but the service began each run only when the one before ended.
    runs = [_run(agent, 0, 100 * (agent - 1), 100 * agent) for agent in range(1, 5)]
    checks = ParallelismCheckKeywords(_runtime_with(_tool(WebSocketAgentTool, "chat"), *runs))
    with pytest.raises(AssertionError, match=r"runs timed from their first event"):
        checks.agents_should_run_in_parallel(at_least=2)


def test_agents_should_run_in_parallel_times_other_tools_operations_as_the_tool_did() -> None:
    # The same operations from a tool that is not a WebSocket agent tool: all four in flight for their whole time.
    runs = [_run(agent, 0, 100 * (agent - 1), 100 * agent) for agent in range(1, 5)]
    checks = ParallelismCheckKeywords(_runtime_with(_other("requests"), *runs))
    checks.agents_should_run_in_parallel(at_least=2)


def test_one_session_check_judges_websocket_sessions() -> None:
    checks = LockCheckKeywords(_runtime_with(_tool(WebSocketAgentTool, "two tabs")))
    with pytest.raises(AssertionError, match=r"^Single session not judged: every user ran one agent"):
        checks.each_user_should_have_at_most_one_active_session()


def test_one_session_check_judges_sessions_registered_by_a_lock() -> None:
    checks = LockCheckKeywords(_runtime_with(_tool(LockContentionTool, "sessions")))
    with pytest.raises(AssertionError, match=r"^Single active session not judged: no user ran two agents"):
        checks.each_user_should_have_at_most_one_active_session()


def test_one_session_check_refuses_a_tool_without_sessions() -> None:
    checks = LockCheckKeywords(_runtime_with(_other()))
    with pytest.raises(
        ConfigurationError, match=r"^Launch 1 ran 'deduct', which keeps no sessions: define a lock tool .*WebSocket"
    ):
        checks.each_user_should_have_at_most_one_active_session()


def test_credits_check_judges_a_transfer_tools_accounts() -> None:
    transfers = _tool(TransferTool, "transfer")
    transfers.initial_balances = None  # type: ignore[attr-defined]
    checks = CheckKeywords(_runtime_with(transfers))
    with pytest.raises(ConfigurationError, match=r"^Launch 1 of 'transfer' recorded no starting balances\."):
        checks.credits_should_be_conserved()


def test_credits_check_refuses_a_tool_that_moves_no_credits() -> None:
    checks = CheckKeywords(_runtime_with(_other("append events")))
    with pytest.raises(
        ConfigurationError,
        match=r"^Launch 1 ran 'append events', which moves no credits this check knows: it judges a credit "
        r"deduction tool, a transfer tool or a WebSocket agent tool\.$",
    ):
        checks.credits_should_be_conserved()


def _failed(agent: int, outcome: Outcome, error: str) -> Operation:
    return Operation(agent, f"user-{agent}", "op", 0, 0, MS, outcome, error=error)


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        (TransferTool, r"^Forward progress failed: 1 of 2 transfers completed, 1 did not \(50\.0%\): 1 ended in a"),
        (WebSocketAgentTool, r"^Agent runs did not complete: 1 of 2 runs failed: refused 1 \(first, agent 2"),
        (None, r"^Not every operation succeeded: expected 2 of 2, 1 succeeded and 1 did not"),
    ],
)
def test_all_operations_should_succeed_tells_failures_in_the_terms_of_the_tool(
    kind: type[BaseTool] | None, says: str
) -> None:
    tool = _other("sql") if kind is None else _tool(kind, "tool")
    error = "refused" if kind is WebSocketAgentTool else "40P01"
    outcome = Outcome.ERROR if kind is WebSocketAgentTool else Outcome.DEADLOCK
    operations = [Operation(1, "user-1", "op", 0, 0, MS, Outcome.OK), _failed(2, outcome, error)]
    checks = CheckKeywords(_runtime_with(tool, *operations))
    with pytest.raises(AssertionError, match=says):
        checks.all_operations_should_succeed()


def test_all_or_nothing_refuses_a_tool_that_does_not_span_services() -> None:
    checks = CoordinationCheckKeywords(_runtime_with(_other()))
    with pytest.raises(
        ConfigurationError,
        match=r"^Launch 1 ran 'deduct', which does not span services: define a two-phase commit tool with Define "
        r"Two-Phase Commit Tool or a saga tool with Define Saga Tool\.$",
    ):
        checks.every_operation_should_be_all_or_nothing()


def test_get_lost_update_count_over_nothing_to_count_fails_rather_than_returning_zero() -> None:
    """Before, it returned 0, so 'Should Be Equal ${lost} 0' passed on a launch that recorded no reads."""
    blind = Operation(1, "user-1", "deduct", 0, 0, MS, Outcome.OK)
    checks = CheckKeywords(_runtime_with(_other(), blind))
    with pytest.raises(AssertionError, match=r"^Nothing to check for lost updates"):
        checks.get_lost_update_count()


def test_no_update_should_be_lost_groups_by_the_subject_and_version_it_is_given() -> None:
    """A tool of the suite's own names what it read its way: two writers of seat 7 at version 3 lost one update."""
    writers = [
        Operation(agent, f"user-{agent}", "book", 0, 0, MS, Outcome.OK, read={"seat": 7, "version": 3})
        for agent in (1, 2)
    ]
    checks = CheckKeywords(_runtime_with(_other("book"), *writers))
    with pytest.raises(AssertionError, match=r"^Nothing to check for lost updates: no successful operation recorded"):
        checks.no_update_should_be_lost()
    with pytest.raises(AssertionError, match=r"^Lost updates: expected 0, found 1\. .* same version of the same seat"):
        checks.no_update_should_be_lost(subject="seat", version="version")
