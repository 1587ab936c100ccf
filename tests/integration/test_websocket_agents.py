"""The WebSocket agent tool, launched by the launcher against the reference agent service and misbehaving servers.

A sound service passes every checker; each seeded bug makes its own checker
fail. Bad input (a wrong URL, a refused token, a wrong field path) and a server
that sends garbage or hangs up mid-message each end in their own error code
with a message that says what happened, and nothing is left open.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from reference_agent_service.bugs import Bug
from stampede.checkers.answers import check_answered
from stampede.checkers.contamination import check_no_contamination
from stampede.checkers.duplicate_ids import check_unique_ids
from stampede.checkers.event_ordering import check_event_ordering
from stampede.checkers.fairness import check_fairness
from stampede.checkers.run_execution import check_runs_in_parallel
from stampede.checkers.serialization import check_ran_in_parallel
from stampede.checkers.single_session import check_single_session
from stampede.launcher import LaunchPlan, LaunchResult, launch
from stampede.records.websocket import WsFailure
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.postgres_target import open_postgres
from stampede.services.processes import free_port
from stampede.services.redis_target import RedisTarget, open_redis
from stampede.verdicts import Verdict
from stampede.workloads.websocket_agents import WebSocketAgentTool
from stampede.workloads.websocket_protocol import WebSocketProtocol, reference_service

FAST: Mapping[str, int] = MappingProxyType({"think_ms": 20})  # read-only: a dataclass default


@dataclass
class Launched:
    tool: WebSocketAgentTool
    result: LaunchResult

    @property
    def errors(self) -> list[str | None]:
        return [op.error for op in self.result.history]

    def verdicts(self) -> dict[str, Verdict]:
        """Every WebSocket checker on this launch."""
        messages, left_out = self.tool.messages, self.tool.messages.left_out
        protocol = self.tool.protocol
        history = self.result.history
        return {
            "contamination": check_no_contamination(messages, marker_owners=self.tool.marker_owners, left_out=left_out),
            "ordering": check_event_ordering(
                messages, lifecycle=protocol.run_events, failures=protocol.failed_events, left_out=left_out
            ),
            "answers": check_answered(history),
            "duplicates": check_unique_ids(messages, left_out=left_out),
            "single session": check_single_session(history),
            "parallel": check_runs_in_parallel(history),
            "fairness": check_fairness(history, agents=range(1, self.result.plan.agents + 1)),
        }


async def run_agents(
    tool: WebSocketAgentTool, agents: int, *, iterations: int = 1, users: int | None = None
) -> Launched:
    plan = LaunchPlan(
        agents, iterations=iterations, users=users, operation_timeout=tool.operation_bound, run_timeout=60
    )
    result = await launch(tool, plan)
    assert not result.agent_errors and not result.hung_agents, result.agent_errors
    assert tool.sessions.open_count == 0, "every connection is closed when its agent closes"
    return Launched(tool, result)


@dataclass
class Reference:
    service: EmbeddedAgentService
    redis: RedisTarget

    def tool(self, **options: Any) -> WebSocketAgentTool:
        options.setdefault("answer_timeout", 5.0)
        options.setdefault("run_timeout", 10.0)
        return WebSocketAgentTool(reference_service(self.service.url), tokens=self.service.token_for, **options)

    async def keys_drained(self) -> int:
        """Redis keys the service still holds under the run's prefix, once its handlers caught up (≤ 3 s)."""
        for _ in range(30):
            if not (left := await self.redis.keys_left()):
                return 0
            await asyncio.sleep(0.1)
        return left


@asynccontextmanager
async def reference(
    pg_dsn: str, redis_url: str, run_id: str, *, bugs: str | None = None, settings: dict[str, int] = FAST
) -> AsyncIterator[Reference]:
    postgres = await open_postgres(pg_dsn, run_id=run_id)
    redis = await open_redis(redis_url, run_id=run_id)
    service = EmbeddedAgentService.for_targets(postgres, redis, bugs=bugs, settings=settings)
    try:
        await asyncio.to_thread(service.start)
        yield Reference(service, redis)
    finally:
        await asyncio.to_thread(service.stop)
        await redis.close()
        await postgres.close()


