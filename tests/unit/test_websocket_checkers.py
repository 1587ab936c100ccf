"""WebSocket agent checkers on hand-made message logs and histories: each fails on a broken one, passes a sound one."""

from __future__ import annotations

from typing import Any

from stampede.checkers.agent_credits import check_agent_credits, completed_runs, starting_credits
from stampede.checkers.answers import check_answered
from stampede.checkers.contamination import check_no_contamination
from stampede.checkers.duplicate_ids import check_unique_ids
from stampede.checkers.event_ordering import check_event_ordering
from stampede.checkers.run_execution import check_runs_in_parallel, executed_runs
from stampede.checkers.single_session import check_single_session, session_spans
from stampede.history import History, Operation
from stampede.outcomes import Outcome
from stampede.records.websocket import MessageLog, ReceivedMessage, WsFailure

MS = 1_000_000
LIFECYCLE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]
FAILURES = ["agent_failed"]


def marker(agent: int) -> str:
    return f"m-{agent}"


def user(agent: int) -> str:
    return f"user-{agent}"


def message(
    agent: int,
    seq: int | None,
    kind: str,
    *,
    connection: int = 1,
    leg: int = 1,
    run: str | None = None,
    owner: int | None = None,
    session: str | None = None,
    request: str | None = None,
) -> ReceivedMessage:
    """A message on ``agent``'s connection; ``owner`` is the agent whose user id and marker it carries."""
    owner = agent if owner is None else owner
    in_run = run is not None
    return ReceivedMessage(
        agent,
        user(agent),
        connection,
        seq or 0,
        f'{{"type": "{kind}"}}',
        own_marker=marker(agent),
        leg=leg,
        type=kind,
        seq=seq,
        user_id=user(owner),
        marker=marker(owner) if in_run else None,
        run_id=run,
        request=request,
        session_id=session,
    )


def session_of(agent: int, first_seq: int = 1, runs: int = 2, *, connection: int = 1) -> list[ReceivedMessage]:
    """A sound session: session_started, then ``runs`` runs of the whole lifecycle, seqs consecutive."""
    frames = [message(agent, first_seq, "session_started", connection=connection, session=f"s-{agent}-{connection}")]
    for run in range(runs):
        for kind in LIFECYCLE:
            frames.append(
                message(
                    agent,
                    first_seq + len(frames),
                    kind,
                    connection=connection,
                    run=f"run-{agent}-{connection}-{run}",
                    request=f"{marker(agent)}-{run}",
                )
            )
    return frames


def sound_log(agents: int = 3) -> list[ReceivedMessage]:
    return [frame for agent in range(1, agents + 1) for frame in session_of(agent)]


# Contamination


def test_own_messages_are_no_contamination() -> None:
    verdict = check_no_contamination(sound_log())
    assert verdict.passed and not verdict.inconclusive
    assert verdict.message == (
        "No cross-user contamination: 33 messages on 3 connections carried only their own user's id and marker."
    )


def test_another_users_event_on_a_connection_is_contamination() -> None:
    log = sound_log()
    log.append(message(3, 12, "agent_thinking", run="run-1-1-0", owner=1))
    log.append(message(3, 13, "tool_executing", run="run-2-1-0", owner=2))
    verdict = check_no_contamination(log, left_out=4)
    assert not verdict.passed
    assert verdict.message.startswith(
        "Messages reached the wrong user: 2 of 35 messages on the connections of 1 of "
        "3 users carried another user's id or marker; user-3 received messages of "
        "user-1, user-2"
    )
    assert "4 messages over the log's limit were not kept" in verdict.message
    assert [(row["user"], row["user id in message"], row["seq"]) for row in verdict.details] == [
        ("user-3", "user-1", 12),
        ("user-3", "user-2", 13),
    ]


