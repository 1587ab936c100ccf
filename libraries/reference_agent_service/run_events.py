"""A run's events as its SSE streams send them, all kept so a stream can follow them again from any event id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """One SSE event: its name, its id (``<run_id>:<seq>``) and its data (one line of JSON)."""

    name: str
    id: str
    data: str

    def sse(self) -> bytes:
        return f"event: {self.name}\nid: {self.id}\ndata: {self.data}\n\n".encode()


class EventLog:
    """The events written for one run's stream, kept so a stream can be followed (again) from any point."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self._wake = asyncio.Event()

    def add(self, event: Event) -> None:
        if not self.closed:
            self.events.append(event)
            self._notify()

    def close(self) -> None:
        self.closed = True
        self._notify()

    def index_after(self, event_id: str) -> int | None:
        """Where the events after ``event_id`` begin; None if the log has no such event."""
        for index, event in enumerate(self.events):
            if event.id == event_id:
                return index + 1
        return None

    async def follow(self, start: int, keepalive: float) -> AsyncIterator[Event | None]:
        """The events from index ``start`` on, then new ones until the log closes; None per silent ``keepalive`` s."""
        index = start
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.closed:
                return
            wake = self._wake
            try:
                await asyncio.wait_for(wake.wait(), keepalive)
            except TimeoutError:
                yield None

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()
