"""The pure pieces of the reference service's HTTP runs: a run's event log and the run request's checks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reference_agent_service.http_api import ApiError, run_input
from reference_agent_service.run_events import Event, EventLog
from reference_agent_service.thread_runs import Strategy


def test_an_event_is_framed_as_one_sse_event() -> None:
    event = Event("run_started", "run-1:1", '{"seq": 1}')
    assert event.sse() == b'event: run_started\nid: run-1:1\ndata: {"seq": 1}\n\n'


def test_a_follower_gets_past_and_new_events_a_keepalive_per_silence_and_ends_with_the_log() -> None:
    async def scenario() -> list[str | None]:
        log = EventLog()
        log.add(Event("a", "r:1", "{}"))
        log.add(Event("b", "r:2", "{}"))
        seen: list[str | None] = []

        async def follow() -> None:
            async for event in log.follow(log.index_after("r:1") or 0, keepalive=0.05):
                seen.append(None if event is None else event.id)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(0.08)  # one keep-alive's worth of silence
        log.add(Event("c", "r:3", "{}"))
        log.close()
        log.add(Event("d", "r:4", "{}"))  # after the end: dropped
        await asyncio.wait_for(follower, 1)
        return seen

    assert asyncio.run(scenario()) == ["r:2", None, "r:3"]


def test_an_event_id_the_log_never_held_has_no_position() -> None:
    log = EventLog()
    log.add(Event("a", "r:1", "{}"))
    assert (log.index_after("r:1"), log.index_after("r:9")) == (1, None)


def test_a_run_request_gets_its_defaults() -> None:
    wanted = run_input({"input": {"marker": "m-1"}})
    assert (wanted.marker, wanted.text, wanted.steps, wanted.step_ms, wanted.strategy) == (
        "m-1",
        "",
        3,
        20,
        Strategy.REJECT,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, 'needs "input"'),
        ({"input": {"text": "x"}}, "input.marker must be 1 to 200 characters, got None"),
        ({"input": {"marker": "x" * 201}}, "input.marker must be 1 to 200"),
        ({"input": {"marker": "m", "steps": 0}}, "input.steps must be a whole number from 1 to 50, got 0"),
        ({"input": {"marker": "m", "steps": True}}, "input.steps must be a whole number"),
        ({"input": {"marker": "m", "step_ms": 10_001}}, "input.step_ms must be a whole number from 0 to 10000"),
        ({"input": {"marker": "m", "text": 3}}, "input.text must be a string"),
        ({"input": {"marker": "m"}, "multitask_strategy": "merge"}, "must be one of reject, enqueue, interrupt"),
    ],
)
def test_a_bad_run_request_is_refused_naming_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        run_input(body)
    assert caught.value.status == 400 and message in caught.value.body["message"]