def test_a_foreign_marker_alone_is_contamination_unless_its_owner_is_the_same_user() -> None:
    leaked = message(2, 12, "agent_thinking", run="run-x")
    leaked.marker = marker(1)  # the right user id, another agent's marker
    assert not check_no_contamination([leaked]).passed
    assert not check_no_contamination([leaked], marker_owners={marker(1): user(1)}).passed
    assert check_no_contamination([leaked], marker_owners={marker(1): user(2)}).passed


def test_contamination_without_user_fields_is_not_judged() -> None:
    bare = ReceivedMessage(1, "user-1", 1, 0, "{}", type="pong", seq=1)
    verdict = check_no_contamination([bare])
    assert verdict.inconclusive and "no received message carried a user id or marker" in verdict.message


# Event ordering


def test_consecutive_seqs_and_whole_lifecycles_are_in_order() -> None:
    verdict = check_event_ordering(sound_log(), lifecycle=LIFECYCLE, failures=FAILURES)
    assert verdict.passed and not verdict.inconclusive
    assert verdict.message == (
        "Events arrived in order: 33 sequence numbers on 3 connections rose by 1 each without "
        "gaps; 6 runs followed agent_started → … → agent_completed."
    )


def test_a_gap_a_repeat_and_a_late_frame_are_breaks() -> None:
    frames = session_of(1)
    seqs = [frame.seq for frame in frames]
    frames[3].seq, frames[4].seq = seqs[4], seqs[3]  # 4 and 5 swapped
    frames[8].seq = frames[7].seq  # a repeat
    del frames[9]  # a gap: run 2's tool_completed
    verdict = check_event_ordering(frames, lifecycle=LIFECYCLE, failures=FAILURES)
    assert not verdict.passed
    problems = [row["problem"] for row in verdict.details]
    assert problems == [
        "gap: seq 4 missing before 5",
        "seq 4 arrived after 5",
        "seq 8 repeated",
        "gap: seq 9 to 10 missing before 11",
        "ended without tool_completed",
    ]
    assert verdict.message.startswith("Events arrived out of order: 4 of 10 sequence numbers broke the order")


def test_a_run_whose_events_arrive_out_of_lifecycle_order_is_a_break() -> None:
    frames = session_of(1, runs=1)
    frames[1].type, frames[2].type = frames[2].type, frames[1].type  # thinking before started, seqs still fine
    verdict = check_event_ordering(frames, lifecycle=LIFECYCLE, failures=FAILURES)
    assert not verdict.passed
    assert verdict.details[0]["problem"] == "began with agent_thinking, not agent_started"
    assert "1 of 1 run broke the lifecycle agent_started → … → agent_completed" in verdict.message


def test_a_failed_run_may_end_early_but_nothing_follows_the_failure() -> None:
    failed = [
        message(1, 1, "agent_started", run="r"),
        message(1, 2, "agent_thinking", run="r"),
        message(1, 3, "agent_failed", run="r"),
    ]
    assert check_event_ordering(failed, lifecycle=LIFECYCLE, failures=FAILURES).passed
    failed.append(message(1, 4, "tool_executing", run="r"))
    verdict = check_event_ordering(failed, lifecycle=LIFECYCLE, failures=FAILURES)
    assert not verdict.passed and verdict.details[0]["problem"] == "tool_executing after agent_failed"


def test_order_holds_across_a_resumed_connection() -> None:
    frames = session_of(1)
    for frame in frames[4:]:
        frame.leg = 2
    verdict = check_event_ordering(frames, lifecycle=LIFECYCLE, failures=FAILURES)
    assert verdict.passed and "(1 session resumed on a new connection)" in verdict.message
    del frames[4]  # the resume lost a frame
    verdict = check_event_ordering(frames, lifecycle=LIFECYCLE, failures=FAILURES)
    assert not verdict.passed
    assert verdict.details[0]["leg"] == 2 and verdict.details[0]["problem"] == "gap: seq 5 missing before 6"


