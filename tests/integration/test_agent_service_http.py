"""The reference agent service's HTTP + SSE API (docs/REFERENCE_HTTP_API.md), driven by a plain aiohttp client.

A real service process against real PostgreSQL and Redis. The first half shows
the API and the four multitask strategies working; the second shows that each
HTTP bug switch has a symptom a client sees, and that the same steps without it
show none.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import psutil
import pytest

from reference_agent_service.bugs import Bug
from stampede.services.embedded_agent_service import EmbeddedAgentService
from stampede.services.tokens import issue_token, new_secret

from .test_agent_service import Harness, agent_service

TIMEOUT = aiohttp.ClientTimeout(total=20)
TERMINAL = {"run_completed", "run_interrupted", "run_rolled_back", "run_failed"}


@dataclass(frozen=True)
class Sse:
    name: str
    id: str
    data: dict[str, Any]


@dataclass
class Stream:
    """What a run request got: its status and, for a stream, its events (or the JSON error body)."""

    status: int
    events: list[Sse] = field(default_factory=list)
    body: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.events[0].data["run_id"]

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]

    @property
    def end(self) -> Sse:
        return self.events[-1]

    def message_ids(self) -> list[str]:
        return [event.data["message"]["id"] for event in self.events if event.name == "message_appended"]


async def read_events(
    response: aiohttp.ClientResponse, stream: Stream, until: Callable[[Sse], bool] | None = None
) -> None:
    """Parse SSE frames into ``stream`` until the stream ends (or an event satisfies ``until``)."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        stream.lines.append(line)
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        event = Sse(fields["event"], fields["id"], json.loads(fields["data"]))
        fields = {}
        stream.events.append(event)
        if until is not None and until(event):
            return


@dataclass
class User:
    name: str
    base: str
    http: aiohttp.ClientSession

    @property
    def marker(self) -> str:
        return f"m-{self.name}"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, self.base + path, json=body) as response:
            return response.status, await response.json()

    async def thread(self) -> str:
        status, body = await self.call("POST", "threads", {})
        assert status == 201, body
        return str(body["thread_id"])

    def run_body(self, strategy: str, steps: int = 3, step_ms: int = 20, marker: str | None = None) -> dict[str, Any]:
        return {
            "input": {"marker": marker or self.marker, "text": "hello", "steps": steps, "step_ms": step_ms},
            "multitask_strategy": strategy,
        }

    @asynccontextmanager
    async def opened(self, thread: str, body: dict[str, Any]) -> AsyncIterator[tuple[aiohttp.ClientResponse, Stream]]:
        async with self.http.post(f"{self.base}threads/{thread}/runs/stream", json=body) as response:
            stream = Stream(response.status)
            if response.status != 200:
                stream.body = await response.json()
            yield response, stream

    async def stream(self, thread: str, strategy: str = "reject", **options: Any) -> Stream:
        async with self.opened(thread, self.run_body(strategy, **options)) as (response, stream):
            if stream.status == 200:
                await read_events(response, stream)
            return stream

    async def state(self, thread: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"threads/{thread}")
        assert status == 200, body
        return body

    async def message_ids(self, thread: str) -> list[str]:
        return [message["id"] for message in (await self.state(thread))["state"]["messages"]]

    async def runs(self, thread: str) -> dict[str, dict[str, Any]]:
        status, body = await self.call("GET", f"threads/{thread}/runs")
        assert status == 200, body
        return {run["run_id"]: run for run in body["runs"]}


@asynccontextmanager
async def users(service: EmbeddedAgentService, *names: str) -> AsyncIterator[list[User]]:
    sessions = [
        aiohttp.ClientSession(timeout=TIMEOUT, headers={"Authorization": f"Bearer {service.token_for(name)}"})
        for name in names
    ]
    try:
        yield [User(name, service.http_url, session) for name, session in zip(names, sessions, strict=True)]
    finally:
        for session in sessions:
            await session.close()


def scenario(embedded: tuple[str, str], run_id: str, body: Callable[[Harness], Awaitable[None]], bug: str = "") -> None:
    async def run() -> None:
        async with agent_service(*embedded, run_id, bugs=bug or None) as harness:
            await body(harness)

    asyncio.run(run())


