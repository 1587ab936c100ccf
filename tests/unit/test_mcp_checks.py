"""The MCP checks on hand-made calls: each fails on the defect it is for, passes without it, judges nothing as such."""

from __future__ import annotations

from typing import Any

import pytest

from stampede.checkers.mcp_calls import (
    PROGRESS,
    check_no_late_answers,
    check_own_answers,
    check_progress,
    check_sessions_reaped,
    check_users_isolated,
)
from stampede.checkers.serialization import check_work_overlapped
from stampede.errors import ConfigurationError
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.mcp import McpCall, McpFailure, McpNotification

MS = 1_000_000


def call(agent: int, nonce: str, *, user: str | None = None, echoed: Any = "same", text: str = "") -> McpCall:
    made = McpCall(agent, user or f"user-{agent}", f"s{agent}", 1, nonce, f"m-x-{agent}-1", "t", {}, 0, 10)
    structured = {"nonce": nonce if echoed == "same" else echoed} if echoed is not None else None
    made.result = {"content": [{"type": "text", "text": text}], "structuredContent": structured}
    made.content, made.structured = made.result["content"], structured
    return made


def unanswered(agent: int) -> McpCall:
    made = McpCall(agent, f"user-{agent}", None, 1, "n", f"m-x-{agent}-1", "t", {}, 0, 10)
    made.failure = McpFailure.TIMEOUT
    return made


def test_answers_carrying_their_own_nonce_pass() -> None:
    verdict = check_own_answers([call(1, "a"), call(2, "b"), call(3, "c", echoed=None, text='{"nonce": "c"}')])
    assert verdict.passed and verdict.value == 0


def test_an_answer_carrying_another_calls_nonce_fails_naming_both_calls() -> None:
    verdict = check_own_answers([call(1, "a", echoed="b"), call(2, "b")])
    assert not verdict.passed and verdict.value == 1
    assert "1 carry the nonce of another call" in verdict.message
    assert verdict.details[0]["answer belongs to"] == "agent 2, request 1"


def test_an_answer_without_its_nonce_fails() -> None:
    assert not check_own_answers([call(1, "a", echoed=None, text="ok")]).passed


def test_no_answered_call_is_inconclusive() -> None:
    verdict = check_own_answers([unanswered(1)])
    assert verdict.inconclusive and "none of 1 call got a result" in verdict.message


OWNERS = {"m-x-1-1": "user-1", "m-x-10-1": "user-2", "m-x-2-1": "user-1"}


def test_markers_of_the_same_user_are_no_leak_and_a_longer_marker_is_not_its_prefix() -> None:
    calls = [call(1, "a", text="m-x-1-1 m-x-2-1"), call(10, "b", user="user-2", text="m-x-10-1")]
    assert check_users_isolated(calls, OWNERS).passed


def test_another_users_marker_in_an_answer_fails_naming_whose() -> None:
    verdict = check_users_isolated([call(1, "a", text="m-x-1-1, m-x-10-1")], OWNERS)
    assert not verdict.passed and verdict.details[0]["their users"] == "user-2"
    assert "shared between users" in verdict.message


def test_isolation_over_no_answer_is_inconclusive() -> None:
    assert check_users_isolated([unanswered(1)], OWNERS).inconclusive


def test_sessions_reaped_fails_for_kept_state_and_judges_nothing_without_deletes() -> None:
    assert check_sessions_reaped(20, 0).passed
    kept = check_sessions_reaped(20, 21)
    assert not kept.passed and kept.message.endswith(": 21 never reaped.")
    assert "(at most 2 allowed)" in check_sessions_reaped(20, 3, allowed=2).message
    assert check_sessions_reaped(0, 0).inconclusive


def ops(ends_ms: list[float]) -> History:
    return History(
        Operation(agent, f"user-{agent}", "call", 1, 0, int(end * MS), Outcome.OK)
        for agent, end in enumerate(ends_ms, 1)
    )


def test_work_that_got_through_together_overlapped_and_one_at_a_time_did_not() -> None:
    assert check_work_overlapped(ops([210, 205, 220, 215]), solo_seconds=0.2).passed
    serial = check_work_overlapped(ops([800, 800, 800, 800]), solo_seconds=0.2, at_least=3)
    assert not serial.passed and "ran one at a time" in serial.message and serial.value == pytest.approx(1.0)


def test_overlap_needs_two_agents_and_a_positive_cost() -> None:
    assert check_work_overlapped(ops([200]), solo_seconds=0.2).inconclusive
    with pytest.raises(ConfigurationError, match="solo_seconds"):
        check_work_overlapped(ops([200, 200]), solo_seconds=0)


def test_a_crossed_answer_is_left_to_the_answer_check_not_counted_as_shared_state() -> None:
    crossed = call(1, "a", echoed="b", text="m-x-10-1")
    verdict = check_users_isolated([crossed, call(10, "b", user="user-2", text="m-x-10-1")], OWNERS)
    assert verdict.passed and "1 answer carrying another call's nonce left to the answer check" in verdict.message


def with_progress(agent: int, *steps: tuple[str | None, float]) -> McpCall:
    made = call(agent, f"n{agent}")
    for n, (token, progress) in enumerate(steps):
        made.notifications.append(
            McpNotification(PROGRESS, {"progressToken": token or made.marker, "progress": progress}, n)
        )
    return made


def test_rising_progress_with_the_calls_own_token_passes() -> None:
    assert check_progress([with_progress(1, (None, 1), (None, 2)), with_progress(2, (None, 0.5))]).passed


def test_progress_for_another_request_or_going_backwards_fails() -> None:
    foreign = check_progress([with_progress(1, (None, 1), ("m-x-2-1", 2))])
    assert not foreign.passed and foreign.details[0]["other tokens"] == "m-x-2-1"
    backwards = check_progress([with_progress(1, (None, 2), (None, 2))])
    assert not backwards.passed and backwards.details[0]["not rising"] == "2 → 2"


def test_no_progress_is_inconclusive() -> None:
    assert check_progress([call(1, "a")]).inconclusive


def cancelled(agent: int, *, late: Any = None, watched: bool = True) -> McpCall:
    made = unanswered(agent)
    made.failure, made.cancelled_ns, made.late_watch = McpFailure.CANCELLED, 300 * MS, watched
    if late is not None:
        made.late_answer, made.late_ns = late, 1000 * MS
    return made


def test_cancelled_calls_not_answered_after_their_cancel_pass() -> None:
    verdict = check_no_late_answers([cancelled(1), cancelled(2), call(3, "c")])
    assert verdict.passed, verdict.message
    assert verdict.message == "None of 2 cancelled calls was answered after its cancel."


def test_a_response_after_the_cancel_fails_with_when_it_came() -> None:
    late = {"jsonrpc": "2.0", "id": 1, "result": {"structuredContent": {"nonce": "n", "balance": 995}}}
    verdict = check_no_late_answers([cancelled(1, late=late), cancelled(2)])
    assert not verdict.passed and verdict.value == 1
    assert verdict.message.startswith("1 cancelled call of 2 got a response after the cancel")
    assert verdict.details[0]["answered after the cancel"] == "700 ms"
    assert "'balance': 995" in verdict.details[0]["answer"]


def test_no_cancelled_call_listened_to_is_inconclusive() -> None:
    verdict = check_no_late_answers([call(1, "a"), cancelled(2, watched=False)])
    assert verdict.inconclusive and not verdict.passed
    assert "in the stateless era over HTTP the cancel closes the stream" in verdict.message