def test_ordering_ignores_runs_leaked_from_another_user_and_judges_seqs_only_without_a_lifecycle() -> None:
    leaked = [*session_of(1, runs=1), message(1, 7, "tool_completed", run="run-of-2", owner=2)]
    assert check_event_ordering(leaked, lifecycle=LIFECYCLE, failures=FAILURES).passed
    shuffled = [message(1, 2, "x"), message(1, 1, "y")]
    assert not check_event_ordering(shuffled, lifecycle=(), failures=FAILURES).passed
    assert check_event_ordering([], lifecycle=(), failures=FAILURES).inconclusive


REPEATING = ["run.started", "step", "tool", "step", "run.finished"]


def run_of(agent: int, kinds: list[str], *, first_seq: int = 1, run: str = "r") -> list[ReceivedMessage]:
    return [message(agent, first_seq + n, kind, run=f"{run}-{agent}") for n, kind in enumerate(kinds)]


def test_a_lifecycle_that_lists_an_event_type_twice_is_an_ordered_pattern() -> None:
    sound = run_of(1, REPEATING) + run_of(2, REPEATING)
    verdict = check_event_ordering(sound, lifecycle=REPEATING, failures=["run.failed"])
    assert verdict.passed, verdict.message  # once "tool after step": the second step's place was the first's
    assert verdict.message.endswith("2 runs followed run.started → … → run.finished.")


def test_a_run_that_breaks_a_repeating_pattern_says_which_place() -> None:
    cases = {
        "tool after step": ["run.started", "step", "step", "tool", "run.finished"],
        "a 3rd step, but the lifecycle has 2": ["run.started", "step", "tool", "step", "step", "run.finished"],
        "ended without the 2nd step": ["run.started", "step", "tool", "run.finished"],
        "ended without tool, the 2nd step": ["run.started", "step", "run.finished"],
    }
    for problem, kinds in cases.items():
        verdict = check_event_ordering(run_of(1, kinds), lifecycle=REPEATING, failures=["run.failed"])
        assert not verdict.passed and verdict.details[0]["problem"] == problem, (kinds, verdict.details)
    failed_early = run_of(1, ["run.started", "step", "run.failed"])
    assert check_event_ordering(failed_early, lifecycle=REPEATING, failures=["run.failed"]).passed


def leaked_tool_event() -> list[ReceivedMessage]:
    """Agent 1's tool_executing (seq 4 of its stream) delivered on agent 2's connection instead."""
    first, second = session_of(1, runs=1), session_of(2, runs=1)
    stolen = first.pop(3)
    leak = message(2, stolen.seq, stolen.type, run=stolen.run_id, owner=1)
    return first + second[:4] + [leak] + second[4:]


def test_ordering_leaves_out_a_leaked_message_and_the_marks_it_leaves_on_its_owner() -> None:
    log = leaked_tool_event()
    verdict = check_event_ordering(log, lifecycle=LIFECYCLE, failures=FAILURES)
    # Once: "seq 4 repeated" on agent 2's connection, a gap and a run without tool_executing on agent 1's.
    assert verdict.passed and not verdict.inconclusive, verdict.message
    assert "; left out 1 message carrying another user's id or marker, with 2 gaps or runs they cut short " in (
        verdict.message
    )
    contamination = check_no_contamination(log)
    assert not contamination.passed and contamination.message.startswith("Messages reached the wrong user: 1 of ")


def test_a_leak_numbered_by_the_receiving_connection_leaves_no_gap_there() -> None:
    log = session_of(2, runs=1)
    log.insert(3, message(2, 4, "agent_thinking", run="run-of-1", owner=1))
    for frame in log[4:]:
        frame.seq += 1
    verdict = check_event_ordering(log, lifecycle=LIFECYCLE, failures=FAILURES)
    assert verdict.passed and "left out 1 message" in verdict.message, verdict.message


def test_own_events_out_of_order_still_fail_beside_a_leak() -> None:
    log = leaked_tool_event()
    swapped = [frame for frame in log if frame.agent == 2 and frame.mine]
    swapped[1].seq, swapped[2].seq = swapped[2].seq, swapped[1].seq
    verdict = check_event_ordering(log, lifecycle=LIFECYCLE, failures=FAILURES)
    assert not verdict.passed and "left out 1 message" in verdict.message
    assert verdict.details[0]["agent"] == 2


