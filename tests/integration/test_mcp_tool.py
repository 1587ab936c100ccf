"""The MCP tool against the reference MCP server: a real server process on the ``mcp`` SDK, real PostgreSQL.

Sessions are opened, called and deleted; what each call got (id, status,
notifications with their arrival times, the result and its structured content)
is recorded; each bug switch shows the symptom its check looks for, and bad
input ends in an error naming what to fix.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from stampede.checkers.mcp_calls import check_no_late_answers, check_own_answers, check_users_isolated
from stampede.checkers.serialization import check_ran_in_parallel, check_work_overlapped
from stampede.errors import ConfigurationError, ServiceUnavailable
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.records.mcp import McpFailure
from stampede.services.embedded_mcp_server import EmbeddedMcpServer
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.services.postgres_target import PostgresTarget, open_postgres
from stampede.services.processes import free_port
from stampede.workloads.mcp_tool import McpTool


@dataclass
class Served:
    server: EmbeddedMcpServer
    postgres: PostgresTarget

    def tool(self, tool: str, arguments: dict[str, Any], **options: Any) -> McpTool:
        return McpTool(self.server.url, tool, arguments, tokens=self.server.token_for, call_timeout=10, **options)

    async def balances(self) -> dict[str, int]:
        connection = await self.postgres.connect()
        try:
            rows = await connection.fetch("SELECT user_id, balance FROM mcp_credits")
        finally:
            await connection.close()
        return {row["user_id"]: int(row["balance"]) for row in rows}

    def session_counts(self) -> dict[str, int]:
        with urllib.request.urlopen(self.server.sessions_url, timeout=5) as answer:
            return dict(json.loads(answer.read()))


@asynccontextmanager
async def mcp_server(dsn: str, run_id: str, bugs: str | None = None) -> AsyncIterator[Served]:
    postgres = await open_postgres(dsn, run_id=run_id)
    server = EmbeddedMcpServer.for_target(postgres, bugs=bugs, initial_credits=1000)
    try:
        server.start()
        yield Served(server, postgres)
    finally:
        server.stop()
        await postgres.close()


def launched(
    served: Served, tool: McpTool, agents: int, *, users: int | None = None, iterations: int = 1
) -> LaunchResult:
    plan = LaunchPlan(agents=agents, iterations=iterations, users=users, operation_timeout=20, run_timeout=60)
    return asyncio.run(launch(tool, plan))


@pytest.fixture
def served(embedded_postgres: EmbeddedPostgres, run_id: str, request: pytest.FixtureRequest) -> Iterator[Served]:
    bugs = getattr(request, "param", None)
    loop = asyncio.new_event_loop()
    context = mcp_server(embedded_postgres.dsn, run_id, bugs)
    try:
        yield loop.run_until_complete(context.__aenter__())
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()


def counts(result: LaunchResult) -> dict[str, int]:
    return dict(Counter(str(op.outcome) for op in result.history))


SLEEP = {"seconds": 0.2, "nonce": "{nonce}"}
DEDUCT = {"amount": 1, "nonce": "{nonce}"}


def test_calls_record_their_id_status_progress_and_structured_result(served: Served) -> None:
    tool = served.tool("sleep", SLEEP)
    result = launched(served, tool, 4, iterations=2)
    assert counts(result) == {"ok": 8}
    assert sorted(call.request_id for call in tool.calls) == [1, 1, 1, 1, 2, 2, 2, 2]  # ids collide across sessions
    call = tool.calls[0]
    assert call.http_status == 200 and call.session is not None
    assert [note.method for note in call.notifications] == ["notifications/progress"] * 4
    assert [note.params["progress"] for note in call.notifications] == [1, 2, 3, 4]
    assert call.start_ns < call.notifications[0].at_ns <= call.notifications[-1].at_ns <= (call.end_ns or 0)
    assert call.structured["nonce"] == call.nonce
    assert {record.delete_status for record in tool.sessions} == {200}
    assert served.session_counts() == {"tracked": 0, "open": 0}


def test_deductions_under_concurrency_are_all_counted(served: Served) -> None:
    result = launched(served, served.tool("deduct", DEDUCT), 10, users=2, iterations=5)
    assert counts(result) == {"ok": 50}
    assert asyncio.run(served.balances()) == {"user-1": 975, "user-2": 975}


@pytest.mark.parametrize("served", ["lost_update"], indirect=True)
def test_lost_update_loses_deductions(served: Served) -> None:
    launched(served, served.tool("deduct", DEDUCT), 10, users=2, iterations=5)
    assert min(asyncio.run(served.balances()).values()) > 975


@pytest.mark.parametrize("served", ["crossed_replies"], indirect=True)
def test_crossed_replies_hand_a_call_another_sessions_result(served: Served) -> None:
    tool = served.tool("deduct", DEDUCT)
    launched(served, tool, 10, iterations=3)
    assert any(call.structured["nonce"] != call.nonce for call in tool.calls)


@pytest.mark.parametrize("served", ["never_reap"], indirect=True)
def test_never_reap_keeps_state_of_deleted_sessions(served: Served) -> None:
    tool = served.tool("deduct", DEDUCT)
    launched(served, tool, 5)
    assert {record.delete_status for record in tool.sessions} == {200}
    assert len(tool.sessions) == 6  # 5 agents and the one that listed the tools
    assert served.session_counts() == {"tracked": 6, "open": 0}


def test_a_cancelled_call_is_cancelled_and_charges_nothing(served: Served) -> None:
    tool = served.tool("sleep", {"seconds": 1.0, "nonce": "{nonce}", "charge": 7}, cancel_after=0.3)
    result = launched(served, tool, 3)
    assert counts(result) == {"conflict": 3}
    assert {call.failure for call in tool.calls} == {McpFailure.CANCELLED}
    assert check_no_late_answers(tool.calls).passed  # the SDK ends each stream with the cancellation error only
    asyncio.run(asyncio.sleep(1.2))
    assert asyncio.run(served.balances()) == {}


@pytest.mark.parametrize("served", ["ignore_cancel"], indirect=True)
def test_ignore_cancel_still_charges_a_cancelled_call(served: Served) -> None:
    tool = served.tool("sleep", {"seconds": 1.0, "nonce": "{nonce}", "charge": 7}, cancel_after=0.3)
    launched(served, tool, 3)
    late = check_no_late_answers(tool.calls)
    assert not late.passed and late.value == 3, late.message  # the dropped cancel: each call answered after it
    assert all(call.late_answer["result"]["structuredContent"]["nonce"] == call.nonce for call in tool.calls)
    asyncio.run(asyncio.sleep(1.2))
    assert asyncio.run(served.balances()) == {f"user-{n}": 993 for n in (1, 2, 3)}


@pytest.mark.parametrize("served", ["ignore_cancel"], indirect=True)
def test_ignore_cancel_still_charges_a_call_whose_stateless_stream_was_closed(served: Served) -> None:
    tool = served.tool("sleep", {"seconds": 1.0, "nonce": "{nonce}", "charge": 7}, cancel_after=0.3, era="stateless")
    launched(served, tool, 2)
    assert check_no_late_answers(tool.calls).inconclusive  # closing the stream is the cancel: nothing can arrive
    asyncio.run(asyncio.sleep(1.2))
    assert asyncio.run(served.balances()) == {"user-1": 993, "user-2": 993}


def test_an_unknown_tool_is_refused_listing_the_servers_tools(served: Served) -> None:
    with pytest.raises(ConfigurationError, match=r"has no tool 'dedcut': its tools are append_note, balance, deduct"):
        launched(served, served.tool("dedcut", DEDUCT), 2)


def test_arguments_failing_the_input_schema_show_the_schemas_complaint(served: Served) -> None:
    with pytest.raises(ConfigurationError, match=r"fail its input schema at amount: 'lots' is not of type 'integer'"):
        launched(served, served.tool("deduct", {"amount": "lots", "nonce": "{nonce}"}), 2)


def test_an_endpoint_that_is_not_mcp_says_so(served: Served) -> None:
    tool = McpTool(served.server.sessions_url, "deduct", DEDUCT, tokens=served.server.token_for)
    with pytest.raises(ConfigurationError, match=r"/sessions is not an MCP Streamable HTTP endpoint"):
        launched(served, tool, 1)


def test_a_refused_token_names_the_tokens(served: Served) -> None:
    tool = McpTool(served.server.url, "deduct", DEDUCT, tokens="not-a-jwt")
    with pytest.raises(ConfigurationError, match=r"refused the user's token \(HTTP 401\)"):
        launched(served, tool, 1)


def test_nothing_listening_names_the_server() -> None:
    tool = McpTool(f"http://127.0.0.1:{free_port()}/mcp", "deduct", DEDUCT)
    with pytest.raises(ServiceUnavailable, match=r"Nothing accepts connections at the MCP server http://127"):
        asyncio.run(launch(tool, LaunchPlan(agents=1)))


NOTE = {"note": "{marker}", "nonce": "{nonce}"}


def test_the_stateless_era_sends_no_session_and_gets_its_progress_and_answer(served: Served) -> None:
    tool = served.tool("sleep", SLEEP, era="stateless")
    result = launched(served, tool, 3, iterations=2)
    assert counts(result) == {"ok": 6}
    assert {call.session for call in tool.calls} == {None}
    assert all(len(call.notifications) == 4 for call in tool.calls)
    assert check_own_answers(tool.calls).passed
    assert tool.sessions == [] or {record.delete_status for record in tool.sessions} == {None}


@pytest.mark.parametrize("era", ["session", "stateless"])
def test_notes_stay_with_their_user_in_both_eras(served: Served, era: str) -> None:
    tool = served.tool("append_note", NOTE, era=era)
    launched(served, tool, 6, users=3, iterations=3)
    verdict = check_users_isolated(tool.calls, tool.marker_owners)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize("served", ["session_keyed_notes"], indirect=True)
def test_notes_keyed_by_the_session_header_are_shared_in_the_stateless_era_only(served: Served) -> None:
    in_sessions = served.tool("append_note", NOTE)
    launched(served, in_sessions, 4, users=2, iterations=2)
    assert check_users_isolated(in_sessions.calls, in_sessions.marker_owners).passed
    stateless = served.tool("append_note", NOTE, era="stateless")
    launched(served, stateless, 4, users=2, iterations=2)
    verdict = check_users_isolated(stateless.calls, stateless.marker_owners)
    assert not verdict.passed and "returned markers written by other users" in verdict.message


@pytest.mark.parametrize(("served", "parallel"), [(None, True), ("blocking_sleep", False)], indirect=["served"])
def test_slow_calls_overlap_unless_the_tool_blocks_the_loop(served: Served, parallel: bool) -> None:
    result = launched(served, served.tool("sleep", SLEEP), 6)
    assert check_ran_in_parallel(result.history).passed  # every call is in flight all along, even one at a time
    verdict = check_work_overlapped(result.history, solo_seconds=0.2, at_least=3)
    assert verdict.passed is parallel, verdict.message


def test_an_unknown_bug_switch_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown MCP server bug switch 'teleport': known switches are lost_"):
        EmbeddedMcpServer(pg_dsn="postgresql://127.0.0.1/none", pg_schema="s", bugs="lost-update, teleport")


async def _cutting_server(request: web.Request) -> web.StreamResponse:
    """An MCP endpoint that answers the handshake and the tool list, then cuts each call's stream mid-way."""
    message = await request.json()
    method, ident = message.get("method"), message.get("id")
    if ident is None:
        return web.Response(status=202)
    if method == "initialize":
        result: dict[str, Any] = {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "cut"}}
        return web.json_response({"jsonrpc": "2.0", "id": ident, "result": result}, headers={"Mcp-Session-Id": "s1"})
    if method == "tools/list":
        tools = [{"name": "t", "inputSchema": {"type": "object"}}]
        return web.json_response({"jsonrpc": "2.0", "id": ident, "result": {"tools": tools}})
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await stream.prepare(request)
    progress = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "x", "progress": 1}}
    await stream.write(f"event: message\ndata: {json.dumps(progress)}\n\n".encode())
    return stream