def scenario(
    pg_dsn: str,
    redis_url: str,
    run_id: str,
    body: Callable[[Reference], Awaitable[None]],
    *,
    bugs: str | None = None,
    settings: dict[str, int] = FAST,
) -> None:
    async def run() -> None:
        async with reference(pg_dsn, redis_url, run_id, bugs=bugs, settings=settings) as ref:
            await body(ref)

    asyncio.run(run())


# --- a sound service passes every checker ------------------------------------------------------


def test_a_sound_service_passes_every_checker(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(ref: Reference) -> None:
        conversation = await run_agents(ref.tool(context_bytes=4096), 10, iterations=3)
        assert conversation.errors == [None] * 30
        verdicts = conversation.verdicts()
        assert verdicts.pop("single session").inconclusive  # every user ran one agent
        for verdict in verdicts.values():
            assert verdict.passed, verdict.message
        assert verdicts["answers"].message == (
            "Every user was answered: 10 connected, 10 answered (30 requests, none left without an answer)."
        )
        assert verdicts["ordering"].message == (
            "Events arrived in order: 160 sequence numbers on 10 connections "
            "rose by 1 each without gaps; 30 runs followed agent_started → … → "
            "agent_completed."
        )
        first = next(op for op in conversation.result.history if op.iteration == 0)
        assert set(first.timings or {}) == {"connect", "first_event", "run"}
        assert first.written["template"] == "start" and first.written["bytes"] > 4096
        later = next(op for op in conversation.result.history if op.iteration == 2)
        assert set(later.timings or {}) == {"first_event", "run"} and later.written["template"] == "message"
        assert later.read["types"] == [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed",
        ]

        shared_users = await run_agents(ref.tool(connect_early=True), 8, users=4)
        assert sorted(map(str, shared_users.errors)) == ["None"] * 4 + ["refused"] * 4
        single = check_single_session(shared_users.result.history)
        assert single.passed, single.message
        assert "refused sessions: 4 session_active" in single.message
        assert await ref.keys_drained() == 0, "every session ended when its agent closed"

    scenario(pg_dsn, redis_url, run_id, body)


def test_order_holds_across_a_dropped_and_resumed_connection(embedded: tuple[str, str], run_id: str) -> None:
    async def body(ref: Reference) -> None:
        launched = await run_agents(ref.tool(drop_after_events=2), 5, iterations=2)
        assert launched.errors == [None] * 10
        assert all(op.read["legs"] >= 2 and "resume" in op.timings for op in launched.result.history)
        ordering = launched.verdicts()["ordering"]
        assert ordering.passed, ordering.message
        assert "(5 sessions resumed on a new connection)" in ordering.message
        legs = {(m.agent, m.leg) for m in launched.tool.messages}
        assert {leg for _, leg in legs} == {1, 2, 3}  # each run dropped once: legs 1 → 2 → 3

    scenario(*embedded, run_id, body, settings=dict(think_ms=100))


# --- each seeded bug makes its checker fail ---------------------------------------------------


@dataclass(frozen=True)
class BugCase:
    bug: Bug
    checker: str
    agents: int
    message: str
    settings: Mapping[str, int] = field(default_factory=lambda: FAST)
    iterations: int = 1
    users: int | None = None
    options: tuple[tuple[str, Any], ...] = ()


BUG_CASES = [
    BugCase(
        Bug.LEAK,
        "contamination",
        10,
        r"^Messages reached the wrong user: \d+ of \d+ messages on the "
        r"connections of 1 of 10 users carried another user's id or marker",
        dict(think_ms=200),
        options=(("run_timeout", 2.0), ("answer_timeout", 2.0)),
    ),
    BugCase(
        Bug.REORDER,
        "ordering",
        5,
        r"^Events arrived out of order: \d+ of \d+ sequence numbers broke the order",
        iterations=4,
    ),
    BugCase(
        Bug.NEVER_ANSWER,
        "answers",
        5,
        r"^Users were not answered: 5 connected, 0 answered within 1 s \(not one "
        r"was answered\): 5 requests of 5 got no answer at all",
        options=(("answer_timeout", 1.0),),
    ),
    BugCase(
        Bug.DUPLICATE_RUN_IDS,
        "duplicates",
        5,
        r"^Ids were not unique: 1 of 1 run id and 0 of 5 session ids were "
        r"shared; run id 'run-1' came back for 5 runs of 5 users",
    ),
    BugCase(
        Bug.SECOND_SESSION,
        "single session",
        6,
        r"^Users held two sessions at once: 3 of 3 users with several "
        r"agents had overlapping sessions \(refused sessions: none\)",
        users=3,
        options=(("connect_early", True),),
    ),  # every session opens before the start barrier, so they coexist
    BugCase(
        Bug.GLOBAL_LOCK,
        "parallel",
        8,
        r"^Agents (ran one at a time|hardly ran in parallel): 8 agents, "
        r"average [01]\.\d\d operations in flight \(max [12]\)",
        dict(think_ms=100),
    ),
]


@pytest.mark.parametrize("case", BUG_CASES, ids=[case.bug.value for case in BUG_CASES])
def test_each_seeded_bug_fails_its_checker(case: BugCase, embedded: tuple[str, str], run_id: str) -> None:
    async def body(ref: Reference) -> None:
        launched = await run_agents(
            ref.tool(**dict(case.options)), case.agents, iterations=case.iterations, users=case.users
        )
        verdict = launched.verdicts()[case.checker]
        assert not verdict.passed and not verdict.inconclusive, verdict.message
        assert verdict.details, "the offending items are listed"
        assert re.search(case.message, verdict.message), verdict.message
        if case.bug is Bug.GLOBAL_LOCK:  # timed from sending, queued runs look parallel: why runs are timed as run
            assert check_ran_in_parallel(launched.result.history).passed

    scenario(*embedded, run_id, body, bugs=case.bug.value, settings=case.settings)


# --- bad input and misbehaving servers -------------------------------------------------------


def test_a_wrong_url_is_could_not_connect(run_id: str) -> None:
    url = f"ws://127.0.0.1:{free_port()}/"
    tool = WebSocketAgentTool(
        reference_service(url), tokens="unused", connect_timeout=2, answer_timeout=2, run_timeout=2
    )
    launched = asyncio.run(run_agents(tool, 3, iterations=2))
    assert launched.errors == ["connect_failed"] * 3, "an agent that cannot connect stops after one try"
    reason = launched.result.history[0].read["reason"]
    assert reason.startswith(f"cannot open {url}: ConnectionRefusedError") and "unused" not in reason
    verdict = check_answered(launched.result.history)
    assert not verdict.passed and verdict.measured == "0 connected, 0 answered"
    assert "3 of 3 users could not connect (connect_failed 3; first: cannot open" in verdict.message


def test_a_refused_token_and_a_wrong_field_path_say_so(embedded: tuple[str, str], run_id: str) -> None:
    async def body(ref: Reference) -> None:
        refused = await run_agents(WebSocketAgentTool(reference_service(ref.service.url), tokens="not-a-jwt"), 2)
        assert refused.errors == ["refused"] * 2
        read = refused.result.history[0].read
        assert read["code"] == "auth_failed" and "not a well-formed JWT" in read["message"]

        wrong = WebSocketProtocol.from_dict({"url": ref.service.url, "fields": {"seq": "sequence"}})
        misread = await run_agents(WebSocketAgentTool(wrong, tokens=ref.service.token_for), 2, iterations=3)
        assert misread.errors == ["field_missing"] * 2
        problem = misread.result.history[0].read["problem"]
        assert problem.startswith(
            "The WebSocket protocol's field path 'sequence' (fields.seq, the sequence number) "
            "matches no field in a received message: nothing at the top level, the fields "
            "there are type, session_id, user_id, resume_token, credits, seq."
        )
        assert '"type":"session_started"' in problem
        (first_problem,) = misread.tool.config_problems  # one per path, however many agents met it
        assert first_problem.startswith("The WebSocket protocol's field path 'sequence'")

    scenario(*embedded, run_id, body)


async def misbehaving(connection: ServerConnection) -> None:
    """Answers the hello like the reference service, then does what the path says to a run."""
    await connection.recv()
    await connection.send(
        json.dumps({"type": "session_started", "seq": 1, "session_id": "s", "user_id": "x", "resume_token": "r"})
    )
    start = json.loads(await connection.recv())
    event = {
        "type": "agent_started",
        "seq": 2,
        "user_id": "user-1",
        "marker": start["marker"],
        "run_id": "run",
        "request_id": start["request_id"],
    }
    behaviour = connection.request.path.strip("/")  # type: ignore[union-attr]
    if behaviour == "not-json":
        await connection.send("<html>Internal Server Error</html>")
    elif behaviour == "cut":
        await connection.send(json.dumps(event))
        connection.transport.write(bytes([0x81, 100]) + b'{"type": "agent_thi')  # a text frame, 10 of 100 bytes
        connection.transport.abort()
        return
    elif behaviour == "close":
        await connection.send(json.dumps(event))
        await connection.close(1011, "worker crashed")
        return
    elif behaviour == "stall":
        await connection.send(json.dumps(event))
    elif behaviour == "forbidden":
        await connection.close(4403, "token lacks the agents scope")
        return
    elif behaviour == "expired":
        await connection.send(json.dumps({"type": "error", "seq": 2, "code": "token_expired", "message": "log in"}))
    elif behaviour == "busy":
        await connection.send(json.dumps({"type": "error", "seq": 2, "code": "too_many_runs", "message": "wait"}))
    await connection.wait_closed()


@pytest.mark.parametrize(
    ("behaviour", "error", "reason"),
    [
        ("not-json", WsFailure.BAD_FRAME, "the service sent a frame that is not JSON (34 characters)"),
        (
            "cut",
            WsFailure.BAD_FRAME,
            "the service closed the connection mid-message (stream ends after 19 bytes, expected 100 bytes)",
        ),
        ("close", WsFailure.CLOSED, "worker crashed"),
        ("stall", WsFailure.INCOMPLETE, "1 event(s) of the run, then no agent_completed within 1 s of sending"),
    ],
)
def test_a_misbehaving_server_gets_its_own_error_code(behaviour: str, error: WsFailure, reason: str) -> None:
    async def body() -> Launched:
        async with serve(misbehaving, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            tool = WebSocketAgentTool(
                reference_service(f"ws://127.0.0.1:{port}/{behaviour}"),
                tokens="t",
                connect_timeout=2,
                answer_timeout=1,
                run_timeout=1,
            )
            return await run_agents(tool, 1)

    launched = asyncio.run(body())
    (op,) = launched.result.history
    assert (op.outcome, op.error) == (error.outcome, error.value)
    assert op.read["reason"] == reason
    assert op.read["session"]["id"] == "s" and op.written["template"] == "start"
    if behaviour == "not-json":
        assert op.read["frame"] == "<html>Internal Server Error</html>"
    if behaviour == "close":
        assert op.read["close_code"] == 1011


@pytest.mark.parametrize(
    ("behaviour", "error", "read"),
    [
        ("forbidden", WsFailure.REFUSED, {"close_code": 4403, "reason": "token lacks the agents scope"}),
        ("expired", WsFailure.REFUSED, {"code": "token_expired", "message": "log in"}),
        ("busy", WsFailure.REJECTED, {"code": "too_many_runs", "message": "wait"}),
    ],
)
def test_a_refusal_during_a_run_is_a_refusal_and_never_an_answer(
    behaviour: str, error: WsFailure, read: dict[str, Any]
) -> None:
    async def body() -> Launched:
        async with serve(misbehaving, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            tool = WebSocketAgentTool(
                reference_service(f"ws://127.0.0.1:{port}/{behaviour}"), tokens="t", answer_timeout=1, run_timeout=1
            )
            return await run_agents(tool, 1, iterations=2 if error is WsFailure.REFUSED else 1)

    launched = asyncio.run(body())
    ops = launched.result.history
    assert ops[0].error == error.value and read.items() <= ops[0].read.items(), ops[0].read
    answered = check_answered(launched.result.history)
    if error is WsFailure.REFUSED:  # once: closed (4403) or rejected (an error event), and "every user was answered"
        assert len(ops) == 1, "a refused user stops trying"
        assert not answered.passed and "1 of 1 user was refused, which is no answer" in answered.message
    else:
        assert answered.passed, answered.message


# --- a service with its own protocol, described as configuration -------------------------------

CUSTOM = {
    "auth": "header",
    "header_name": "X-Api-Key",
    "header_value": "key-{token}",
    "hello": None,
    "ready_event": None,
    "resume": None,
    "message": None,
    "start": {"op": "run", "input": "{context}", "tag": "{marker}", "id": "{request}", "who": "{user}"},
    "fields": {
        "type": "event",
        "seq": "meta.n",
        "user": "meta.user",
        "marker": "data.tag",
        "run_id": "data.run",
        "request": "data.id",
        "session_id": None,
        "resume_token": None,
        "error_code": "data.reason",
    },
    "run_events": ["begun", "finished"],
    "done_events": ["finished"],
    "failed_events": ["failed"],
    "error_events": ["oops"],
}


async def custom_service(connection: ServerConnection) -> None:
    """Streams ``begun`` and ``finished`` for each ``run`` frame, fields nested as CUSTOM describes."""
    sent = 0
    async for frame in connection:
        request = json.loads(frame)
        for event in ("begun", "finished"):
            sent += 1
            await connection.send(
                json.dumps(
                    {
                        "event": event,
                        "meta": {"n": sent, "user": request["who"]},
                        "data": {"tag": request["tag"], "run": f"{request['id']}-run", "id": request["id"]},
                    }
                )
            )


def key_required(connection: ServerConnection, request: Any) -> Any:
    """Refuse the handshake (HTTP 401) without the right key in the header or the query string."""
    token = request.headers.get("X-Api-Key", "").removeprefix("key-") or request.path.partition("token=")[2]
    if token != "secret":
        return connection.respond(401, "bad key\n")
    return None


@pytest.mark.parametrize("auth", ["header", "query"])
def test_a_service_with_its_own_protocol_is_configuration(auth: str) -> None:
    async def body() -> tuple[Launched, Launched]:
        async with serve(custom_service, "127.0.0.1", 0, process_request=key_required) as server:
            url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/agents"
            protocol = WebSocketProtocol.load(json.dumps({**CUSTOM, "auth": auth}), url=url)
            good = await run_agents(
                WebSocketAgentTool(
                    protocol, tokens={f"user-{n}": "secret" for n in (1, 2, 3)}, answer_timeout=2, run_timeout=2
                ),
                3,
                iterations=2,
            )
            bad = await run_agents(WebSocketAgentTool(protocol, tokens="wrong", answer_timeout=2, run_timeout=2), 1)
            return good, bad

    good, bad = asyncio.run(body())
    assert good.errors == [None] * 6
    verdicts = good.verdicts()
    for name in ("contamination", "ordering", "answers", "duplicates"):
        assert verdicts[name].passed, verdicts[name].message
    assert verdicts["ordering"].message == (
        "Events arrived in order: 12 sequence numbers on 3 connections rose by 1 "
        "each without gaps; 6 runs followed begun → finished."
    )
    assert {m.type for m in good.tool.messages} == {"begun", "finished"}
    (refused,) = bad.result.history
    assert refused.error == "refused" and refused.read["code"] == "http_401"
    assert "wrong" not in json.dumps(refused.read)