# Duplicate ids


def test_ids_of_distinct_runs_and_sessions_are_unique() -> None:
    log = sound_log()
    for frame in session_of(1)[3:6]:  # the same run's events replayed after a resume: same owner
        frame.leg = 2
        log.append(frame)
    verdict = check_unique_ids(log)
    assert verdict.passed
    assert verdict.message == "Ids were unique: 6 run ids and 3 session ids, each used by one run or session."


def test_a_run_id_shared_by_two_users_and_a_session_id_by_two_sessions_are_duplicates() -> None:
    log = [
        message(1, 1, "agent_started", run="run-1", request="a"),
        message(2, 1, "agent_started", run="run-1", request="b"),
        message(1, 2, "session_started", session="s"),
        message(1, 1, "session_started", connection=2, session="s"),
    ]
    verdict = check_unique_ids(log)
    assert not verdict.passed
    assert verdict.message.startswith(
        "Ids were not unique: 1 of 1 run id and 1 of 1 session id were shared; run id "
        "'run-1' came back for 2 runs of 2 users (user-1, user-2)"
    )
    assert [(row["kind"], row["id"], row["users"]) for row in verdict.details] == [
        ("run id", "run-1", "user-1, user-2"),
        ("session id", "s", "user-1"),
    ]


def test_a_run_id_seen_on_a_leaked_message_is_not_a_second_owner() -> None:
    log = [message(1, 1, "agent_started", run="run-1"), message(2, 1, "agent_thinking", run="run-1", owner=1)]
    assert check_unique_ids(log).passed
    assert check_unique_ids([]).inconclusive


# Answers (from the history)


def op(
    agent: int,
    outcome: Outcome = Outcome.OK,
    error: WsFailure | None = None,
    *,
    start_ms: float = 0,
    end_ms: float = 100,
    read: dict[str, Any] | None = None,
    user_of: str | None = None,
) -> Operation:
    return Operation(
        agent,
        user_of or user(agent),
        "websocket_agents",
        0,
        int(start_ms * MS),
        int(end_ms * MS),
        outcome,
        error=error.value if error else None,
        read=read,
    )


def silent(agent: int) -> Operation:
    return op(
        agent,
        Outcome.TIMEOUT,
        WsFailure.NO_ANSWER,
        read={"waited_s": 10.0, "reason": "connected, but no answer to the hello within 10 s"},
    )


def test_every_user_answered_passes() -> None:
    history = History([op(1), op(1), op(2), op(2, Outcome.TIMEOUT, WsFailure.INCOMPLETE)])
    verdict = check_answered(history)
    assert verdict.passed
    assert verdict.message == (
        "Every user was answered: 2 connected, 2 answered (4 requests, none left without an answer)."
    )


def test_connected_but_never_answered_is_reported_as_exactly_that() -> None:
    verdict = check_answered(History([silent(agent) for agent in range(1, 76)]))
    assert not verdict.passed and verdict.measured == "75 connected, 0 answered within 10 s"
    assert verdict.message.startswith(
        "Users were not answered: 75 connected, 0 answered within 10 s (not one was "
        "answered): 75 requests of 75 got no answer at all"
    )


def test_users_who_could_not_connect_are_told_apart() -> None:
    refused = op(3, Outcome.ERROR, WsFailure.CONNECT_FAILED, read={"reason": "cannot open ws://x: refused"})
    verdict = check_answered(History([op(1), silent(2), refused]))
    assert not verdict.passed
    assert verdict.message == (
        "Users were not answered: 2 connected, 1 answered within 10 s: 1 request of 2 got no "
        "answer at all; 1 of 3 users could not connect (connect_failed 1; first: cannot open "
        "ws://x: refused)."
    )
    assert [row["finding"] for row in verdict.details] == ["could not connect", "connected, no answer"]
    assert check_answered(History()).inconclusive


