"""Calls that wait together share one fetch: what each gets back, and what a failed fetch tells them."""

from __future__ import annotations

import asyncio

import pytest

from reference_agent_service.batches import Batched


class Fetches:
    """A fetch that doubles each key, noting the keys of every call, after a pause like a round trip's."""

    def __init__(self, fail_on: int | None = None, leave_out: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on
        self.leave_out = leave_out

    async def __call__(self, keys: list[int]) -> dict[int, int]:
        self.calls.append(keys)
        await asyncio.sleep(0.01)
        if self.fail_on in keys:
            raise OSError("connection lost")
        return {key: key * 2 for key in keys if key != self.leave_out}


def test_calls_made_in_one_turn_share_one_fetch() -> None:
    fetch = Fetches()

    async def scenario() -> list[int]:
        batched = Batched(fetch, flushers=3)
        return list(await asyncio.gather(*(batched.get(key) for key in range(100))))

    assert asyncio.run(scenario()) == [key * 2 for key in range(100)]
    assert fetch.calls == [list(range(100))]


def test_calls_made_while_a_fetch_runs_share_the_next_one() -> None:
    fetch = Fetches()

    async def scenario() -> list[int]:
        batched = Batched(fetch, flushers=1)
        first = asyncio.ensure_future(batched.get(0))
        await asyncio.sleep(0)
        return list(await asyncio.gather(first, *(batched.get(key) for key in range(1, 100))))

    assert asyncio.run(scenario()) == [key * 2 for key in range(100)]
    assert fetch.calls == [[0], list(range(1, 100))], "the rest waited for the first fetch, together"


def test_one_key_asked_for_twice_is_fetched_once_and_both_get_it() -> None:
    fetch = Fetches()

    async def scenario() -> list[int]:
        batched = Batched(fetch, flushers=1)
        return list(await asyncio.gather(batched.get(1), batched.get(7), batched.get(7)))

    assert asyncio.run(scenario()) == [2, 14, 14]
    assert fetch.calls == [[1, 7]]


def test_no_more_fetches_run_at_once_than_allowed() -> None:
    running = most = 0

    async def fetch(keys: list[int]) -> dict[int, int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return dict.fromkeys(keys, 0)

    async def scenario() -> None:
        batched = Batched(fetch, flushers=3)
        calls = []
        for key in range(50):  # arriving one by one, while earlier fetches run
            calls.append(asyncio.ensure_future(batched.get(key)))
            await asyncio.sleep(0.001)
        await asyncio.gather(*calls)

    asyncio.run(scenario())
    assert most == 3


def test_a_failed_fetch_fails_the_calls_it_was_given_and_no_others() -> None:
    fetch = Fetches(fail_on=5)

    async def scenario() -> tuple[object, ...]:
        batched = Batched(fetch, flushers=1)
        first = asyncio.ensure_future(batched.get(1))
        await asyncio.sleep(0)
        rest = [batched.get(key) for key in (5, 6)]
        done = await asyncio.gather(first, *rest, return_exceptions=True)
        return (*done, await batched.get(8))

    first, five, six, eight = asyncio.run(scenario())
    assert first == 2 and eight == 16
    assert isinstance(five, OSError) and isinstance(six, OSError), "5 and 6 went in one statement, and it failed"


def test_a_key_the_fetch_gave_no_value_for_fails_its_call_saying_so() -> None:
    async def scenario() -> None:
        batched = Batched(Fetches(leave_out=3), flushers=1)
        with pytest.raises(LookupError, match="the batch's statement gave no value for 3"):
            await batched.get(3)

    asyncio.run(scenario())


def test_a_caller_that_gives_up_leaves_the_others_their_values() -> None:
    async def scenario() -> int:
        batched = Batched(Fetches(), flushers=1)
        first = asyncio.ensure_future(batched.get(1))
        await asyncio.sleep(0)
        given_up = asyncio.ensure_future(batched.get(2))
        kept = asyncio.ensure_future(batched.get(3))
        await asyncio.sleep(0)
        given_up.cancel()
        await first
        return await kept

    assert asyncio.run(scenario()) == 6


def test_a_call_made_just_as_the_last_fetch_ends_is_fetched_too() -> None:
    """Its caller wakes before the ended flusher's done callbacks run: it must not count that flusher as running."""

    async def scenario() -> tuple[int, int]:
        batched = Batched(Fetches(), flushers=1)
        first = await batched.get(1)
        async with asyncio.timeout(2):
            return first, await batched.get(2)

    assert asyncio.run(scenario()) == (2, 4)
