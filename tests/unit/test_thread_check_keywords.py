"""The thread check keywords' glue: they find the launch's tool, read its threads on the library's loop, and judge.

The tool here is a plain object with the records an HTTP agent tool keeps (ThreadRunRecords), no service behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from stampede.agents import BaseTool
from stampede.errors import ConfigurationError
from stampede.history import History
from stampede.records.threads import (
    ForeignAccess,
    RunAttempt,
    RunPolicy,
    RunStatus,
    ServiceRun,
    ThreadFinal,
    ThreadMessage,
    ThreadRead,
    ThreadRunRecords,
    missing_thread_records,
)
from stampede.records.websocket import MessageLog, ReceivedMessage
from stampede.workloads.http_agents import HttpAgentTool
from stampede.workloads.http_protocol import reference_service
from stampede_robot.keywords.threads import ThreadCheckKeywords
from stampede_robot.keywords.websocket import WebSocketCheckKeywords
from stampede_robot.runtime import LaunchRecord, Runtime

MS = 1_000_000


class RecordedThreads(BaseTool):
    """Two runs of user-1 on thread t-1, one after the other, as an HTTP agent tool would have recorded them."""

    def __init__(self, *, rolled_back_kept: bool = False, foreign_served: bool = False) -> None:
        self.name = "threads"
        self.policy = RunPolicy.ROLLBACK
        self.messages_per_run = 2
        self.refusal_statuses = [409]
        old = RunAttempt(1, "user-1", "t-1", "m-1", self.policy, 0, status=200, run_id="r-1", started_ns=MS)
        old.end_ns, old.outcome, old.messages = 10 * MS, RunStatus.ROLLED_BACK, ["r-1:1"]
        new = RunAttempt(2, "user-1", "t-1", "m-2", self.policy, 5 * MS, status=200, run_id="r-2", started_ns=9 * MS)
        new.end_ns, new.outcome, new.messages = 30 * MS, RunStatus.SUCCESS, ["r-2:1", "r-2:2"]
        self.attempts = [old, new]
        gone = (ThreadMessage("r-1:1", "r-1", "m-1"),)
        kept = (ThreadMessage("r-2:1", "r-2", "m-2"), ThreadMessage("r-2:2", "r-2", "m-2"))
        self.reads = [ThreadRead(3, "user-1", "t-1", 2 * MS, 3 * MS, 200, gone)]
        runs = (ServiceRun("r-1", "t-1", RunStatus.ROLLED_BACK), ServiceRun("r-2", "t-1", RunStatus.SUCCESS))
        self.finals = [ThreadFinal("t-1", "user-1", (gone + kept) if rolled_back_kept else kept, runs)]
        status = 200 if foreign_served else 404
        self.accesses = [ForeignAccess("user-2", "user-1", "t-1", "state", status, not foreign_served)]
        self.messages = MessageLog()
        for attempt, kinds in ((old, ["run_started", "run_rolled_back"]), (new, ["run_started", "run_completed"])):
            for seq, kind in enumerate(kinds, 1):
                self.messages.append(
                    ReceivedMessage(
                        attempt.agent,
                        attempt.user,
                        attempt.stream,
                        seq,
                        "{}",
                        own_marker=attempt.marker,
                        type=kind,
                        seq=seq,
                        user_id=attempt.user,
                        marker=attempt.marker,
                        run_id=attempt.run_id,
                    )
                )
        self.read_on: list[threading.Thread] = []

    async def final_threads(self) -> list[ThreadFinal]:
        self.read_on.append(threading.current_thread())
        return self.finals

    async def probe_foreign_access(self) -> list[ForeignAccess]:
        self.read_on.append(threading.current_thread())
        return self.accesses


@pytest.fixture(autouse=True)
def _no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks record verdicts for the run's report; outside a run there is none."""
    monkeypatch.setattr("stampede_robot.component.findings.judged", lambda *_: None)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    runtime = Runtime()
    yield runtime
    runtime.close()