def test_a_stream_cut_before_its_response_is_a_bad_answer_with_its_notifications_kept() -> None:
    async def body() -> McpTool:
        app = web.Application()
        app.router.add_route("*", "/mcp", _cutting_server)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            tool = McpTool(f"http://127.0.0.1:{port}/mcp", "t", {"nonce": "{nonce}"}, era="auto", call_timeout=5)
            await launch(tool, LaunchPlan(agents=2, operation_timeout=10))
            return tool
        finally:
            await runner.cleanup()

    tool = asyncio.run(body())
    assert {call.failure for call in tool.calls} == {McpFailure.BAD_ANSWER}
    assert tool.calls[0].detail == "the SSE stream of request 1 ended before its response"
    assert [len(call.notifications) for call in tool.calls] == [1, 1]
    assert tool.era == "session"  # its discover answer was cut: auto falls back to the session era


@pytest.mark.parametrize("era", ["session", "stateless"])
def test_a_stdio_server_runs_one_process_per_session_on_the_same_tables(served: Served, era: str) -> None:
    tool = McpTool(
        served.server.stdio_command(),
        "sleep",
        {"seconds": 0.1, "nonce": "{nonce}", "charge": 2},
        stdio_env=served.server.stdio_env,
        call_timeout=20,
        era=era,
    )
    result = launched(served, tool, 3, users=2, iterations=2)
    assert counts(result) == {"ok": 6}
    assert {call.http_status for call in tool.calls} == {None}
    assert all(len(call.notifications) == 4 for call in tool.calls)
    assert check_own_answers(tool.calls).passed
    assert asyncio.run(served.balances()) == {"user-1": 992, "user-2": 996}
    assert tool._pipes == set()


def test_a_stdio_command_that_exits_at_once_shows_its_stderr() -> None:
    script = "import sys; sys.stderr.write('no database configured'); sys.exit(3)"
    command = f"stdio: {shlex.join([sys.executable, '-c', script])}"
    tool = McpTool(command, "t", {})
    with pytest.raises(
        ConfigurationError, match=r"(?s)did not answer initialize on stdout: .*exit code 3.*no database"
    ):
        asyncio.run(launch(tool, LaunchPlan(agents=1)))


def test_era_auto_takes_the_stateless_era_from_a_server_that_answers_discover(served: Served) -> None:
    tool = served.tool("deduct", DEDUCT, era="auto")
    result = launched(served, tool, 2)
    assert counts(result) == {"ok": 2}
    assert tool.era == "stateless" and {call.session for call in tool.calls} == {None}