def test_a_refused_token_is_never_an_answer() -> None:
    closed = {"close_code": 1008, "reason": "invalid token", "session": {"id": None, "since_ns": 0, "connection": 1}}
    history = History(
        [op(1), op(2, Outcome.ERROR, WsFailure.REFUSED, read=closed), op(3, Outcome.ERROR, WsFailure.REFUSED)]
    )
    verdict = check_answered(history)  # once: "Every user was answered: 3 connected, 3 answered"
    assert not verdict.passed and verdict.measured == "3 connected, 2 refused, 1 answered"
    assert verdict.message.startswith(
        "Users were not answered: 2 of 3 users were refused, which is no answer (first: close 1008, invalid token): "
        "the service refused the users' sessions; if it refused their token, check the secret it verifies tokens "
        "with (${AGENT_SERVICE_JWT_SECRET} or STAMPEDE_AGENT_JWT_SECRET), the token's claims (the protocol's "
        '"token": subject_claim, issuer, audience, claims, algorithm), the auth mode'
    )
    assert [(row["agent"], row["finding"], row["why"]) for row in verdict.details] == [
        (2, "refused", "close 1008, invalid token"),
        (3, "refused", "refused"),
    ]


# Single session


def in_session(
    agent: int, user_of: str, start_ms: float, end_ms: float, session: str, since_ms: float | None = None
) -> Operation:
    since = start_ms if since_ms is None else since_ms
    return op(
        agent,
        start_ms=start_ms,
        end_ms=end_ms,
        user_of=user_of,
        read={"session": {"id": session, "since_ns": int(since * MS), "connection": 1}},
    )


def refused(agent: int, user_of: str) -> Operation:
    return op(agent, Outcome.ERROR, WsFailure.REFUSED, user_of=user_of, read={"code": "session_active"})


def test_a_refused_second_session_keeps_one_session_per_user() -> None:
    history = History(
        [in_session(1, "alice", 0, 100, "s1"), in_session(1, "alice", 100, 200, "s1", since_ms=0), refused(2, "alice")]
    )
    assert [(span.start_ns, span.end_ns) for span in session_spans(history)] == [(0, 200 * MS)]
    verdict = check_single_session(history)
    assert verdict.passed
    assert verdict.message == (
        "At most one active session per user: 1 user ran several agents; refused sessions: 1 "
        "session_active; no two sessions of a user were active at once."
    )


def test_a_second_session_refused_by_a_close_is_counted_by_its_close_code() -> None:
    closed = op(2, Outcome.ERROR, WsFailure.REFUSED, user_of="alice", read={"close_code": 4409})
    verdict = check_single_session(History([in_session(1, "alice", 0, 100, "s1"), closed]))
    assert verdict.passed and "refused sessions: 1 close 4409;" in verdict.message, verdict.message


def test_sessions_one_after_the_other_do_not_overlap() -> None:
    history = History([in_session(1, "alice", 0, 100, "s1"), in_session(2, "alice", 100, 200, "s2")])
    assert check_single_session(history).passed


def test_two_sessions_of_one_user_at_once_fail() -> None:
    history = History(
        [
            in_session(1, "alice", 0, 300, "s1"),
            in_session(2, "alice", 100, 400, "s2"),
            in_session(3, "bob", 0, 300, "s3"),
            refused(4, "bob"),
        ]
    )
    verdict = check_single_session(history)
    assert not verdict.passed
    assert verdict.message == (
        "Users held two sessions at once: 1 of 2 users with several agents had overlapping "
        "sessions (refused sessions: 1 session_active); alice's sessions of agents 1 and 2 "
        "were both active for 200.0 ms."
    )


def test_single_session_is_not_judged_when_no_user_tried_a_second_one() -> None:
    verdict = check_single_session(History([in_session(1, "alice", 0, 100, "s1")]))
    assert verdict.inconclusive and "launch more agents than users" in verdict.message


# Hidden serialization, timed from each run's first event


