"""Server memory per MCP session, read from the reference server's process: kept after DELETE only with never_reap."""

from __future__ import annotations

import asyncio

import pytest

from stampede.checkers.mcp_memory import check_memory_held_per_session, check_memory_kept_per_session
from stampede.launcher import LaunchPlan, launch
from stampede.services.embedded_postgres import EmbeddedPostgres
from stampede.verdicts import Verdict

from .test_mcp_tool import DEDUCT, mcp_server

SESSIONS = 30
KEPT = 64 * 1024  # bytes per ended session; never_reap keeps a 256 KiB buffer each


@pytest.mark.parametrize("bug", [None, "never_reap"], ids=lambda bug: bug or "no_bug")
def test_memory_kept_per_ended_session_fails_only_when_sessions_are_never_reaped(
    embedded_postgres: EmbeddedPostgres, run_id: str, bug: str | None
) -> None:
    async def judged() -> tuple[Verdict, Verdict]:
        async with mcp_server(embedded_postgres.dsn, run_id, bug) as served:
            plan = LaunchPlan(agents=SESSIONS, users=5, operation_timeout=30, run_timeout=90)
            for _ in range(2):  # the first launch fills the allocator's pools: judge the second
                tool = served.tool("deduct", DEDUCT, server_pid=served.server.pid)
                await launch(tool, plan)
            assert tool.memory is not None and tool.memory.ended == SESSIONS + 1
            return check_memory_kept_per_session(tool.memory, KEPT), check_memory_held_per_session(tool.memory, 1e9)

    kept, held = asyncio.run(judged())
    assert kept.passed is (bug is None), kept.message
    assert held.passed, held.message
