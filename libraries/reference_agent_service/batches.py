"""Calls that wait together go to the database together: one statement for every key asked for meanwhile.

When thousands of sessions start at once, each asking for its user's
credits, a round trip per session queues them all behind the pool's few
connections. Here a call waits for its key's value while at most a pool's
worth of flushers each send the keys gathered so far in one statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

MAX_BATCH = 500  # keys per statement: bounded, so one slow statement holds up few calls


class Batched(Generic[Key, Value]):
    """``await batched.get(key)``: the value ``fetch`` gives for the key, fetched with whatever keys wait beside it.

    ``fetch`` takes distinct keys and returns a value for each of them; at
    most ``flushers`` of its calls run at once. A call of ``fetch`` that
    raises fails every call of ``get`` whose key it was given.
    """

    def __init__(self, fetch: Callable[[list[Key]], Awaitable[dict[Key, Value]]], flushers: int) -> None:
        self._fetch = fetch
        self._flushers_at_most = flushers
        self._flushers: set[asyncio.Task[None]] = set()
        self._waiting: dict[Key, list[asyncio.Future[Value]]] = {}

    async def get(self, key: Key) -> Value:
        future: asyncio.Future[Value] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if len(self._flushers) < self._flushers_at_most:
            flusher = asyncio.create_task(self._flush())
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        try:
            await self._flush_until_none_wait()
        finally:
            # Here, not in a done callback: a call made before that callback ran would count this flusher as running.
            self._flushers.discard(asyncio.current_task())

    async def _flush_until_none_wait(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[:MAX_BATCH]
            waiting = {key: self._waiting.pop(key) for key in keys}
            try:
                values = await self._fetch(keys)
            except asyncio.CancelledError:
                for _, future in _still_waiting(waiting):
                    future.cancel()
                raise
            except Exception as error:  # noqa: BLE001 - every call given one of these keys hears of it
                for _, future in _still_waiting(waiting):
                    future.set_exception(error)
                continue
            for key, future in _still_waiting(waiting):
                if key in values:
                    future.set_result(values[key])
                else:
                    future.set_exception(LookupError(f"the batch's statement gave no value for {key!r}"))


def _still_waiting(waiting: dict[Key, list[asyncio.Future[Value]]]) -> Iterator[tuple[Key, asyncio.Future[Value]]]:
    """Each call's key and future, but for callers that gave up (their session ended) and cancelled their own."""
    for key, futures in waiting.items():
        for future in futures:
            if not future.done():
                yield key, future