def launched(runtime: Runtime, tool: BaseTool) -> Runtime:
    result = SimpleNamespace(history=History())
    runtime.launches.append(LaunchRecord(1, tool, result, None, Path()))  # type: ignore[arg-type]
    return runtime


def test_the_fake_tool_and_the_http_agent_tool_offer_what_the_thread_checks_read() -> None:
    assert isinstance(RecordedThreads(), ThreadRunRecords)
    tool = HttpAgentTool(reference_service("http://127.0.0.1:9/"), tokens={"user-1": "a token"})  # never used
    assert isinstance(tool, ThreadRunRecords), missing_thread_records(tool)


def test_every_thread_check_passes_a_sound_launch_reading_on_the_librarys_loop(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = RecordedThreads()
    checks = ThreadCheckKeywords(launched(runtime, tool))
    logged: list[str] = []
    monkeypatch.setattr(checks, "log_html", logged.append)
    checks.each_thread_should_have_at_most_one_active_run()
    checks.runs_should_follow_the_thread_policy()
    checks.thread_reads_should_be_consistent()
    checks.other_users_threads_should_be_refused()
    checks.run_streams_should_carry_only_their_own_run()
    assert len(tool.read_on) == 4 and threading.main_thread() not in tool.read_on
    assert "Threads of launch 1, read after it" in logged[0]
    assert "<td>t-1</td><td>user-1</td><td>2</td><td>1 rolled_back, 1 success</td><td>not read</td>" in logged[0]
    probes = next(html for html in logged if "Requests for other users&#x27; threads after launch 1" in html)
    assert "<td>user-2</td><td>t-1</td><td>user-1</td><td>state</td><td>404</td><td>yes</td>" in probes


def test_a_broken_launch_fails_the_check_with_the_verdicts_message(runtime: Runtime) -> None:
    checks = ThreadCheckKeywords(launched(runtime, RecordedThreads(rolled_back_kept=True)))
    with pytest.raises(AssertionError, match=r"^Runs broke the rollback policy: .* message r-1:1 of run r-1, which "):
        checks.runs_should_follow_the_thread_policy()


def test_another_users_thread_served_fails_the_isolation_check(runtime: Runtime) -> None:
    checks = ThreadCheckKeywords(launched(runtime, RecordedThreads(foreign_served=True)))
    with pytest.raises(AssertionError, match=r"^Users reached other users' threads: 1 of 1 request was served"):
        checks.other_users_threads_should_be_refused()


def test_a_launch_of_another_tool_is_refused_naming_the_keyword_to_use(runtime: Runtime) -> None:
    other = BaseTool()
    other.name = "deduct"
    checks = ThreadCheckKeywords(launched(runtime, other))
    with pytest.raises(ConfigurationError) as raised:
        checks.thread_reads_should_be_consistent()
    assert str(raised.value) == (
        "Launch 1 ran 'deduct', which keeps no records of threads and runs (it lacks attempts, reads, messages, "
        "policy, messages_per_run, refusal_statuses, final_threads, probe_foreign_access): "
        "the thread checks judge an HTTP agent tool, define one with Define HTTP Agent Tool."
    )


def test_contamination_and_ordering_keywords_judge_an_http_agent_tools_streams(runtime: Runtime) -> None:
    tool = RecordedThreads()
    checks = WebSocketCheckKeywords(launched(runtime, tool))
    checks.no_events_should_reach_another_user()
    checks.events_should_arrive_in_order_without_gaps()
    tool.messages[1].seq = 3
    with pytest.raises(AssertionError, match=r"^Events arrived out of order: 1 of 4 sequence numbers"):
        checks.events_should_arrive_in_order_without_gaps()
    tool.messages[3].user_id, tool.messages[3].marker = "user-9", "m-9"
    with pytest.raises(AssertionError, match=r"^Messages reached the wrong user: 1 of 4 messages"):
        checks.no_events_should_reach_another_user()
