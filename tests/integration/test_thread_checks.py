"""The thread checks on the reference agent service's HTTP API, driven by the HTTP agent tool.

A real service process against real PostgreSQL and Redis: under each policy the sound service passes every
check, and each HTTP bug switch fails its check and no other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from stampede.checkers.contamination import check_no_contamination
from stampede.checkers.event_ordering import check_event_ordering
from stampede.checkers.foreign_access import check_foreign_access_refused
from stampede.checkers.one_active_run import check_one_active_run
from stampede.checkers.run_streams import check_run_streams
from stampede.checkers.thread_policy import check_thread_policy
from stampede.checkers.thread_reads import check_thread_reads
from stampede.launcher import LaunchPlan, launch
from stampede.records.threads import ThreadFinal, marker_owners
from stampede.shapes import AllAtOnce, LoadShape, RampInBatches
from stampede.verdicts import Verdict
from stampede.workloads.http_agents import HttpAgentTool
from stampede.workloads.http_protocol import reference_service

from .test_agent_service import agent_service

AGENTS, USERS = 8, 2
"""Four runs asked for on each of two users' threads."""


@dataclass(frozen=True)
class Case:
    policy: str
    bug: str = ""
    caught_by: frozenset[str] = frozenset()
    shape: LoadShape = field(default_factory=AllAtOnce)


STAGGERED = RampInBatches(batch_size=USERS, interval=0.045)
"""One run per thread every 45 ms: each arrives while the one before has appended part of its messages."""

CASES = {
    "enqueue": Case("enqueue"),
    "reject": Case("reject"),
    "interrupt": Case("interrupt", shape=STAGGERED),
    "rollback": Case("rollback", shape=STAGGERED),
    "concurrent_runs": Case("reject", "concurrent_runs", frozenset({"one active run"})),
    "lost_enqueued_run": Case("enqueue", "lost_enqueued_run", frozenset({"policy"})),
    "rollback_keeps_writes": Case("rollback", "rollback_keeps_writes", frozenset({"policy"}), STAGGERED),
    "interrupt_reports_success": Case("interrupt", "interrupt_reports_success", frozenset({"policy"}), STAGGERED),
    "foreign_thread_readable": Case("enqueue", "foreign_thread_readable", frozenset({"isolation"})),
    "crossed_streams": Case("enqueue", "crossed_streams", frozenset({"streams"})),
}


async def judged(embedded: tuple[str, str], run_id: str, case: Case) -> dict[str, Verdict]:
    async with agent_service(*embedded, run_id, bugs=case.bug or None) as harness:
        service = harness.service
        tool = HttpAgentTool(
            reference_service(service.http_url), tokens=service.token_for, policy=case.policy, read_every=1
        )
        await launch(tool, LaunchPlan(agents=AGENTS, users=USERS, shape=case.shape, operation_timeout=30))
        return await verdicts_of(tool)


async def verdicts_of(tool: HttpAgentTool) -> dict[str, Verdict]:
    """Every thread check on the tool's latest launch (the reads after it made now)."""
    finals = await tool.final_threads()
    accesses = await tool.probe_foreign_access()
    return {
        "one active run": check_one_active_run(tool.attempts, finals, tool.reads),
        "policy": check_thread_policy(
            tool.attempts,
            finals,
            policy=tool.policy,
            messages_per_run=tool.messages_per_run,
            refusal_statuses=tool.refusal_statuses,
        ),
        "reads": check_thread_reads(tool.attempts, finals, tool.reads),
        "isolation": check_foreign_access_refused(accesses),
        "streams": check_run_streams(tool.attempts, tool.messages),
        "contamination": check_no_contamination(tool.messages, marker_owners=marker_owners(tool.attempts)),
        "ordering": check_event_ordering(tool.messages, lifecycle=(), failures=()),
    }


@pytest.mark.parametrize("name", CASES)
def test_each_bug_switch_fails_its_check_only_and_the_sound_service_none(
    name: str, embedded: tuple[str, str], run_id: str
) -> None:
    case = CASES[name]
    verdicts = asyncio.run(judged(embedded, run_id, case))
    failing: dict[str, Any] = {check: v.message for check, v in verdicts.items() if not v.passed}
    assert set(failing) == case.caught_by, failing


def test_the_tool_reads_each_listed_runs_marker_and_times_and_times_each_refusal(
    embedded: tuple[str, str], run_id: str
) -> None:
    async def body() -> tuple[HttpAgentTool, list[ThreadFinal]]:
        async with agent_service(*embedded, run_id) as harness:
            service = harness.service
            tool = HttpAgentTool(reference_service(service.http_url), tokens=service.token_for, policy="reject")
            await launch(tool, LaunchPlan(agents=AGENTS, users=USERS, operation_timeout=30))
            return tool, await tool.final_threads()

    tool, finals = asyncio.run(body())
    accepted = {a.run_id: a for a in tool.attempts if a.accepted}
    refused = [a for a in tool.attempts if a.refused]
    assert len(accepted) == USERS and len(refused) == AGENTS - USERS, [a.describe() for a in tool.attempts]
    listed = [run for final in finals for run in final.runs]
    assert {run.run_id for run in listed} == set(accepted)  # a refused run is not listed
    for run in listed:
        assert run.marker == accepted[run.run_id].marker
        assert run.started_at is not None and run.ended_at is not None and run.started_at < run.ended_at
    assert all(a.end_ns is not None and a.request_ns < a.end_ns for a in refused)
