"""Server-sent events: turning the lines of a ``text/event-stream`` into events, as the HTML standard says.

An event is the ``event:``, ``data:`` and ``id:`` fields up to a blank line
(several ``data:`` lines join with newlines; a line starting with ``:`` is a
comment, such as a keep-alive). A block without data dispatches nothing. The
last ``id:`` seen stays the stream's last event id (what ``Last-Event-ID``
sends on a resume) until another replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_EVENT = "message"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched event: its name (``message`` when none was given), its data and the last event id."""

    event: str
    data: str
    id: str | None


class SseParser:
    """Feed it a stream's lines one at a time (their line ending stripped or not); it returns each event."""

    __slots__ = ("_data", "_event", "last_id")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def line(self, line: str) -> SseEvent | None:
        """The event a blank line completes, else None."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event or DEFAULT_EVENT, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SseEvent(event, "\n".join(data), self.last_id)

    @property
    def pending(self) -> bool:
        """Whether a started event awaits its blank line (a stream that ends here was cut mid-event)."""
        return bool(self._data or self._event)
