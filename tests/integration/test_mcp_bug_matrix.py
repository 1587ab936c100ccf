"""Each bug switch of the reference MCP server is caught by its own check and by no other.

For the bug-free server and for each switch, every scenario of suites/mcp_tools runs (fewer sessions) with its
check; the checks that fail must be exactly those written for the switch (none for the bug-free server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from stampede.checkers.mcp_calls import (
    check_no_late_answers,
    check_own_answers,
    check_progress,
    check_sessions_reaped,
    check_users_isolated,
)
from stampede.checkers.mcp_memory import check_memory_kept_per_session
from stampede.checkers.serialization import check_work_overlapped
from stampede.launcher import LaunchPlan, launch
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.workloads.mcp_tool import McpTool

from .test_mcp_tool import DEDUCT, NOTE, Served, mcp_server

AGENTS = 10
USERS = 3
INITIAL = 1000
Scenario = Callable[[Served], Awaitable[bool]]


async def _launched(tool: McpTool, agents: int = AGENTS, *, users: int = USERS, iterations: int = 1) -> McpTool:
    plan = LaunchPlan(agents=agents, users=users, iterations=iterations, operation_timeout=30, run_timeout=90)
    await launch(tool, plan)
    return tool


async def _taken(served: Served) -> int:
    return sum(INITIAL - balance for balance in (await served.balances()).values())


async def counted(served: Served) -> bool:
    tool = await _launched(served.tool("deduct", DEDUCT), iterations=3)
    return await _taken(served) == sum(1 for call in tool.calls if call.failure is None)


async def own_answers(served: Served) -> bool:
    tool = await _launched(served.tool("deduct", DEDUCT), iterations=3)
    return check_own_answers(tool.calls).passed


async def isolated(served: Served) -> bool:
    tool = await _launched(served.tool("append_note", NOTE, era="stateless"), iterations=2)
    return check_users_isolated(tool.calls, tool.marker_owners).passed


async def overlapped(served: Served) -> bool:
    plan = LaunchPlan(agents=AGENTS, users=USERS, operation_timeout=30, run_timeout=90)
    result = await launch(served.tool("sleep", {"seconds": 0.2, "nonce": "{nonce}"}), plan)
    return check_work_overlapped(result.history, solo_seconds=0.2, at_least=AGENTS / 4).passed


async def progress_in_order(served: Served) -> bool:
    tool = await _launched(served.tool("sleep", {"seconds": 0.1, "nonce": "{nonce}"}))
    return check_progress(tool.calls).passed


async def cancelled_without_effect(served: Served) -> bool:
    before = await _taken(served)
    arguments = {"seconds": 1.0, "nonce": "{nonce}", "charge": 5}
    await _launched(served.tool("sleep", arguments, cancel_after=0.3), 5)
    await asyncio.sleep(1.2)
    return await _taken(served) == before


async def not_answered_late(served: Served) -> bool:
    tool = await _launched(served.tool("sleep", {"seconds": 1.0, "nonce": "{nonce}"}, cancel_after=0.3), 5)
    return check_no_late_answers(tool.calls).passed


async def memory_given_back(served: Served) -> bool:
    tool = served.tool("deduct", DEDUCT, server_pid=served.server.pid)
    for _ in range(2):  # the first launch fills the allocator's pools: judge the second
        await _launched(tool, 30)
    return check_memory_kept_per_session(tool.memory, 64 * 1024).passed


async def reaped(served: Served) -> bool:
    before = served.session_counts()["tracked"]  # what the earlier scenarios left
    tool = await _launched(served.tool("deduct", DEDUCT))
    deleted = sum(1 for session in tool.sessions if session.delete_status == 200)
    kept = served.session_counts()["tracked"] - before
    return check_sessions_reaped(deleted, kept).passed


SCENARIOS: dict[str, Scenario] = {
    "deductions counted": counted,
    "answers match their requests": own_answers,
    "state stays with its user": isolated,
    "slow calls overlap": overlapped,
    "progress monotonic and scoped": progress_in_order,
    "a cancelled call takes no effect": cancelled_without_effect,
    "a cancelled call gets no late answer": not_answered_late,
    "memory given back per ended session": memory_given_back,
    "sessions reaped": reaped,
}
CAUGHT_BY = {
    None: set(),
    "lost_update": {"deductions counted"},
    "crossed_replies": {"answers match their requests"},
    "session_keyed_notes": {"state stays with its user"},
    "blocking_sleep": {"slow calls overlap"},
    "ignore_cancel": {"a cancelled call takes no effect", "a cancelled call gets no late answer"},
    "never_reap": {"sessions reaped", "memory given back per ended session"},
}


@pytest.mark.parametrize("bug", list(CAUGHT_BY), ids=lambda bug: bug or "no_bug")
def test_each_bug_fails_its_own_check_and_no_other(embedded_postgres: EmbeddedPostgres, run_id: str, bug: str) -> None:
    async def failing() -> set[str]:
        async with mcp_server(embedded_postgres.dsn, run_id, bug) as served:
            return {name for name, scenario in SCENARIOS.items() if not await scenario(served)}

    assert asyncio.run(failing()) == CAUGHT_BY[bug]