async def started(user: User, thread: str, strategy: str, **options: Any) -> tuple[asyncio.Task[Stream], Stream]:
    """Start a streamed run and return once its first message is appended: (the rest of it, as a task; the stream)."""
    ready = asyncio.get_running_loop().create_future()

    async def go() -> Stream:
        async with user.opened(thread, user.run_body(strategy, **options)) as (response, stream):
            if stream.status == 200:
                await read_events(response, stream, until=lambda event: event.name == "message_appended")
            ready.set_result(stream)
            if stream.status == 200:
                await read_events(response, stream)
            return stream

    task = asyncio.create_task(go())
    return task, await asyncio.wait_for(ready, 10)


def contiguous(messages: list[str], runs: list[str]) -> bool:
    """Whether ``messages`` are the messages of ``runs``, each run's in one block, in that order."""
    blocks = [message.rsplit(":", 1)[0] for message in messages]
    order = [run for index, run in enumerate(blocks) if index == 0 or blocks[index - 1] != run]
    return order == runs


# --- the API ---------------------------------------------------------------------------------


def test_auth_is_required_and_refusals_are_json(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        url = harness.service.http_url + "threads"
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            for headers, reason in [
                ({}, "no bearer token"),
                ({"Authorization": "Bearer garbage"}, "not a well-formed JWT"),
                ({"Authorization": f"Bearer {issue_token(new_secret(), 'alice')}"}, "signature does not match"),
                (
                    {"Authorization": f"Bearer {harness.service.token_for('alice', ttl=timedelta(seconds=-1))}"},
                    "expired",
                ),
            ]:
                async with http.post(url, json={}, headers=headers) as response:
                    assert response.status == 401
                    answer = await response.json()
                    assert answer["error"] == "unauthorized" and reason in answer["message"], answer
        async with users(harness.service, "alice") as (alice,):
            assert (await alice.call("GET", "nowhere"))[0] == 404
            thread = await alice.thread()
            status, answer = await alice.call("POST", f"threads/{thread}/runs/wait", {"input": {"steps": 3}})
            assert (status, answer["error"]) == (400, "bad_request") and "marker" in answer["message"]
            status, answer = await alice.call("POST", f"threads/{thread}/runs/wait", alice.run_body("sideways"))
            assert status == 400 and "multitask_strategy" in answer["message"]
        log = harness.service.log_path.read_text()  # type: ignore[union-attr]
        assert "and http://127.0.0.1:" in log
        for secret in (harness.service._secret, "Bearer", "eyJ"):  # no secret, no token (JWTs start eyJ)
            assert secret and secret not in log

    scenario(embedded, run_id, body)


def test_threads_are_created_read_and_keep_their_history(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            status, created = await alice.call("POST", "threads", {"metadata": {"topic": "x"}})
            assert status == 201
            thread = created["thread_id"]
            assert created == {
                "thread_id": thread,
                "user_id": "alice",
                "version": 0,
                "state": {"counter": 0, "messages": []},
            }
            status, waited = await alice.call("POST", f"threads/{thread}/runs/wait", alice.run_body("reject", steps=2))
            assert status == 200 and waited["status"] == "success" and waited["thread_id"] == thread
            run = waited["run_id"]
            assert waited["messages"] == [
                {"id": f"{run}:{n}", "run_id": run, "marker": alice.marker, "text": "hello"} for n in (1, 2)
            ]
            state = await alice.state(thread)
            assert state["version"] == 2 and state["state"] == {"counter": 2, "messages": waited["messages"]}
            status, history = await alice.call("GET", f"threads/{thread}/history")
            assert status == 200 and history["thread_id"] == thread
            assert [(s["version"], s["run_id"], s["counter"], len(s["messages"])) for s in history["states"]] == [
                (0, None, 0, 0),
                (1, run, 1, 1),
                (2, run, 2, 2),
            ]
            (listed,) = (await alice.runs(thread)).values()
            assert listed["run_id"] == run and listed["status"] == "success" and listed["marker"] == alice.marker
            assert listed["multitask_strategy"] == "reject"
            assert listed["created_at"] <= listed["started_at"] <= listed["ended_at"]

    scenario(embedded, run_id, body)


def test_a_streamed_run_is_framed_as_sse_and_resumes_from_last_event_id(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            stream = await alice.stream(thread, steps=3)
            assert stream.names == ["run_started", *["message_appended"] * 3, "run_completed"]
            run = stream.run_id
            assert [event.id for event in stream.events] == [f"{run}:{seq}" for seq in range(1, 6)]
            assert stream.lines[:4] == ["event: run_started", f"id: {run}:1", f"data: {stream.lines[2][6:]}", ""]
            for seq, event in enumerate(stream.events, 1):
                assert {key: event.data[key] for key in ("run_id", "thread_id", "user_id", "marker", "seq")} == {
                    "run_id": run,
                    "thread_id": thread,
                    "user_id": "alice",
                    "marker": alice.marker,
                    "seq": seq,
                }
            appended = [event.data for event in stream.events if event.name == "message_appended"]
            assert [(data["counter"], data["version"]) for data in appended] == [(1, 1), (2, 2), (3, 3)]
            assert stream.end.data["status"] == "success"
            resume = f"{alice.base}threads/{thread}/runs/{run}/stream"
            async with alice.http.get(resume, headers={"Last-Event-ID": f"{run}:2"}) as response:
                again = Stream(response.status)
                await read_events(response, again)
            assert again.events == stream.events[2:]
            async with alice.http.get(resume, headers={"Last-Event-ID": "run-x:1"}) as response:
                assert response.status == 400 and (await response.json())["error"] == "unknown_event_id"

            # A cut stream, resumed while the run is still going: nothing lost, nothing twice.
            long_task, first = await started(alice, thread, "reject", steps=4, step_ms=100)
            long_task.cancel()
            live = first.run_id
            async with alice.http.get(
                f"{alice.base}threads/{thread}/runs/{live}/stream", headers={"Last-Event-ID": first.events[-1].id}
            ) as response:
                rest = Stream(response.status)
                await read_events(response, rest)
            whole = [event.data["seq"] for event in first.events + rest.events]
            assert whole == list(range(1, 7)) and rest.end.name == "run_completed"

    scenario(embedded, run_id, body)


def test_reject_accepts_exactly_one_of_concurrent_runs(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            streams = await asyncio.gather(*(alice.stream(thread, "reject", steps=3) for _ in range(4)))
            accepted = [stream for stream in streams if stream.status == 200]
            refused = [stream for stream in streams if stream.status == 409]
            assert len(accepted) == 1 and len(refused) == 3
            winner = accepted[0].run_id
            assert all(s.body == {"error": "thread_busy", "message": s.body["message"], "active_run_id": winner}
                       for s in refused if s.body)  # fmt: skip
            assert list(await alice.runs(thread)) == [winner]
            assert await alice.message_ids(thread) == accepted[0].message_ids()

    scenario(embedded, run_id, body)


def test_enqueue_runs_every_run_in_fifo_order(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "enqueue", steps=3, step_ms=30)
            later = [asyncio.create_task(alice.stream(thread, "enqueue", steps=2, step_ms=10)) for _ in range(3)]
            streams = [await first_task, *await asyncio.gather(*later)]
            assert all(stream.end.name == "run_completed" for stream in streams)
            assert all(stream.names[0] == "run_queued" for stream in streams[1:])
            listed = await alice.runs(thread)
            order = sorted(listed.values(), key=lambda run: run["started_at"])
            assert [run["run_id"] for run in order] == list(listed)  # started in the order they were created
            for before, after in itertools.pairwise(order):
                assert before["ended_at"] <= after["started_at"]
            messages = await alice.message_ids(thread)
            assert len(messages) == 3 + 3 * 2 and contiguous(messages, list(listed))
            assert sorted(messages) == sorted(m for stream in streams for m in stream.message_ids())

    scenario(embedded, run_id, body)


def test_interrupt_stops_the_active_run_keeping_its_messages(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "enqueue", steps=10, step_ms=50)
            queued_task = asyncio.create_task(alice.stream(thread, "enqueue", steps=2))
            await asyncio.sleep(0.05)
            newcomer = await alice.stream(thread, "interrupt", steps=2)
            first, queued = await first_task, await queued_task
            assert first.end.name == "run_interrupted" and first.end.data["by"] == newcomer.run_id
            assert first.end.data["status"] == "interrupted"
            assert queued.names == ["run_queued", "run_interrupted"] and queued.end.data["by"] == newcomer.run_id
            assert newcomer.end.name == "run_completed"
            kept = first.message_ids()
            assert 1 <= len(kept) < 10
            assert await alice.message_ids(thread) == kept + newcomer.message_ids()
            statuses = {run: listed["status"] for run, listed in (await alice.runs(thread)).items()}
            assert statuses == {first.run_id: "interrupted", queued.run_id: "interrupted", newcomer.run_id: "success"}
            # A cancel interrupts too, with nobody as the cause.
            cancelled_task, cancelled = await started(alice, thread, "reject", steps=10, step_ms=50)
            status, answer = await alice.call("POST", f"threads/{thread}/runs/{cancelled.run_id}/cancel")
            assert status == 202 and answer["run_id"] == cancelled.run_id
            ended = await cancelled_task
            assert ended.end.name == "run_interrupted" and ended.end.data["by"] is None

    scenario(embedded, run_id, body)


def test_rollback_stops_the_active_run_and_removes_its_messages(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            kept = await alice.stream(thread, "reject", steps=2)
            first_task, _ = await started(alice, thread, "reject", steps=10, step_ms=50)
            newcomer = await alice.stream(thread, "rollback", steps=2)
            first = await first_task
            assert first.end.name == "run_rolled_back" and first.end.data["by"] == newcomer.run_id
            assert first.message_ids(), "the rolled-back run appended nothing before it was stopped"
            assert await alice.message_ids(thread) == kept.message_ids() + newcomer.message_ids()
            _, history = await alice.call("GET", f"threads/{thread}/history")
            removal = [state for state in history["states"] if state["run_id"] == first.run_id][-1]
            assert [message["id"] for message in removal["messages"]] == kept.message_ids()
            assert removal["counter"] == 2
            assert (await alice.runs(thread))[first.run_id]["status"] == "rolled_back"

    scenario(embedded, run_id, body)


FOREIGN_REQUESTS = [
    ("GET", "threads/{thread}", None),
    ("GET", "threads/{thread}/history", None),
    ("GET", "threads/{thread}/runs", None),
    ("POST", "threads/{thread}/runs/stream", {"input": {"marker": "m-bob"}}),
    ("POST", "threads/{thread}/runs/wait", {"input": {"marker": "m-bob"}}),
    ("POST", "threads/{thread}/runs/{run}/cancel", None),
    ("GET", "threads/{thread}/runs/{run}/stream", None),
]


async def foreign_statuses(harness: Harness) -> tuple[dict[str, int], list[str]]:
    """Bob's answers to each request on Alice's thread, and Alice's messages afterwards."""
    async with users(harness.service, "alice", "bob") as (alice, bob):
        thread = await alice.thread()
        _, waited = await alice.call("POST", f"threads/{thread}/runs/wait", alice.run_body("reject"))
        answers = {}
        for method, template, body in [*FOREIGN_REQUESTS, ("GET", "threads/thread-none", None)]:
            path = template.format(thread=thread, run=waited["run_id"])
            async with bob.http.request(method, bob.base + path, json=body) as response:
                answers[f"{method} {path.replace(thread, '<thread>')}"] = response.status
                if response.status == 404:
                    assert (await response.json())["error"] == "thread_not_found"
        return answers, await alice.message_ids(thread)


def test_another_users_thread_is_not_found_on_every_endpoint(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        answers, messages = await foreign_statuses(harness)
        assert set(answers.values()) == {404}, answers
        assert len(messages) == 3

    scenario(embedded, run_id, body)


def test_stop_ends_open_streams_and_leaves_no_process(embedded: tuple[str, str], run_id: str) -> None:
    async def body(harness: Harness) -> None:
        pid = harness.service.pid
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            task, _ = await started(alice, thread, "reject", steps=50, step_ms=300)
            assert await asyncio.to_thread(harness.service.stop) == 0, "the service did not shut down cleanly"
            stream = await asyncio.wait_for(task, 10)
            assert stream.end.name == "message_appended"  # cut: the run never ended
        assert pid is not None and not psutil.pid_exists(pid)

    scenario(embedded, run_id, body)


# --- each HTTP bug switch shows a symptom at the API; the same steps without it show none -----


def with_and_without(bug: Bug) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("bug", ["", bug.value], ids=["off", bug.value])


@with_and_without(Bug.CONCURRENT_RUNS)
def test_concurrent_runs_lets_two_runs_be_active_at_once(embedded: tuple[str, str], run_id: str, bug: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            streams = await asyncio.gather(*(alice.stream(thread, "reject", steps=3, step_ms=30) for _ in range(2)))
            accepted = [stream for stream in streams if stream.status == 200]
            runs = sorted((await alice.runs(thread)).values(), key=lambda run: run["started_at"])
            overlapping = len(runs) == 2 and runs[1]["started_at"] < runs[0]["ended_at"]
            assert (len(accepted), overlapping) == ((2, True) if bug else (1, False))

    scenario(embedded, run_id, body, bug)


@with_and_without(Bug.LOST_ENQUEUED_RUN)
def test_lost_enqueued_run_reports_a_run_that_never_ran(embedded: tuple[str, str], run_id: str, bug: str) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "enqueue", steps=6, step_ms=60)
            second_task = asyncio.create_task(alice.stream(thread, "enqueue", steps=2))
            await asyncio.sleep(0.05)
            third = await alice.stream(thread, "enqueue", steps=2)
            second = await second_task
            await first_task
            assert second.end.data["status"] == third.end.data["status"] == "success"
            messages = await alice.message_ids(thread)
            lost = "run_started" not in second.names and not set(second.message_ids()) & set(messages)
            assert lost is bool(bug)
            assert len(messages) == (8 if bug else 10)

    scenario(embedded, run_id, body, bug)


@with_and_without(Bug.ROLLBACK_KEEPS_WRITES)
def test_rollback_keeps_writes_leaves_a_rolled_back_runs_messages(
    embedded: tuple[str, str], run_id: str, bug: str
) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "reject", steps=10, step_ms=50)
            await alice.stream(thread, "rollback", steps=1)
            first = await first_task
            assert first.end.name == "run_rolled_back"
            left = set(first.message_ids()) & set(await alice.message_ids(thread))
            assert bool(left) is bool(bug)

    scenario(embedded, run_id, body, bug)


@with_and_without(Bug.INTERRUPT_REPORTS_SUCCESS)
def test_interrupt_reports_success_calls_a_stopped_run_succeeded(
    embedded: tuple[str, str], run_id: str, bug: str
) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "reject", steps=10, step_ms=50)
            await alice.stream(thread, "interrupt", steps=1)
            first = await first_task
            assert len(first.message_ids()) < 10  # it stopped early either way
            reported = (first.end.data["status"], (await alice.runs(thread))[first.run_id]["status"])
            assert reported == (("success", "success") if bug else ("interrupted", "interrupted"))

    scenario(embedded, run_id, body, bug)


@with_and_without(Bug.FOREIGN_THREAD_READABLE)
def test_foreign_thread_readable_lets_a_user_read_anothers_thread(
    embedded: tuple[str, str], run_id: str, bug: str
) -> None:
    async def body(harness: Harness) -> None:
        answers, _ = await foreign_statuses(harness)
        readable = sorted(request for request, status in answers.items() if status == 200)
        expected = ["GET threads/<thread>", "GET threads/<thread>/history", "GET threads/<thread>/runs"]
        assert readable == (expected if bug else [])
        assert answers["GET threads/thread-none"] == 404

    scenario(embedded, run_id, body, bug)


@with_and_without(Bug.CROSSED_STREAMS)
def test_crossed_streams_sends_a_runs_events_on_another_runs_stream(
    embedded: tuple[str, str], run_id: str, bug: str
) -> None:
    async def body(harness: Harness) -> None:
        async with users(harness.service, "alice") as (alice,):
            thread = await alice.thread()
            first_task, _ = await started(alice, thread, "enqueue", steps=4, step_ms=80)
            second = await alice.stream(thread, "enqueue", steps=1)
            first = await first_task
            foreign = [event.id for event in second.events if event.data["run_id"] != second.events[0].data["run_id"]]
            assert bool(foreign) is bool(bug)
            assert (first.end.name in TERMINAL) is not bool(bug)  # the first run's own stream lost its end

    scenario(embedded, run_id, body, bug)
