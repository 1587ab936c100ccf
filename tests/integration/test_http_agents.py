"""The HTTP agent tool, launched against Tandem: a real HTTP + SSE service it did not write, with its own schema.

Tandem (tests/acceptance/tandem_http_service.py) is configured from its documentation
by tests/acceptance/robot/tandem_protocol.json, as a user would: per-user API keys in a
header, its own paths, event names, status words and policy words, seq only in the
SSE id. Runs, events, refusals, resumes, thread reads and the reads a check makes
after a launch are recorded; bad input (nothing listening, a refused key, a crash
mid-stream, a cut stream, data that is not JSON, a path matching nothing) each end
in their own failure with a message that names what to fix.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acceptance.tandem_http_service import Tandem, TandemHttpService
from stampede.errors import ServiceUnavailable
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.outcomes import Outcome
from stampede.records.threads import ForeignAccess, HttpFailure, RunStatus, ThreadFinal
from stampede.services.processes import free_port
from stampede.shapes import AllAtOnce, LoadShape, RampInBatches
from stampede.workloads.http_agents import HttpAgentTool
from stampede.workloads.http_protocol import HttpProtocol

PROTOCOL = Path(__file__).resolve().parents[1] / "acceptance" / "robot" / "tandem_protocol.json"
USERS = [f"user-{n}" for n in range(1, 5)]


@dataclass
class Served:
    url: str
    tandem: Tandem
    keys: dict[str, str]


@pytest.fixture(scope="module")
def service() -> Iterator[Served]:
    keys = {user: secrets.token_urlsafe(16) for user in USERS}
    running = TandemHttpService(keys)
    url = running.start()
    try:
        yield Served(url, running.tandem, keys)
    finally:
        running.stop()


@pytest.fixture
def tandem(service: Served) -> Iterator[Served]:
    yield service
    service.tandem.cut_after = service.tandem.crash_after = service.tandem.garbage_after = None


def tool_for(served: Served, *, protocol: dict[str, Any] | None = None, **options: Any) -> HttpAgentTool:
    data = {**json.loads(PROTOCOL.read_text()), **(protocol or {})}
    return HttpAgentTool(
        HttpProtocol.from_dict(data, base_url=served.url),
        tokens=served.keys,
        answer_timeout=5,
        run_timeout=10,
        **options,
    )


@dataclass
class Launched:
    tool: HttpAgentTool
    result: LaunchResult
    finals: list[ThreadFinal]
    foreign: list[ForeignAccess]

    @property
    def errors(self) -> list[str | None]:
        return [op.error for op in self.result.history]


def run_agents(
    tool: HttpAgentTool, agents: int, *, users: int | None = None, iterations: int = 1, shape: LoadShape | None = None
) -> Launched:
    async def body() -> Launched:
        plan = LaunchPlan(
            agents=agents,
            iterations=iterations,
            users=users,
            operation_timeout=20,
            run_timeout=60,
            shape=shape or AllAtOnce(),
        )
        result = await launch(tool, plan)
        return Launched(tool, result, await tool.final_threads(), await tool.probe_foreign_access())

    return asyncio.run(body())


def test_queued_runs_on_shared_threads_are_recorded_event_by_event(tandem: Served) -> None:
    launched = run_agents(tool_for(tandem, policy="enqueue"), 8, users=2, iterations=2)
    tool = launched.tool
    assert launched.errors == [None] * 16, [op.read for op in launched.result.history]
    assert sorted(tool.threads) == ["user-1", "user-2"] and all(len(t) == 1 for t in tool.threads.values())
    assert len(tool.attempts) == 16 and {a.thread for a in tool.attempts} == {t[0] for t in tool.threads.values()}
    for attempt in tool.attempts:
        assert attempt.accepted and attempt.status == 200 and attempt.outcome is RunStatus.SUCCESS
        assert attempt.run_id and len(attempt.messages) == tool.messages_per_run == 2
        assert attempt.request_ns < attempt.first_event_ns <= attempt.started_ns < attempt.end_ns  # type: ignore[operator]
    events = [m for m in tool.messages if m.marker == tool.attempts[0].marker]
    kinds = [m.type for m in events]
    assert kinds[-4:] == ["turn.begin", "turn.line", "turn.line", "turn.done"] and set(kinds[:-4]) <= {"turn.waiting"}
    assert [m.seq for m in events] == list(range(1, len(events) + 1))  # the SSE id, read as a number
    assert all(m.user_id == m.user and m.leg == 1 for m in tool.messages)
    timings = launched.result.history[0].timings
    assert set(timings) == {"first_event", "started", "run"}
    for final in launched.finals:  # the service kept every run, each one's lines together
        ran = [a for a in tool.attempts if a.thread == final.thread]
        assert len(final.messages) == 2 * len(ran) == 16 and {m.marker for m in final.messages} == {
            a.marker for a in ran
        }
        assert [r.status for r in final.runs] == [RunStatus.SUCCESS] * 8 and final.history is None
    assert len(launched.foreign) == 6 and all(p.refused and p.status == 404 for p in launched.foreign)
    assert {p.request.split(" ")[0] for p in launched.foreign} == {"read_state", "list_runs", "resume_stream"}


def test_under_reject_one_run_per_thread_is_accepted_and_the_rest_refused_with_the_configured_status(
    tandem: Served,
) -> None:
    launched = run_agents(tool_for(tandem, policy="reject"), 4, users=1)
    attempts = launched.tool.attempts
    accepted = [a for a in attempts if a.accepted]
    refused = [a for a in attempts if a.refused]
    assert len(accepted) == 1 and accepted[0].outcome is RunStatus.SUCCESS, [a.describe() for a in attempts]
    assert len(refused) == 3 and {a.status for a in refused} == {423}
    assert all(a.failure is HttpFailure.REFUSED and '"problem":"busy"' in str(a.detail) for a in refused)
    assert all(a.end_ns is not None and a.request_ns < a.end_ns for a in refused)  # when the refusal came
    refusals = [op for op in launched.result.history if op.error == "refused"]
    assert all("run" not in (op.timings or {}) for op in refusals)  # a refusal is no run's duration
    (final,) = launched.finals
    (run,) = final.runs  # Tandem's run list gives no marker or times: they stay unknown
    assert (run.run_id, run.marker, run.started_at, run.ended_at) == (accepted[0].run_id, None, None, None)
    assert sorted(launched.errors, key=str) == [None, "refused", "refused", "refused"]
    assert {op.outcome for op in launched.result.history if op.error} == {Outcome.CONFLICT}


def test_interrupted_and_rolled_back_runs_are_told_apart(tandem: Served) -> None:
    for policy, ended in (("interrupt", RunStatus.INTERRUPTED), ("rollback", RunStatus.ROLLED_BACK)):
        tool = tool_for(tandem, policy=policy, protocol={"requests": _slow_runs()})
        launched = run_agents(tool, 3, users=1, shape=RampInBatches(1, 0.06))  # each run arrives while one is going
        outcomes = sorted(a.outcome.value for a in launched.tool.attempts if a.outcome)
        assert outcomes.count("success") >= 1 and ended.value in outcomes, (policy, outcomes)
        (final,) = launched.finals
        kept = {a.marker for a in launched.tool.attempts if a.outcome is not RunStatus.ROLLED_BACK and a.messages}
        assert {m.marker for m in final.messages} == kept


def _slow_runs() -> dict[str, Any]:
    requests = json.loads(PROTOCOL.read_text())["requests"]
    run = requests["run_stream"]
    return {**requests, "run_stream": {**run, "body": {**run["body"], "lines": 5, "pause_ms": 40}}}


def test_a_cut_stream_is_resumed_with_last_event_id(tandem: Served) -> None:
    tandem.tandem.cut_after = 2
    launched = run_agents(tool_for(tandem, policy="enqueue"), 2, users=2)
    assert launched.errors == [None, None], [op.read for op in launched.result.history]
    for attempt in launched.tool.attempts:
        events = [m for m in launched.tool.messages if m.marker == attempt.marker]
        assert [(m.leg, m.seq) for m in events] == [(1, 1), (1, 2), (2, 3), (2, 4)]
        assert attempt.outcome is RunStatus.SUCCESS and len(attempt.messages) == 2
    assert all(op.read["legs"] == 2 and op.timings["resume"] > 0 for op in launched.result.history)


def test_stampede_cuts_streams_on_purpose_and_reads_the_thread_after_each_run(tandem: Served) -> None:
    launched = run_agents(tool_for(tandem, policy="enqueue", cut_after_events=1, read_every=1), 2, users=1)
    assert launched.errors == [None, None], [op.read for op in launched.result.history]
    assert all(op.read["legs"] == 2 for op in launched.result.history)
    reads = launched.tool.reads
    assert len(reads) == 2 and all(r.status == 200 and r.messages for r in reads)
    assert max(len(r.messages or ()) for r in reads) == 4


def test_nothing_listening_at_the_base_url_fails_the_launch_naming_it(tandem: Served) -> None:
    wrong = f"http://127.0.0.1:{free_port()}/api/v1"
    tool = HttpAgentTool(HttpProtocol.load(str(PROTOCOL), base_url=wrong), tokens=tandem.keys)
    with pytest.raises(ServiceUnavailable, match=r"Nothing accepts connections at the HTTP agent service http://127"):
        asyncio.run(launch(tool, LaunchPlan(agents=2)))


def test_a_refused_key_is_a_401_that_names_where_the_token_goes(tandem: Served) -> None:
    wrong = dict.fromkeys(USERS, "not-a-key")
    tool = HttpAgentTool(HttpProtocol.load(str(PROTOCOL), base_url=tandem.url), tokens=wrong)
    result = asyncio.run(launch(tool, LaunchPlan(agents=2, users=1)))
    assert len(result.agent_errors) == 2 and not list(result.history)
    error = result.agent_errors[1]
    assert "refused user-1's token: POST /conversations was answered HTTP 401" in error, error
    assert "header_name, header_value" in error and "not-a-key" not in error


def test_a_crash_mid_stream_whose_resume_answers_500_is_a_stream_error(tandem: Served) -> None:
    tandem.tandem.crash_after = 2
    launched = run_agents(tool_for(tandem), 1)
    (attempt,) = launched.tool.attempts
    assert attempt.failure is HttpFailure.STREAM_ERROR and launched.errors == ["stream_error"]
    assert "the connection dropped mid-stream" in str(attempt.detail)
    assert "the resume request (GET /conversations/{thread}/turns/{run_id}/events) was answered HTTP 500" in str(
        attempt.detail
    )


def test_a_stream_cut_before_its_end_without_resume_is_cut(tandem: Served) -> None:
    tandem.tandem.cut_after = 2
    launched = run_agents(tool_for(tandem, protocol={"resume": False}), 1)
    (attempt,) = launched.tool.attempts
    assert attempt.failure is HttpFailure.CUT and launched.errors == ["cut"]
    assert "before the run's terminal event (the protocol does not resume)" in str(attempt.detail)


def test_data_that_is_not_json_is_a_bad_event(tandem: Served) -> None:
    tandem.tandem.garbage_after = 1
    launched = run_agents(tool_for(tandem), 1)
    (attempt,) = launched.tool.attempts
    assert attempt.failure is HttpFailure.BAD_EVENT and launched.errors == ["bad_event"]
    assert "the turn.line event's data is not JSON: '<html>Bad Gateway</html>'" in str(attempt.detail)


def test_a_field_path_matching_nothing_names_the_path_and_shows_the_event(tandem: Served) -> None:
    events = {**json.loads(PROTOCOL.read_text())["events"], "marker": "data.label"}
    launched = run_agents(tool_for(tandem, protocol={"events": events}), 2, users=2)
    assert launched.errors == ["bad_event", "bad_event"]
    (problem,) = launched.tool.config_problems
    assert problem.startswith(
        "The HTTP protocol's field path 'data.label' (events.marker, in every turn.begin event) matches no field"
    ), problem
    assert "the fields there are turn, owner, tag" in problem and "Fix the path" in problem


def test_a_run_cancelled_after_its_first_line_ends_interrupted_with_its_line_kept(tandem: Served) -> None:
    tool = tool_for(tandem, cancel_after_events=2, protocol={"requests": _slow_runs()})
    launched = run_agents(tool, 2, users=2)
    assert launched.errors == ["interrupted", "interrupted"], [op.read for op in launched.result.history]
    assert all(op.read["cancel"] == 202 for op in launched.result.history)
    for attempt in tool.attempts:
        assert attempt.outcome is RunStatus.INTERRUPTED and 1 <= len(attempt.messages) < 5
        (final,) = [f for f in launched.finals if f.thread == attempt.thread]
        assert [m.id for m in final.messages] == attempt.messages


def test_runs_waited_for_and_several_threads_per_user(tandem: Served) -> None:
    data = json.loads(PROTOCOL.read_text())
    requests = data["requests"]
    wait = {**requests["run_stream"], "path": "/conversations/{thread}/turns?wait=1"}
    answers = {**data["answers"], "wait_run_id": "turn.id", "wait_status": "turn.state", "wait_messages": "turn.lines"}
    protocol = {"requests": {**requests, "run_wait": wait}, "answers": answers}
    tool = tool_for(tandem, protocol=protocol, mode="wait", policy="enqueue", threads_per_user=2)
    launched = run_agents(tool, 4, users=1, iterations=2)
    assert launched.errors == [None] * 8, ([op.read for op in launched.result.history], launched.result.agent_errors)
    (threads,) = tool.threads.values()
    assert len(threads) == 2 and {a.thread for a in tool.attempts} == set(threads)
    assert all(a.outcome is RunStatus.SUCCESS and len(a.messages) == 2 and a.run_id for a in tool.attempts)
    assert not list(tool.messages) and set(launched.result.history[0].timings) == {"run"}
    assert sorted(len(f.messages) for f in launched.finals) == [8, 8]
