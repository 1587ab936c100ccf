"""Runs that did not complete: grouped by failure code, each with its first reason and what to fix."""

from __future__ import annotations

from typing import Any

from stampede.checkers.run_completion import check_runs_completed
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.websocket import WsFailure

MS = 1_000_000


def op(agent: int, error: WsFailure | None = None, read: dict[str, Any] | None = None) -> Operation:
    outcome = Outcome.OK if error is None else error.outcome
    return Operation(
        agent,
        f"user-{agent}",
        "websocket_agents",
        0,
        0,
        100 * MS,
        outcome,
        error=error.value if error else None,
        read=read,
    )


def test_runs_that_all_completed_pass() -> None:
    verdict = check_runs_completed(History([op(1), op(2), op(2)]))
    assert verdict.passed and verdict.measured == "3 of 3 completed"
    assert verdict.message == "Every run completed: 3 runs ended with their done event."


def test_failures_are_grouped_by_code_largest_first_with_reason_and_fix() -> None:
    refused = {"code": "auth_failed", "message": "token refused: the token has expired"}
    history = History(
        [
            op(1),
            op(2, WsFailure.REFUSED, refused),
            op(3, WsFailure.REFUSED, refused),
            op(4, WsFailure.NO_ANSWER, {"reason": "no answer within 2 s"}),
        ]
    )
    verdict = check_runs_completed(history)
    assert not verdict.passed and verdict.miss == "3 of 4"
    assert verdict.message == (
        "Agent runs did not complete: 3 of 4 runs failed: refused 2 (first, agent 2: token refused: the token has "
        "expired; the service refused the users' sessions; if it refused their token, check the secret it verifies "
        "tokens with (${AGENT_SERVICE_JWT_SECRET} or STAMPEDE_AGENT_JWT_SECRET), the token's claims (the protocol's "
        '"token": subject_claim, issuer, audience, claims, algorithm), the auth mode (hello, header or query) and '
        "where the token goes (the hello template, header_name and header_value, or query_param)); "
        "no_answer 1 (first, agent 4: no answer within "
        "2 s; the service took the request and said nothing: see its logs, or raise answer_timeout)."
    )
    assert [(row["error"], row["runs"], row["agents"]) for row in verdict.details] == [
        ("refused", 2, 2),
        ("no_answer", 1, 1),
    ]


def test_a_field_path_problem_keeps_its_own_fix_and_drops_the_quoted_message() -> None:
    problem = (
        "The WebSocket protocol's field path 'sequence' matches no field in a received message. Message: "
        '{"type":"session_started","resume_token":"secret-ish"}. Fix the path in the protocol configuration.'
    )
    verdict = check_runs_completed(History([op(1, WsFailure.FIELD_MISSING, {"problem": problem})]))
    assert verdict.message == (
        "Agent runs did not complete: 1 of 1 run failed: field_missing 1 (first, agent 1: The WebSocket protocol's "
        "field path 'sequence' matches no field in a received message. Fix the path in the protocol configuration)."
    )


def test_no_operation_is_inconclusive() -> None:
    assert check_runs_completed(History()).inconclusive
