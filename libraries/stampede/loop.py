"""The event loop the engine owns, running in a background thread.

Keywords call in from Robot's thread; load keeps running on this loop while
other keywords (fault injection, checks) do their work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import StampedeError

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is installed (much cheaper per operation), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EngineLoop:
    """An event loop in a daemon thread, with bounded calls into it."""

    def __init__(self) -> None:
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stampede-loop", daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def implementation(self) -> str:
        return type(self._loop).__module__.split(".")[0]

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._loop.is_closed()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if not self.running:
            coroutine.close()
            raise StampedeError("The Stampede event loop is closed; no more work can be started on it.")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and return its result, waiting at most ``timeout`` s."""
        future = self.submit(coroutine)
        try:
            # Not future.result(timeout): since Python 3.11 its TimeoutError is the builtin one,
            # so a TimeoutError raised by the coroutine itself would be mistaken for giving up.
            done, _ = concurrent.futures.wait([future], timeout)
            if not done:
                raise TimeoutError(f"gave up waiting after {timeout} s")
            return future.result()
        finally:
            if not future.done():
                future.cancel()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop, stop it and join the thread (bounded)."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError):
                self.run(_cancel_remaining_tasks(), timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()


async def _cancel_remaining_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2.0)
