"""The reference agent service against real PostgreSQL and Redis, through a real WebSocket client.

The first half shows the protocol working; the second shows that each seeded
bug has a symptom a client can observe, so a checker has something to catch.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from reference_agent_service.bugs import Bug
from reference_agent_service.protocol import (
    RUN_ENDS,
    RUN_LIFECYCLE,
    CloseCode,
    hello_frame,
    ping_frame,
    send_message_frame,
    start_run_frame,
)
from reference_agent_service.store import application_name
from stampede.errors import ServiceUnavailable
from stampede.services import PostgresTarget, RedisTarget
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.postgres_target import open_postgres
from stampede.services.redis_target import open_redis
from stampede.services.secrets import passwords_in
from stampede.services.tokens import issue_token, new_secret

FRAME_TIMEOUT = 5.0
FAST: Mapping[str, int] = MappingProxyType({"think_ms": 20})  # read-only: a dataclass default


@dataclass
class Harness:
    service: EmbeddedAgentService
    postgres: PostgresTarget
    redis: RedisTarget

    async def balance(self, user_id: str) -> int:
        connection = await self.postgres.connect()
        try:
            return int(await connection.fetchval("SELECT balance FROM agent_credits WHERE user_id = $1", user_id))
        finally:
            await connection.close()


@asynccontextmanager
async def agent_service(
    pg_dsn: str,
    redis_url: str,
    run_id: str,
    *,
    bugs: str | None = None,
    settings: Mapping[str, int] = FAST,
    processes: int = 1,
) -> AsyncIterator[Harness]:
    postgres = await open_postgres(pg_dsn, run_id=run_id)
    redis = await open_redis(redis_url, run_id=run_id)
    service = EmbeddedAgentService.for_targets(postgres, redis, bugs=bugs, settings=settings, processes=processes)
    try:
        service.start()
        yield Harness(service, postgres, redis)
    finally:
        service.stop()
        await redis.close()
        await postgres.close()


def scenario(
    pg_dsn: str,
    redis_url: str,
    run_id: str,
    body: Callable[[Harness], Awaitable[None]],
    *,
    bugs: str | None = None,
    settings: Mapping[str, int] = FAST,
    processes: int = 1,
) -> None:
    async def run() -> None:
        async with agent_service(
            pg_dsn, redis_url, run_id, bugs=bugs, settings=settings, processes=processes
        ) as harness:
            await body(harness)

    asyncio.run(run())


@dataclass
class Client:
    """One user's connection, keeping every frame it received in order."""

    user_id: str
    ws: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def open(cls, service: EmbeddedAgentService, user_id: str) -> Client:
        client = cls(user_id, await connect(service.url, open_timeout=FRAME_TIMEOUT, close_timeout=2))
        await client.ws.send(hello_frame(service.token_for(user_id)))
        started = await client.next()
        assert started["type"] == "session_started", started
        return client

    @property
    def marker(self) -> str:
        return f"marker-{self.user_id}"

    async def next(self, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        return frame

    async def run(self, thread_id: str = "t1", *, context: Any = None) -> list[dict[str, Any]]:
        """Start a run and return its events, up to and including the one that ends it."""
        await self.ws.send(start_run_frame(thread_id, self.marker, context))
        return await self.until_runs_end(1)

    async def until_runs_end(self, runs: int, timeout: float = FRAME_TIMEOUT) -> list[dict[str, Any]]:
        """Read until ``runs`` runs have ended; return the frames read."""
        first, ended = len(self.frames), 0
        deadline = time.monotonic() + timeout
        while ended < runs:
            frame = await self.next(deadline - time.monotonic())
            ended += frame["type"] in RUN_ENDS
        return self.frames[first:]

    async def read_for(self, seconds: float) -> None:
        """Keep every frame that arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                await self.next(left)
        except (TimeoutError, ConnectionClosed):
            pass

    async def close(self) -> None:
        await self.ws.close()


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in frames]


async def clients(service: EmbeddedAgentService, count: int) -> list[Client]:
    return list(await asyncio.gather(*(Client.open(service, f"user{number}") for number in range(count))))


async def expect_refusal(ws: ClientConnection, code: str, close_code: CloseCode) -> dict[str, Any]:
    frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
    assert frame["type"] == "error" and frame["code"] == code and frame["seq"] is None, frame
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
    assert ws.close_code == close_code
    return frame


# --- the protocol --------------------------------------------------------------------------


def test_a_run_streams_its_five_events_with_consecutive_seqs(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        alice = await Client.open(harness.service, "alice")
        events = await alice.run(context={"question": "x" * 4000})
        assert [event["type"] for event in events] == list(RUN_LIFECYCLE)
        assert seqs(alice.frames) == [1, 2, 3, 4, 5, 6]
        assert {(e["user_id"], e["marker"], e["thread_id"]) for e in events} == {("alice", alice.marker, "t1")}
        assert len({event["run_id"] for event in events}) == 1
        assert events[0]["context_bytes"] == len(json.dumps({"question": "x" * 4000}, separators=(",", ":")))
        assert events[3]["balance"] == 999 and events[3]["message_position"] == 1
        assert await harness.balance("alice") == 999
        assert await harness.redis.client.exists(harness.redis.key("agent:session:alice"))
        await alice.close()

    scenario(pg_dsn, redis_url, run_id, body)


def test_concurrent_users_each_see_only_their_own_runs(pg_dsn: str, redis_url: str, run_id: str) -> None:
    messages = 3

    async def converse(client: Client) -> None:
        await client.run("thread")
        for number in range(messages - 1):
            await client.ws.send(send_message_frame("thread", client.marker, f"message {number}"))
            await client.until_runs_end(1)

    async def body(harness: Harness) -> None:
        users = await clients(harness.service, 20)
        await asyncio.gather(*(converse(client) for client in users))
        run_ids = set()
        for client in users:
            assert seqs(client.frames) == list(range(1, 2 + 5 * messages))
            events = client.frames[1:]
            assert {(event["user_id"], event["marker"]) for event in events} == {(client.user_id, client.marker)}
            positions = [event["message_position"] for event in events if event["type"] == "tool_completed"]
            assert positions == list(range(1, messages + 1))
            run_ids |= {event["run_id"] for event in events}
        assert len(run_ids) == 20 * messages
        assert {await harness.balance(client.user_id) for client in users} == {1000 - messages}
        await asyncio.gather(*(client.close() for client in users))

    scenario(pg_dsn, redis_url, run_id, body)


def test_refused_tokens_get_an_error_and_a_close(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        for token, reason in [
            (harness.service.token_for("alice", ttl=timedelta(seconds=-1)), "expired"),
            (issue_token(new_secret(), "alice"), "signature does not match"),
            ("garbage", "not a well-formed JWT"),
        ]:
            async with connect(harness.service.url) as ws:
                await ws.send(hello_frame(token))
                refusal = await expect_refusal(ws, "auth_failed", CloseCode.AUTH_FAILED)
                assert reason in refusal["message"]

    scenario(pg_dsn, redis_url, run_id, body)


def test_malformed_frames_get_errors(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with connect(harness.service.url) as ws:
            await ws.send("not json")
            await expect_refusal(ws, "bad_json", CloseCode.PROTOCOL_ERROR)
        async with connect(harness.service.url) as ws:
            await ws.send(ping_frame())
            await expect_refusal(ws, "hello_required", CloseCode.PROTOCOL_ERROR)
        async with connect(harness.service.url) as ws:  # says nothing: hello_timeout_ms is 500
            await expect_refusal(ws, "hello_timeout", CloseCode.PROTOCOL_ERROR)
        alice = await Client.open(harness.service, "alice")
        await alice.ws.send("{oops")
        assert (await alice.next())["code"] == "bad_json"
        await alice.ws.send(send_message_frame("no-such-thread", alice.marker, "hi", request_id="r1"))
        unknown = await alice.next()
        assert (unknown["code"], unknown["request_id"]) == ("unknown_thread", "r1")
        await alice.ws.send(ping_frame("p1"))
        assert await alice.next() == {"type": "pong", "request_id": "p1", "seq": 4}
        await alice.close()

    scenario(pg_dsn, redis_url, run_id, body, settings=dict(think_ms=20, hello_timeout_ms=500))


def test_a_second_session_for_a_user_is_refused(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        first = await Client.open(harness.service, "alice")
        async with connect(harness.service.url) as ws:
            await ws.send(hello_frame(harness.service.token_for("alice")))
            await expect_refusal(ws, "session_active", CloseCode.SESSION_ACTIVE)
        assert [event["type"] for event in await first.run()] == list(RUN_LIFECYCLE)
        await first.close()
        again = await Client.open(harness.service, "alice")  # a cleanly closed session is over at once
        await again.close()

    scenario(pg_dsn, redis_url, run_id, body)


def test_a_dropped_connection_resumes_where_it_left_off(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        alice = await Client.open(harness.service, "alice")
        resume_token = alice.frames[0]["resume_token"]
        await alice.ws.send(start_run_frame("t1", alice.marker))
        assert (await alice.next())["type"] == "agent_started"
        alice.ws.transport.abort()  # the network drops: no close frame
        await asyncio.sleep(0.5)  # the run goes on meanwhile (it thinks 300 ms)
        async with connect(harness.service.url) as ws:
            await ws.send(hello_frame(harness.service.token_for("alice"), resume_token="wrong", last_seq=2))
            await expect_refusal(ws, "resume_failed", CloseCode.RESUME_FAILED)
        again = Client("alice", await connect(harness.service.url))
        await again.ws.send(
            hello_frame(harness.service.token_for("alice"), resume_token=resume_token, last_seq=alice.frames[-1]["seq"])
        )
        await again.until_runs_end(1)
        resumed = await again.next()
        assert resumed["type"] == "session_resumed" and resumed["replayed"] == 4
        frames = alice.frames + again.frames
        assert seqs(frames) == list(range(1, 8))
        assert [frame["type"] for frame in frames[1:6]] == list(RUN_LIFECYCLE)
        await again.ws.send(ping_frame())
        assert (await again.next())["seq"] == 8
        await again.close()

    scenario(pg_dsn, redis_url, run_id, body, settings=dict(think_ms=300))


def test_resuming_takes_over_an_open_connection_and_a_dropped_session_expires(
    pg_dsn: str, redis_url: str, run_id: str
) -> None:
    async def body(harness: Harness) -> None:
        first = await Client.open(harness.service, "alice")
        second = Client("alice", await connect(harness.service.url))
        await second.ws.send(
            hello_frame(harness.service.token_for("alice"), resume_token=first.frames[0]["resume_token"], last_seq=1)
        )
        assert (await second.next())["type"] == "session_resumed"
        await first.read_for(FRAME_TIMEOUT)
        assert first.ws.close_code == CloseCode.TAKEN_OVER
        second.ws.transport.abort()
        await asyncio.sleep(0.8)  # beyond the 300 ms resume window: the session is over
        assert await harness.redis.keys_left() == 0
        third = await Client.open(harness.service, "alice")
        await third.close()

    scenario(pg_dsn, redis_url, run_id, body, settings=dict(resume_window_ms=300))


def test_stop_leaves_no_process_key_or_connection_behind(pg_dsn: str, redis_url: str, run_id: str) -> None:
    async def body(harness: Harness) -> None:
        service = harness.service
        pid = service.pid
        assert pid is not None and psutil.pid_exists(pid)
        users = await clients(service, 5)
        for client in users:  # runs in flight (they think 2 s) when the service stops
            await client.ws.send(start_run_frame("t1", client.marker))
        await asyncio.gather(*(client.next() for client in users))
        assert await harness.redis.keys_left() >= 5
        assert await asyncio.to_thread(service.stop) == 0, "the service did not shut down cleanly"
        assert not psutil.pid_exists(pid)
        for client in users:
            await client.read_for(FRAME_TIMEOUT)
            assert client.ws.state is State.CLOSED and client.ws.close_code == CloseCode.GOING_AWAY
        assert await harness.redis.keys_left() == 0
        admin = await harness.postgres.connect()
        try:
            left = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                application_name(harness.postgres.schema),
            )
        finally:
            await admin.close()
        assert left == 0

    scenario(pg_dsn, redis_url, run_id, body, settings=dict(think_ms=2000))


def test_secrets_stay_out_of_the_command_line_and_the_log(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        alice = await Client.open(harness.service, "alice")
        token = harness.service.token_for("alice")
        await alice.ws.send(hello_frame(token))  # a hello too many: refused, and its token not logged
        assert (await alice.next())["code"] == "bad_message"
        await alice.close()
        secrets = [harness.service._secret, token, *passwords_in(embedded[0]), *passwords_in(embedded[1])]
        command_line = " ".join(psutil.Process(harness.service.pid).cmdline())
        log = harness.service.log_path.read_text()  # type: ignore[union-attr]
        assert "listening on ws://" in log
        for secret in secrets:
            assert secret and secret not in command_line and secret not in log

    scenario(*embedded, run_id, body)


def test_a_service_that_cannot_start_says_why(embedded: tuple[str, str], run_id: str) -> None:
    pg_dsn, redis_url = embedded

    async def body() -> None:
        postgres = await open_postgres(pg_dsn, run_id=run_id)
        try:
            for service, reason in [
                (
                    EmbeddedAgentService(
                        pg_dsn=pg_dsn,
                        pg_schema=f"{postgres.schema}_missing",
                        redis_url=redis_url,
                        redis_prefix="unused:",
                    ),
                    f"has no schema {postgres.schema}_missing",
                ),
                (
                    EmbeddedAgentService(
                        pg_dsn=pg_dsn,
                        pg_schema=postgres.schema,
                        redis_url="redis://127.0.0.1:1/0",
                        redis_prefix="unused:",
                    ),
                    "Cannot reach Redis at redis://127.0.0.1:1/0",
                ),
            ]:
                with pytest.raises(ServiceUnavailable, match=reason) as caught:
                    service.start(timeout=30)
                assert not any(secret in str(caught.value) for secret in passwords_in(pg_dsn))
                assert service.pid is None and service.log_path is None
        finally:
            await postgres.close()

    asyncio.run(body())


# --- each seeded bug shows a symptom a client can see ----------------------------------------


def with_bug(
    embedded: tuple[str, str],
    run_id: str,
    bug: Bug,
    body: Callable[[Harness], Awaitable[None]],
    settings: dict[str, int] = FAST,
) -> None:
    scenario(*embedded, run_id, body, bugs=bug.value, settings=settings)


def test_leak_sends_events_to_the_wrong_user(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        users = await clients(harness.service, 20)
        await asyncio.gather(*(client.ws.send(start_run_frame("t1", client.marker)) for client in users))
        await asyncio.gather(*(client.read_for(1.5) for client in users))
        foreign = [
            (client.user_id, frame["user_id"])
            for client in users
            for frame in client.frames[1:]
            if frame["marker"] != client.marker
        ]
        assert foreign, "no event reached another user"
        assert all(owner != receiver for receiver, owner in foreign)

    with_bug(embedded, run_id, Bug.LEAK, body, dict(think_ms=200))


def test_never_answer_accepts_connections_and_stays_silent(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with connect(harness.service.url, open_timeout=FRAME_TIMEOUT) as ws:
            await ws.send(hello_frame(harness.service.token_for("alice")))
            await ws.send(start_run_frame("t1", "m"))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 2)
            assert ws.state is State.OPEN

    with_bug(embedded, run_id, Bug.NEVER_ANSWER, body)


def test_reorder_breaks_the_sequence_or_the_lifecycle(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        alice = await Client.open(harness.service, "alice")
        for thread in range(10):
            await alice.ws.send(start_run_frame(f"t{thread}", alice.marker))
        await alice.read_for(1.5)
        received = seqs(alice.frames)
        by_run: dict[str, list[str]] = {}
        for frame in alice.frames[1:]:
            by_run.setdefault(frame["run_id"], []).append(frame["type"])
        out_of_lifecycle = [run for run, types in by_run.items() if types != list(RUN_LIFECYCLE)]
        assert received != sorted(received) or out_of_lifecycle, received

    with_bug(embedded, run_id, Bug.REORDER, body)


def test_duplicate_run_ids_gives_two_users_the_same_run_id(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        alice, bob = await clients(harness.service, 2)
        alice_run, bob_run = await asyncio.gather(alice.run(), bob.run())
        assert alice_run[0]["run_id"] == bob_run[0]["run_id"]

    with_bug(embedded, run_id, Bug.DUPLICATE_RUN_IDS, body)


def test_memory_growth_grows_the_service_rss_per_run(embedded: tuple[str, str], run_id: str) -> None:
    runs, batch = 200, 20

    async def run_many(client: Client, count: int) -> None:
        for number in range(0, count, batch):
            for thread in range(batch):
                await client.ws.send(start_run_frame(f"t{thread}", client.marker, context=f"run {number}"))
            await client.until_runs_end(batch)

    async def body(harness: Harness) -> None:
        process = psutil.Process(harness.service.pid)
        alice = await Client.open(harness.service, "alice")
        await run_many(alice, batch)  # warm up: pools, caches
        before = process.memory_info().rss
        await run_many(alice, runs)
        grown = process.memory_info().rss - before
        assert grown > runs * 256 * 1024 // 2, f"RSS grew only {grown / 2**20:.1f} MiB over {runs} runs"

    with_bug(embedded, run_id, Bug.MEMORY_GROWTH, body, dict(think_ms=0))


def test_global_lock_runs_agents_one_at_a_time(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        users = await clients(harness.service, 10)
        started = time.monotonic()
        await users[0].run()
        one = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(client.run("t2") for client in users))
        ten = time.monotonic() - started
        assert ten > 6 * one, f"10 concurrent runs took {ten:.2f} s, one took {one:.2f} s"

    with_bug(embedded, run_id, Bug.GLOBAL_LOCK, body, dict(think_ms=200))


def test_lost_update_loses_credit_deductions(embedded: tuple[str, str], run_id: str) -> None:
    runs = 20

    async def body(harness: Harness) -> None:
        alice = await Client.open(harness.service, "alice")
        for thread in range(runs):
            await alice.ws.send(start_run_frame(f"t{thread}", alice.marker))
        events = await alice.until_runs_end(runs)
        assert sum(event["type"] == "agent_completed" for event in events) == runs
        assert await harness.balance("alice") > 1000 - runs

    with_bug(embedded, run_id, Bug.LOST_UPDATE, body, dict(think_ms=0))


def test_second_session_lets_one_user_hold_two_sessions(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        first = await Client.open(harness.service, "alice")
        second = await Client.open(harness.service, "alice")
        assert first.frames[0]["session_id"] != second.frames[0]["session_id"]
        first_run, second_run = await asyncio.gather(first.run(), second.run("t2"))
        assert first_run[-1]["type"] == second_run[-1]["type"] == "agent_completed"

    with_bug(embedded, run_id, Bug.SECOND_SESSION, body)
