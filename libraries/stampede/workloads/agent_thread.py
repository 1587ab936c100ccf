"""A thread of one agent's own for its plain (blocking) calls, so they never stall the event loop.

One daemon thread per agent runs the agent's calls in order, so a client bound
to its thread (many blocking database drivers) always sees the same one. It is
a daemon, unlike a ``ThreadPoolExecutor``'s workers: a call that never returns
cannot keep the process from exiting, which Python would otherwise wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_Call = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class AgentThread:
    """Runs plain calls one after another on a daemon thread; :meth:`call` awaits one from the loop."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        return self._thread.name

    async def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the thread, after the calls before it, and return what it returns (or raise)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._calls.put((function, future, loop))
        return await future

    def close(self) -> None:
        """Let the thread end once its queued calls are done; a call stuck for good leaves it behind, asleep."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            function, future, loop = call
            try:
                outcome: tuple[Any, BaseException | None] = (function(), None)
            except Exception as error:  # noqa: BLE001 - handed to the awaiting operation, which records it
                outcome = (None, error)
            with contextlib.suppress(RuntimeError):  # the loop closed while the call ran: nobody is waiting
                loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the operation was cut off while the call ran
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
