"""A third-party test service on a free port of 127.0.0.1, served by an event loop in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

START_TIMEOUT = 10.0


class ThreadedService:
    """Runs :meth:`serve` on a loop of its own; :meth:`start` waits (bounded) for the port, :meth:`stop` for the end."""

    name = "test-service"

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._ready: Future[int] = Future()
        self.port = 0

    def start(self) -> str:
        """Start it; return its URL."""
        self._thread.start()
        self.port = self._ready.result(START_TIMEOUT)
        return self.url(self.port)

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(START_TIMEOUT)

    def url(self, port: int) -> str:
        raise NotImplementedError

    async def serve(self, ready: Callable[[int], None], stopped: asyncio.Event) -> None:
        """Listen on 127.0.0.1:0, call ``ready(port)``, serve until ``stopped`` is set; raise OSError if it cannot."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.serve(self._ready.set_result, self._stopped)
        except OSError as error:
            if not self._ready.done():
                self._ready.set_exception(error)
