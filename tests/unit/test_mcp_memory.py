"""The MCP server-memory checks on hand-made readings: kept per ended session, held per open session."""

from __future__ import annotations

import pytest

from stampede.checkers.mcp_memory import check_memory_held_per_session, check_memory_kept_per_session
from stampede.errors import ConfigurationError
from stampede.records.mcp import McpServerMemory

KB = 1000
MB = 1000 * KB


def reading(*, held: int | None = 60 * MB, after: int | None = 51 * MB, ended: int = 50) -> McpServerMemory:
    return McpServerMemory(4242, 50 * MB, open_sessions=50, held=held, after=after, ended=ended)


def test_memory_given_back_after_the_sessions_ended_passes() -> None:
    verdict = check_memory_kept_per_session(reading(after=50 * MB + 50 * 16 * KB), 64 * KB)
    assert verdict.passed, verdict.message
    assert verdict.value == 16 * KB
    assert verdict.message.startswith("The MCP server (pid 4242) kept 16.0 KB per ended session")


def test_state_kept_for_every_ended_session_fails_with_the_figure() -> None:
    verdict = check_memory_kept_per_session(reading(after=50 * MB + 50 * 256 * KB), 64 * KB)
    assert not verdict.passed
    assert verdict.value == 256 * KB
    assert "kept 256.0 KB per ended session" in verdict.message
    assert "the state of ended sessions is not reaped" in verdict.message


@pytest.mark.parametrize(
    ("memory", "why"),
    [
        (None, "define the MCP tool with the server's pid"),
        (reading(ended=0), "no session of the launch was ended"),
        (reading(after=None), "could not be read after the sessions ended"),
    ],
)
def test_memory_not_read_is_inconclusive(memory: McpServerMemory | None, why: str) -> None:
    verdict = check_memory_kept_per_session(memory, 64 * KB)
    assert not verdict.passed and verdict.inconclusive
    assert why in verdict.message


def test_memory_held_per_open_session_is_judged_against_its_own_limit() -> None:
    assert check_memory_held_per_session(reading(), 256 * KB).passed  # 10 MiB over 50 sessions: 204.8 KB
    failed = check_memory_held_per_session(reading(), 128 * KB)
    assert not failed.passed
    assert "grew by 200.0 KB per open session" in failed.message
    assert check_memory_held_per_session(reading(held=None), 128 * KB).inconclusive


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="0 or more bytes"):
        check_memory_kept_per_session(reading(), -1)