def queued_run(agent: int, sent_ms: float, started_ms: float, done_ms: float) -> Operation:
    return op(
        agent,
        start_ms=sent_ms,
        end_ms=done_ms + 1,  # recorded a little after the done event arrived
        read={"first_event_ns": int(started_ms * MS), "done_ns": int(done_ms * MS)},
    )


def test_runs_queued_behind_one_lock_ran_one_at_a_time() -> None:
    # All sent at 0; the service began each one when the previous one ended.
    history = History([queued_run(agent, 0, (agent - 1) * 100, agent * 100) for agent in range(1, 9)])
    assert [(o.start_ns // MS, o.end_ns // MS) for o in executed_runs(history)][:2] == [(0, 100), (100, 200)]
    verdict = check_runs_in_parallel(history)
    assert not verdict.passed and verdict.name == "agent runs ran in parallel"
    assert verdict.message.startswith("Agents ran one at a time: 8 agents, average 1.00 operations in flight (max 1)")
    assert verdict.message.endswith(
        "(runs timed from their first event, so time queued before the service began them does not count)."
    )


def test_runs_that_ran_side_by_side_pass() -> None:
    history = History([queued_run(agent, 0, 5, 100) for agent in range(1, 9)])
    assert check_runs_in_parallel(history).passed


def test_the_message_log_keeps_its_limit() -> None:
    log = MessageLog(limit=2)
    for seq in range(5):
        log.append(message(1, seq, "x"))
    assert len(log) == 2 and log.left_out == 3


# --- agent credits ------------------------------------------------------------------------------

START = {"u1": 1000, "u2": 1000}


def test_agent_credits_add_up_when_every_completed_run_was_charged() -> None:
    verdict = check_agent_credits({"u1": 990, "u2": 995}, {"u1": 10, "u2": 5}, starting=START, cost=1)
    assert verdict.passed, verdict.message
    assert verdict.message.startswith("Agent credits add up: 2 users, 15 completed runs")


def test_agent_credits_left_over_are_lost_deductions() -> None:
    verdict = check_agent_credits({"u1": 997, "u2": 995}, {"u1": 10, "u2": 5}, starting=START, cost=1)
    assert not verdict.passed and not verdict.inconclusive
    assert "1 of 2 users" in verdict.message and "7 credits were never deducted" in verdict.message
    assert verdict.details[0] == {
        "user": "u1",
        "completed runs": 10,
        "expected balance": 990,
        "balance": 997,
        "difference": 7,
    }


def test_agent_credits_without_a_completed_run_or_with_a_truncated_log_are_not_judged() -> None:
    assert check_agent_credits({}, {}, starting=START, cost=1).inconclusive
    assert check_agent_credits({"u1": 990}, {"u1": 10}, starting=START, cost=1, left_out=3).inconclusive
    assert check_agent_credits({"u3": 990}, {"u3": 10}, starting=START, cost=1).inconclusive


def test_completed_runs_count_only_a_users_own_done_events() -> None:
    class Seen:
        def __init__(self, user: str, type_: str, mine: bool) -> None:
            self.user, self.type, self.mine = user, type_, mine

    seen = [
        Seen("u1", "agent_completed", True),
        Seen("u1", "agent_thinking", True),
        Seen("u2", "agent_completed", False),
        Seen("u2", "agent_completed", True),
    ]
    assert completed_runs(seen, ["agent_completed"]) == {"u1": 1, "u2": 1}


def test_starting_credits_come_from_each_users_first_session_start() -> None:
    class Seen:
        def __init__(self, user: str, user_id: str, raw: str) -> None:
            self.user, self.user_id, self.raw, self.type = user, user_id, raw, "session_started"

    seen = [
        Seen("u1", "u1", '{"type":"session_started","user_id":"u1","credits":970}'),
        Seen("u1", "u1", '{"type":"session_started","user_id":"u1","credits":5}'),
        Seen("u2", "u1", '{"type":"session_started","user_id":"u1","credits":1}'),
        Seen("u2", "u2", '{"type":"session_sta'),
    ]
    assert starting_credits(seen, "session_started") == {"u1": 970}
